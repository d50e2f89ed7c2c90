"""The ``command`` job type: any program that writes Parquet parts of the design's schema."""

from __future__ import annotations

import os
import shlex
import subprocess
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
        job_file = given.folder.parent / f".{given.folder.name}.job.json"
        job_json = job.to_json()
        job_file.write_text(job_json, encoding="utf-8")
        try:
            argv = self._argv(job, given.folder, job_file)
            env = {
                **os.environ,
                "CONVEYOR_JOB": job_json,
                "CONVEYOR_EXTRACT_DIR": str(given.folder),
                "CONVEYOR_SOURCE_DSN": given.dsn,
            }
            self._execute(job, argv, env, given)
        finally:
            job_file.unlink(missing_ok=True)
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
