"""Keeps the compiled hot path (ADR 0010) from going stale; `codeq.native` builds it.

A build leaves a C extension beside each compiled module's `.py` (Python imports it instead
of the source), one shared library at the root of the tree, and a manifest (`_native.txt`,
beside this file) with the SHA-256 of every compiled source and the shared library's name.

Compiled modules call each other directly in C, so they are used all together or not at
all: when `codeq` is imported, any compiled source that no longer matches the manifest, a
missing shared library, or `CODEQ_NATIVE=0` in the environment makes every one of them load
from its source instead, and `codeq.NATIVE` says why. Standard library only: the SDK imports
`codeq` too.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# Only what `import codeq` pays for anyway at the top: pathlib, hashlib, importlib.abc and
# importlib.util cost about 20 ms together at every start of the CLI and the SDK.
MANIFEST = "_native.txt"
SWITCH = "CODEQ_NATIVE"  # "0": load every module from its source even when compiled
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SUFFIXES = [suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES if suffix != ".so"]
Where = str | os.PathLike[str]


def digest(path: Where) -> str:
    import hashlib  # only with a build to check

    with open(path, "rb") as source:
        return hashlib.sha256(source.read()).hexdigest()


def source_of(root: Where, module: str) -> str:
    return os.path.join(root, *module.split(".")) + ".py"


def compiled_of(root: Where, module: str) -> list[str]:
    """The module's extension for this interpreter (its ABI tag in the name), if built."""
    stem = source_of(root, module)[: -len(".py")]
    return [stem + suffix for suffix in _SUFFIXES if os.path.exists(stem + suffix)]


def read_manifest(package_dir: Where = PACKAGE_DIR) -> tuple[str, dict[str, str]] | None:
    """(shared library path below the root, {module: source digest}) of the last build, or None."""
    try:
        with open(os.path.join(package_dir, MANIFEST)) as manifest:
            lines = manifest.read().splitlines()
    except OSError:
        return None
    if not lines or not lines[0].startswith("shared "):
        return None
    digests = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    return lines[0].removeprefix("shared "), digests


def check(package_dir: Where = PACKAGE_DIR, environ: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """What `import codeq` finds: ("compiled" | "absent" | "disabled" | "stale", the modules
    to load from source). Stale names the first module whose source changed since its build."""
    manifest = read_manifest(package_dir)
    if manifest is None:
        return "absent", []
    modules = list(manifest[1])
    if (os.environ if environ is None else environ).get(SWITCH) == "0":
        return "disabled", modules
    root = os.path.dirname(os.path.abspath(package_dir))
    if not os.path.exists(os.path.join(root, manifest[0])):
        return "stale (shared library missing)", modules
    for module, built_from in manifest[1].items():
        source = source_of(root, module)
        if not os.path.exists(source) or not compiled_of(root, module) or digest(source) != built_from:
            return f"stale ({module})", modules
    return "compiled", []


class _FromSource:
    """A `sys.meta_path` finder of the named modules' `.py`, ahead of the compiled extension
    beside it."""

    def __init__(self, root: str, modules: Sequence[str]) -> None:
        self._sources = {module: source_of(root, module) for module in modules}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self._sources.get(fullname)
        if source is None or not os.path.exists(source):
            return None
        import importlib.util  # only once something runs from source

        return importlib.util.spec_from_file_location(fullname, source)


def guard() -> str:
    """Run once by `import codeq`, before any compiled module can be imported."""
    status, from_source = check()
    if from_source:
        sys.meta_path.insert(0, _FromSource(os.path.dirname(PACKAGE_DIR), from_source))
    return status
