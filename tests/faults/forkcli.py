"""Run many ``conveyor`` command lines, each in a process of its own, paying the imports once.

``python forkcli.py`` reads ``{"root": ..., "env": {...}, "commands": [[...], ...]}`` as JSON on
stdin. It imports the CLI and every command module once, then forks one child per command
line: the child sets the environment, points its stdout and stderr (file descriptors 1 and
2) at a file and runs the console script's ``main``, exactly as ``conveyor -p ROOT ...``
would, in a fresh process state (nothing resolved, no secret registered, no logging set up).
It prints one JSON line per command: ``{"args": [...], "code": N, "out": "stdout+stderr"}``.

A command may also be ``{"args": [...], "root": ..., "env": {...}, "cwd": ..., "timeout": S}``: its own
project, environment (over the request's), working directory and a time limit (the child is killed
by SIGALRM after ``S`` seconds: its code is then -14).

A command costs a fork instead of a Python start-up and ~0.7 s of imports, so a test can
run dozens of them.

``python forkcli.py --serve`` answers one request per line instead, for as long as stdin is
open: ``{"root": ..., "env": {...}, "args": [...]}`` in, the same JSON line out. A test
checks what one command left before it chooses the next; :class:`ForkServer` drives it.
A command that dies by a signal reports the negative signal number as its code (a
crash point's SIGKILL: -9).
"""

from __future__ import annotations

import os
import subprocess
import sys

# python puts this script's folder first on sys.path; a test module there named like a standard
# module (concurrent.py ...) would shadow it for everything imported below
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import importlib  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

MODULES = [
    "conveyor.cli.main",
    "conveyor.cli.commands",
    "conveyor.cli.runs_cmd",
    "conveyor.cli.validate_cmd",
    "conveyor.cli.bootstrap_cmd",
    "conveyor.cli.pipeline_cmd",
    "conveyor.api",
    "conveyor.bootstrap",
    "conveyor.validate",
    "conveyor.pipeline.runner",
    "conveyor.sources.postgres",
    "conveyor.sources.sqlite",
    "conveyor.warehouse.duckdb.warehouse",
    "conveyor.warehouse.duckdb.build",
    "conveyor.warehouse.postgres.warehouse",
    "conveyor.extract.extract",
    "conveyor.extract.runners.arrow",
    "conveyor.load.build",
    "conveyor.load.unload",
]


def child(root: str, env: dict[str, str], args: list[str], out: Path, cwd: str | None, timeout: int) -> None:
    """In the forked child: run one command line with fds 1 and 2 on ``out``; never returns."""
    code = 1
    try:
        if timeout:
            signal.alarm(timeout)
        if cwd:
            os.chdir(cwd)
        os.environ.update(env)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        from conveyor.cli.main import main

        try:
            main(["-p", root, *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(
    root: str, env: dict[str, str], args: list[str], folder: Path, index: int, cwd: str | None = None, timeout: int = 0
) -> dict[str, object]:
    out = folder / f"{index}.out"
    pid = os.fork()
    if pid == 0:
        child(root, env, args, out, cwd, timeout)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return {"args": args, "code": code, "out": out.read_text(errors="replace")}


def serve() -> None:
    """One command per request line, answered with one line, until stdin closes."""
    for module in MODULES:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as folder:
        for index, line in enumerate(sys.stdin):
            request = json.loads(line)
            result = run(request["root"], request.get("env", {}), request["args"], Path(folder), index)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


class ForkServer:
    """A ``forkcli.py --serve`` process: ``server(root, "run", "--env", "dev", env={...})`` -> (code, output)."""

    def __init__(self) -> None:
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
        env.pop("CONVEYOR_PROJECT", None)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def __call__(self, root: Path | str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {"root": str(root), "env": env or {}, "args": list(args)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server died (exit code {self.process.wait()})")
        answer = json.loads(line)
        return int(answer["code"]), str(answer["out"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    request = json.load(sys.stdin)
    for module in MODULES:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as folder:
        for index, command in enumerate(request["commands"]):
            if isinstance(command, dict):
                env = {**request.get("env", {}), **command.get("env", {})}
                root = command.get("root", request.get("root"))
                cwd, timeout = command.get("cwd"), int(command.get("timeout", 0))
                result = run(root, env, command["args"], Path(folder), index, cwd, timeout)
            else:
                result = run(request["root"], request["env"], command, Path(folder), index)
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
