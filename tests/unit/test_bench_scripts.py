"""The benchmark scripts keep up with the code they measure (they are not run in make test)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_every_bench_script_imports(script: str) -> None:
    name = f"bench_{script[:-3]}"
    spec = importlib.util.spec_from_file_location(name, BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]


def test_the_engine_bench_runs_a_short_apply_and_store_pass(tmp_path: Path) -> None:
    command = [sys.executable, str(BENCH / "engine_bench.py"), "--scenarios", "apply,cycle"]
    command += ["--fsync", "off", "--duration", "0.2", "--warmup", "0", "--repeat", "1", "--node"]
    command += ["--tmp-dir", str(tmp_path), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
