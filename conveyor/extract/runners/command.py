"""The ``command`` job type: any program that writes Parquet parts of the design's schema.

The program writes files into a local folder (``$CONVEYOR_EXTRACT_DIR``). In a local lake
that is the extract's own folder. In a lake on an object store it is a private staging
folder on local disk: once the program exits 0 and its parts pass the schema check, the
orchestrator uploads them into the bucket (checking each one's sha256 on the way) and
commits the manifest there; the staging folder is removed whatever happens. The job file
is written to a private temporary folder, never into the lake.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from conveyor.config.secrets import scrub
from conveyor.errors import ExtractError, UserError
from conveyor.extract.jobs import ExtractJob
from conveyor.extract.runners.base import Runner, RunnerInput, RunnerOutput, arrow_schema, collect_parts


class CommandRunner(Runner):
    """An external program from a template: the container analog.

    The template may use ``{job_file}``, ``{folder}``, ``{relation}``, ``{source}`` and
    ``{table}``. The program gets the job as JSON (in ``{job_file}`` and ``$CONVEYOR_JOB``),
    the extract folder in ``$CONVEYOR_EXTRACT_DIR`` and the source's resolved DSN in
    ``$CONVEYOR_SOURCE_DSN`` (never on the command line, where other users could see it).
    It must leave ``part-*.parquet`` files in the folder, with the design's exact schema,
    and exit 0.
    """

    JOB_TYPE = "command"

    def run(self, job: ExtractJob, given: RunnerInput) -> RunnerOutput:
        if not job.command:
            raise UserError(f'"{job.relation}" has job_type command but no extract.command template.')
        job_json = job.to_json()
        # not beside the extract: a lake on S3 has no local folder around its staging area
        with tempfile.TemporaryDirectory(prefix="conveyor-job-") as private:
            job_file = Path(private) / "job.json"
            job_file.write_text(job_json, encoding="utf-8")
            argv = self._argv(job, given.folder, job_file)
            env = {
                **os.environ,
                "CONVEYOR_JOB": job_json,
                "CONVEYOR_EXTRACT_DIR": str(given.folder),
                "CONVEYOR_SOURCE_DSN": given.dsn,
            }
            self._execute(job, argv, env, given)
        expected = arrow_schema(job)
        parts = collect_parts(given.folder, expected, job.relation)
        return RunnerOutput(parts, expected, f"command: {' '.join(argv)}")

    @staticmethod
    def _argv(job: ExtractJob, folder: Path, job_file: Path) -> list[str]:
        values = {
            "job_file": str(job_file),
            "folder": str(folder),
            "relation": job.relation,
            "source": job.source,
            "table": job.upstream_name,
        }
        try:
            return [part.format(**values) for part in shlex.split(job.command or "")]
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(
                f'the extract.command of "{job.relation}" is not a valid template: {exc}.',
                hint="Use {job_file}, {folder}, {relation}, {source} and {table}.",
            ) from None

    @staticmethod
    def _execute(job: ExtractJob, argv: list[str], env: dict[str, str], given: RunnerInput) -> None:
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=given.timeout_s, cwd=given.root, check=False
            )
        except FileNotFoundError:
            raise ExtractError(f'the extract command of "{job.relation}" was not found: {argv[0]}.') from None
        except subprocess.TimeoutExpired:
            raise ExtractError(
                f'the extract command of "{job.relation}" timed out after {given.timeout_s} s.'
            ) from None
        if done.returncode != 0:
            tail = scrub("\n".join((done.stderr or done.stdout).strip().splitlines()[-5:]))
            raise ExtractError(f'the extract command of "{job.relation}" exited with {done.returncode}: {tail}')
