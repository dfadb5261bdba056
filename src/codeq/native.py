"""`python -m codeq.native`: compile the hot path with mypyc, in place (ADR 0010).

Beside each of `HOT_MODULES` a C extension appears, one shared library holding them all
lands at the root of the tree, and the manifest `codeq.compiled` checks at every import is
written last. Needs mypy (the `native` extra) and a C compiler. The compiled code is the
same code: mypyc compiles the annotated Python that also runs as Python (`CODEQ_NATIVE=0`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from codeq.compiled import MANIFEST, PACKAGE_DIR, check, compiled_of, digest, read_manifest, source_of

# What a request, a claim and a commit run through (measured: docs/benchmarks.md, ADR 0010).
# Not here: msgspec Struct modules (mypyc cannot compile their subclasses) and anything run
# rarely, which gains nothing.
HOT_MODULES = (
    "codeq.transport.http.protocol",
    "codeq.transport.http.exchange",
    "codeq.transport.http.asgi",
    "codeq.transport.http.app",
    "codeq.transport.http.tasks",
    "codeq.transport.http.errors",
    "codeq.transport.http.render",
    "codeq.transport.http.body",
    "codeq.engine.engine",
    "codeq.engine.claim",
    "codeq.engine.context",
    "codeq.engine.keys",
    "codeq.engine.shards",
    "codeq.kv.commit",
    "codeq.service.tasks",
    "codeq.service.results",
)


class BuildFailed(RuntimeError):
    """mypyc or the C compiler failed; the message holds their output."""


def clean(root: Path) -> None:
    """Remove a previous build's extensions, shared library and manifest under `root`."""
    package_dir = root / "codeq"
    manifest = read_manifest(package_dir)
    modules = set(HOT_MODULES)
    if manifest is not None:
        (root / manifest[0]).unlink(missing_ok=True)
        modules.update(manifest[1])
    for module in sorted(modules):
        for built in compiled_of(root, module):
            os.unlink(built)
    (package_dir / MANIFEST).unlink(missing_ok=True)


def build(root: Path, python: str = sys.executable, modules: Sequence[str] = HOT_MODULES) -> str:
    """Compile `modules` under `root` (the directory holding the `codeq` package) in
    place and write the manifest; returns the shared library's file name. Needs mypy (mypyc)
    and a C compiler; on failure the previous build is gone and everything runs from source."""
    import shutil  # the build's own imports: `import codeq` runs only the guard
    import subprocess
    import tempfile

    root = root.resolve()
    clean(root)
    with tempfile.TemporaryDirectory(prefix="codeq-mypyc-") as scratch:
        # mypyc writes its C files and objects under ./build and the extensions in place:
        # it runs in a scratch directory, pointed at the sources by absolute path, and what
        # it built is moved beside them.
        # Types are checked by `make check` (mypy --strict); the build needs only what mypyc
        # reads, so untyped third-party packages are not errors here.
        config = Path(scratch, "mypy.ini")
        config.write_text("[mypy]\nignore_missing_imports = True\n")
        env = {**os.environ, "MYPY_CACHE_DIR": os.path.join(scratch, "cache")}
        if root.name not in ("site-packages", "dist-packages"):  # an installed codeq is found as such
            env["MYPYPATH"] = str(root)  # (mypy refuses site-packages on its search path)
        sources = [source_of(root, module) for module in modules]
        for module in modules:  # where the in-place build puts each extension
            os.makedirs(os.path.dirname(source_of(scratch, module)), exist_ok=True)
        done = subprocess.run(
            [python, "-m", "mypyc", "--config-file", str(config), *sources],
            cwd=scratch, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:  # the compiler's own words, only when they matter
            raise BuildFailed(f"mypyc exited with status {done.returncode}:\n{done.stdout}{done.stderr}")
        # The library holding every compiled module: named by a hash at the root for several
        # modules, `<module>__mypyc` beside a single one.
        built = [
            path.relative_to(scratch)
            for path in Path(scratch).rglob("*__mypyc*.so")
            if path.relative_to(scratch).parts[0] != "build"
        ]
        if len(built) != 1:
            raise BuildFailed(f"mypyc built {len(built)} shared libraries, expected one")
        (shared,) = built
        shutil.move(str(Path(scratch, shared)), root / shared)
        for module in modules:
            extension = compiled_of(scratch, module)
            if len(extension) != 1:
                raise BuildFailed(f"mypyc built no extension for {module}")
            shutil.move(
                extension[0],
                os.path.join(os.path.dirname(source_of(root, module)), os.path.basename(extension[0])),
            )
    lines = [f"shared {shared.as_posix()}"]
    lines += [f"{module} {digest(source_of(root, module))}" for module in modules]
    (root / "codeq" / MANIFEST).write_text("\n".join(lines) + "\n")
    return shared.as_posix()


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="python -m codeq.native", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path(PACKAGE_DIR).parent, help="the directory holding the codeq package"
    )
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules instead")
    parser.add_argument(
        "--if-stale", action="store_true",
        help="only when the compiled modules are missing or older than their sources; without a C "
        "compiler, say so and leave everything to run from source",
    )  # fmt: skip
    parser.add_argument(
        "--module", action="append", choices=HOT_MODULES, metavar="NAME",
        help="compile only this hot module (repeatable; default: every one)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    modules = tuple(args.module or HOT_MODULES)
    if args.clean:
        clean(args.root)
        print(f"removed the compiled modules under {args.root}")
        return 0
    if args.if_stale:
        status, _ = check(args.root / "codeq", environ={})
        built = read_manifest(args.root / "codeq")
        if status == "compiled" and built is not None and set(built[1]) == set(modules):
            return 0
        compiler = os.environ.get("CC", "cc")
        if shutil.which(compiler) is None:
            print(
                f"warning: no C compiler ({compiler}): codeq runs from source, slower (ADR 0010)",
                file=sys.stderr,
            )
            return 0
    print(f"compiling {len(modules)} modules with mypyc (about a minute; ADR 0010)", flush=True)
    try:
        shared = build(args.root, modules=modules)
    except BuildFailed as exc:
        print(f"codeq.native: {exc}", file=sys.stderr)
        return 1
    print(f"compiled {len(modules)} modules under {args.root} (shared library {shared})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
