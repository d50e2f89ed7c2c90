"""``make demo-s3`` (scripts/demo_s3.py) runs the shop example with its lake in a bucket of a
local S3 server, and builds exactly the warehouse that the same example builds on a local lake."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import warehouse_digest
from testkit.s3 import moto_available

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "shop"
DEMO = ROOT / "scripts" / "demo_s3.py"
WAREHOUSE = Path("warehouse") / "shop_development.duckdb"


def _module(name: str, path: Path) -> object:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tracked_example() -> dict[str, str]:
    listed = subprocess.run(["git", "ls-files", "examples/shop"], cwd=ROOT, capture_output=True, text=True, check=True)
    return {name: hashlib.sha256((ROOT / name).read_bytes()).hexdigest() for name in listed.stdout.split()}


@pytest.mark.slow  # two whole runs of the example: about 15 s on an idle machine, 40 s on a busy one
@pytest.mark.skipif(not moto_available(), reason="moto[server] is not installed (a dev dependency: make setup)")
def test_demo_s3_builds_the_same_warehouse_as_a_local_lake(tmp_path: Path) -> None:
    upstream = tmp_path / "shop.db"
    _module("shop_example_generate", EXAMPLE / "generate.py").generate(upstream, scale=0.05, seed=11)  # type: ignore[attr-defined]
    before = _tracked_example()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the demo sets its own

    # what `make demo-s3` runs, with a smaller upstream database and a scratch work folder
    demo = subprocess.run(
        [sys.executable, str(DEMO), "--workdir", str(tmp_path / "s3"), "--upstream", str(upstream)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "Lake: s3://conveyor-demo/shop" in out
    listed = re.findall(r"s3://conveyor-demo/(shop/data/shop/shop\.(\w+)/[^/]+/(\S+))", out)
    assert {table for _key, table, _name in listed} == {
        "customers",
        "order_items",
        "orders",
        "payments",
        "product_reviews",
        "products",
    }
    assert sum(name == "manifest.json" for _key, _t, name in listed) == 6
    assert re.search(rf"{len(listed)} objects, [\d,]+ bytes under s3://conveyor-demo/shop/", out)
    # the server is stopped and forgotten
    pid = int(re.search(r"local S3 server \(pid (\d+)\) stopped", out).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists() or b"moto" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert not (tmp_path / "s3" / "s3-local" / "pid").exists()
    s3_project = tmp_path / "s3" / "shop"
    assert not (s3_project / "lake").exists()

    # the same example on a local lake
    local = _module("demo_s3", DEMO).copy_project(tmp_path / "local", "lake")  # type: ignore[attr-defined]
    run = subprocess.run(
        [str(Path(sys.executable).parent / "conveyor"), "run"],
        cwd=local,
        env={**env, "SHOP_DB": str(upstream)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (local / "lake" / "data").is_dir()

    remote, here = warehouse_digest(s3_project / WAREHOUSE), warehouse_digest(local / WAREHOUSE)
    assert len(remote) >= 15 and remote == here
    assert _tracked_example() == before  # the tracked example was not touched
