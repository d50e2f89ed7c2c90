"""``make demo-s3``: the shop example end to end with its lake in an S3 bucket.

1. starts a local S3-compatible server (moto, on a free 127.0.0.1 port: scripts/s3_local.py)
   and creates a bucket with a plain HTTP request;
2. copies the example project (examples/shop, without its generated folders) to
   ``build/demo-s3/shop`` and sets ``lake.path: s3://<bucket>/shop`` in the copy's
   conveyor.yaml (the tracked example is never edited);
3. runs ``conveyor run`` there, with the server named only by the standard AWS environment
   (``AWS_ENDPOINT_URL``, keys, region) and ``SHOP_DB`` pointing at the example's upstream
   database;
4. lists what is in the bucket, and stops the server, whatever happened.

The warehouse stays in ``build/demo-s3/shop/warehouse`` (the bucket goes with the server:
moto keeps objects in memory). Usage::

    .venv/bin/python examples/shop/generate.py        # once: the upstream database
    .venv/bin/python scripts/demo_s3.py [--workdir build/demo-s3] [--bucket conveyor-demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "shop"
sys.path.insert(0, str(HERE))
import s3_local  # noqa: E402

#: what a copy of the example leaves out: generated data, local state, private settings
GENERATED = ("lake", "warehouse", "upstream", ".conveyor", ".env", "__pycache__")
LAKE_LINE = "  path: lake\n"


def copy_project(dest: Path, lake_path: str) -> Path:
    """A copy of the shop example in ``dest`` whose conveyor.yaml has ``lake.path: lake_path``."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(*GENERATED))
    settings = dest / "conveyor.yaml"
    text = settings.read_text()
    if text.count(LAKE_LINE) != 1:
        raise SystemExit(f"{EXAMPLE / 'conveyor.yaml'} no longer has exactly one line {LAKE_LINE.strip()!r}")
    settings.write_text(text.replace(LAKE_LINE, f"  path: {lake_path}\n"))
    return dest


def conveyor() -> str:
    """The conveyor script of this Python's environment (the .venv's under make)."""
    return str(Path(sys.executable).parent / "conveyor")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo-s3", help="where the copy goes")
    parser.add_argument("--bucket", default="conveyor-demo", help="the bucket to create (default: conveyor-demo)")
    parser.add_argument(
        "--upstream",
        type=Path,
        default=EXAMPLE / "upstream" / "shop.db",
        help="the upstream SQLite database (default: the one examples/shop/generate.py writes)",
    )
    args = parser.parse_args()
    upstream = args.upstream.resolve()
    if not upstream.is_file():
        print(f"{upstream} does not exist: run 'python examples/shop/generate.py' first.", file=sys.stderr)
        return 2
    workdir = args.workdir.resolve()
    state = workdir / "s3-local"
    server = s3_local.start(state)
    try:
        print(f"local S3 server (moto) at {server.endpoint}, pid {server.pid}", flush=True)
        server.create_bucket(args.bucket)
        lake = f"s3://{args.bucket}/shop"
        project = copy_project(workdir / "shop", lake)
        print(f"project copied to {project}, lake.path: {lake}", flush=True)
        # only the local server's AWS settings: no profile, session token or other endpoint of yours
        mine = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {**mine, **server.env, "SHOP_DB": str(upstream)}
        done = subprocess.run([conveyor(), "run"], cwd=project, env=env, check=False)
        print(f"\nin the bucket (s3://{args.bucket}/shop):", flush=True)
        s3_local.print_objects(server, args.bucket, "shop/")
        if done.returncode == 0:
            print(f"\nThe warehouse is {project / 'warehouse'}; the bucket goes with the server.")
        return done.returncode
    finally:
        s3_local.stop(state)
        print(f"local S3 server (pid {server.pid}) stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
