"""`codeq bench` through its real entry point: it spawns a server and counts acknowledged cycles."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process


@pytest.mark.parametrize("mode", ["http", "grpc-batch"])
def test_bench_counts_acknowledged_cycles(mode: str) -> None:
    command = [
        sys.executable, "-m", "codeq.cli.main", "bench", "--spawn", "--mode", mode, "--count", "200",
        "--warmup", "0", "--batch", "20", "--fsync", "off", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mode"] == mode
    assert result["cycles"] >= 200
    assert result["errors"] == 0
    assert result["create_to_result_ms"]["p50"] > 0
    # The spawned server's CPU and the client's own, per acknowledged cycle.
    assert result["server_cpu_us_per_cycle"] > 0 and result["client_cpu_us_per_cycle"] > 0


def test_bench_rejects_an_unknown_mode() -> None:
    command = [sys.executable, "-m", "codeq.cli.main", "bench", "--mode", "carrier-pigeon"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--mode" in done.stderr
