"""The compiled hot path (ADR 0010): built with mypyc, used only while it matches its sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import codeq
from codeq import compiled, native

SRC = Path(codeq.__file__).resolve().parents[1]
PROBE = """
import json, codeq, codeq.engine.shards as shards
print(json.dumps({"status": codeq.NATIVE, "file": shards.__file__, "hash": shards.fnv1a64(b"codeq")}))
"""
# FNV-1a-64 of b"codeq" (offset basis 0xcbf29ce484222325, prime 0x100000001b3), by another
# implementation than ours.
FNV_CODEQ = 0x2FFB708DFAE5379F


def _copy_package(root: Path) -> Path:
    """The checkout's `codeq` sources alone (no compiled files), under `root`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.so", compiled.MANIFEST)
    shutil.copytree(SRC / "codeq", root / "codeq", ignore=ignore)
    return root


def _probe(root: Path, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k != compiled.SWITCH}
    environ.update(PYTHONPATH=str(root), **env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_without_a_manifest_nothing_is_compiled(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    assert compiled.check(root / "codeq", environ={}) == ("absent", [])
    probe = _probe(root)
    assert probe["status"] == "absent" and str(probe["file"]).endswith(".py")


def test_a_manifest_naming_what_was_never_built_is_stale(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    (root / "fake__mypyc.so").write_bytes(b"")
    (root / "codeq" / compiled.MANIFEST).write_text("shared fake__mypyc.so\ncodeq.engine.shards 00\n")
    status, from_source = compiled.check(root / "codeq", environ={})
    assert status == "stale (codeq.engine.shards)" and from_source == ["codeq.engine.shards"]
    (root / "fake__mypyc.so").unlink()
    assert compiled.check(root / "codeq", environ={})[0] == "stale (shared library missing)"


@pytest.mark.timeout(300)
def test_compiled_modules_are_used_until_their_source_changes(tmp_path: Path) -> None:
    """Compiles one module for real (mypyc and the C compiler), then edits its source."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler: codeq runs from source here")
    root = _copy_package(tmp_path)
    shared = native.build(root, modules=("codeq.engine.shards",))
    built = _probe(root)
    assert built["status"] == "compiled"
    assert str(built["file"]).endswith(".so") and built["hash"] == FNV_CODEQ

    disabled = _probe(root, **{compiled.SWITCH: "0"})
    assert disabled["status"] == "disabled" and str(disabled["file"]).endswith(".py")
    assert disabled["hash"] == FNV_CODEQ

    source = root / "codeq" / "engine" / "shards.py"
    source.write_text(source.read_text() + "\n# edited after the build\n")
    stale = _probe(root)
    assert stale["status"] == "stale (codeq.engine.shards)" and str(stale["file"]).endswith(".py")

    native.clean(root)
    assert not (root / shared).exists() and not list(root.rglob("*.so"))
    assert _probe(root)["status"] == "absent"


def test_a_failed_build_leaves_everything_to_run_from_source(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    (root / "codeq" / compiled.MANIFEST).write_text("shared gone__mypyc.so\ncodeq.engine.shards 00\n")
    with pytest.raises(native.BuildFailed, match="mypyc exited with status 1"):
        native.build(root, python=shutil.which("false") or "/bin/false", modules=("codeq.engine.shards",))
    assert compiled.check(root / "codeq", environ={}) == ("absent", [])
