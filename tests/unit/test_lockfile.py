"""kv/lockfile.py's `holding`: while a reshard reads a store, no server can open it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codeq.kv.lockfile import StoreInUseError, holding
from codeq.kv.rocks import RocksKV

OPEN_IT = """
import sys
from codeq.kv.lockfile import StoreInUseError
from codeq.kv.rocks import RocksKV
try:
    RocksKV(sys.argv[1]).close()
except StoreInUseError as exc:
    print(exc.pid)
"""


def other_process_opens(path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_IT, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_held_store_is_refused_to_another_process_and_free_after(tmp_path: Path) -> None:
    RocksKV(str(tmp_path / "store")).close()
    lock = (tmp_path / "store" / "LOCK").read_bytes()
    reader = RocksKV(str(tmp_path / "store"), read_only=True)
    with holding(str(tmp_path / "store")):
        assert other_process_opens(tmp_path / "store") == str(os.getpid())
        assert dict(reader.scan(b"", b"\xff")) == {}  # this process still reads it
        reader.close()
        assert other_process_opens(tmp_path / "store") == str(os.getpid())
    assert other_process_opens(tmp_path / "store") == ""
    assert (tmp_path / "store" / "LOCK").read_bytes() == lock


def test_a_store_a_server_holds_cannot_be_held(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom codeq.kv.rocks import RocksKV\n"
         "kv = RocksKV(sys.argv[1]); print('open', flush=True); time.sleep(60)", str(tmp_path / "store")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "open"
        with pytest.raises(StoreInUseError) as info, holding(str(tmp_path / "store")):
            pass
        assert info.value.pid == server.pid
    finally:
        server.kill()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()
