"""The SDK stands alone: importable without the server's dependencies, and the README runs."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from tests.sdk.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Everything but msgspec, the one base dependency: httpx (now only for the tests) too.
SERVER_ONLY = [
    "rocksdict",
    "uvicorn",
    "uvloop",
    "prometheus_client",
    "yaml",
    "typer",
    "rich",
    "grpc",
    "httpx",
]


def test_the_client_imports_without_any_server_dependency() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        for name in {SERVER_ONLY!r} + ["google.protobuf"]:
            sys.modules[name] = None  # any import of these now raises ImportError
        import codeq.client
        from codeq.client import AsyncWorker, Producer, Worker

        producer = Producer("http://127.0.0.1:9", "token")
        producer.close()
        Worker("http://127.0.0.1:9", "token").register("render", lambda job: None)
        AsyncWorker("http://127.0.0.1:9", "token")
        ours = sorted(m for m in sys.modules if m.startswith("codeq."))
        # codeq.compiled: the package's guard of its compiled modules (standard library only)
        allowed = ("codeq.client", "codeq.wire", "codeq.h1", "codeq.compiled")
        assert all(m.startswith(allowed) for m in ours), ours
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_msgspec_is_the_only_base_dependency_and_httpx_only_a_test_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [re.split("[<>=;\\[ ]", d, maxsplit=1)[0] for d in project["dependencies"]] == ["msgspec"]
    extras = project["optional-dependencies"]
    with_httpx = sorted(name for name, deps in extras.items() if any(d.startswith("httpx") for d in deps))
    assert with_httpx == ["dev"]


def readme_examples() -> list[str]:
    section = README.read_text().split("\n## Python SDK\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


async def test_the_readme_examples_run_as_written(server: LiveServer) -> None:
    examples = readme_examples()
    assert len(examples) == 2
    outputs = []
    for code in examples:
        assert "http://127.0.0.1:8080" in code  # what `make run` serves
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code.replace("http://127.0.0.1:8080", server.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        outputs.append(out.decode())
    assert outputs[0].splitlines()[0].startswith("created ")
    assert outputs[0].splitlines()[1] == "COMPLETED {'rendered': 1}"
    assert outputs[1] == "{'width': 640, 'height': 480}\n"
