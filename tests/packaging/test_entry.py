"""The `codeq` console script when a dependency is missing: a hint for third-party modules only."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import codeq


def run_entry(blocked: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script's `main` with the module `blocked` made unimportable."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{blocked!r}] = None
        from codeq.cli.entry import main
        main({list(args)!r})
        """
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_server_module_missing_when_serve_runs_is_the_one_line_hint() -> None:
    # A bad port: were the module not needed, serve would stop at the configuration check (exit 2).
    done = run_entry("prometheus_client", "serve", "--port", "70000")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"codeq serve needs the server extra: pip install '{codeq.DISTRIBUTION}[server]'\n"


def test_a_missing_module_of_codeq_itself_is_a_traceback_not_a_hint() -> None:
    done = run_entry("codeq.cli.main", "serve")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "server extra" not in done.stderr


def test_with_every_dependency_the_script_is_the_typer_app() -> None:
    done = run_entry("no-such-module", "--version")
    assert (done.returncode, done.stdout) == (0, f"codeq {codeq.__version__}\n")
