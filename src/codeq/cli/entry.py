"""The `codeq` console script: says which extra to install instead of printing a traceback."""

from __future__ import annotations

import sys

from codeq import DISTRIBUTION, __version__


def main(argv: list[str] | None = None) -> None:
    """Run the Typer app, which needs the `server` extra (Typer, Rich and the server itself).

    The base install is the SDK alone, so every command, and the server's modules that a
    command imports lazily, may be missing: that is a one-line hint and exit status 1.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["worker"]:
        # Needs only the SDK, so it runs before Typer is imported.
        from codeq.cli.worker import exit_now
        from codeq.cli.worker import main as worker_main

        exit_now(worker_main(args[1:]))
    try:
        from codeq.cli.main import cli

        cli(args=args, prog_name="codeq")
    except ModuleNotFoundError as exc:
        if not missing_dependency(exc):
            raise
        if args == ["--version"]:
            print(f"codeq {__version__}")
            return
        print(server_extra_hint(args), file=sys.stderr)
        raise SystemExit(1) from None


def missing_dependency(exc: ModuleNotFoundError) -> bool:
    """True when a third-party module is missing; a missing module of codeq's own is a bug."""
    return bool(exc.name) and str(exc.name).partition(".")[0] != "codeq"


def server_extra_hint(args: list[str]) -> str:
    command = next((arg for arg in args if not arg.startswith("-")), None)
    what = f"codeq {command}" if command else "codeq"
    return f"{what} needs the server extra: pip install '{DISTRIBUTION}[server]'"


if __name__ == "__main__":
    main()
