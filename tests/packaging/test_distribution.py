"""The built sdist and wheel, installed into fresh virtualenvs whose path holds only the
distributions an extra declares (linked from this venv, so nothing is downloaded): without
extras it is the SDK alone (msgspec) and `codeq` names the extra to install; with `grpc` the
SDK's streams import; with `server` the installed `codeq` command serves."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import codeq
from tests.packaging.dependencies import link, needed
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`python -m build`: the sdist, then the wheel built from the unpacked sdist (so a file the
    sdist forgets is missing from the wheel too). No isolation: setuptools is already here."""
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Built(wheel, sdist)


def fresh_venv(root: Path, wheel: Path, dependencies: list[Path]) -> Path:
    """A new virtualenv with the wheel installed (no dependencies resolved) and only the given
    directories added to its path, through a .pth file. Returns its bin directory."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60)
    python = root / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    install += ["--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)]
    subprocess.run(install, check=True, timeout=120, capture_output=True)
    site = run_in(root / "bin", "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    lines = "".join(f"{path}\n" for path in dependencies)
    Path(site.stdout.strip(), "dependencies.pth").write_text(lines)
    return root / "bin"


def run_in(bin_dir: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / program), *args], capture_output=True, text=True, timeout=60)


def venv_with(built: Built, root: Path, extras: set[str]) -> Path:
    """A fresh venv with the wheel and exactly the installed distributions `extras` need."""
    requires = metadata(built.wheel).get_all("Requires-Dist") or []
    link(needed(requires, extras), root / "deps")
    return fresh_venv(root / "venv", built.wheel, [root / "deps"])


@pytest.fixture(scope="module")
def sdk_only(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv_with(built, tmp_path_factory.mktemp("sdk-only"), set())


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_distribution_name_base_dependencies_and_extras(built: Built) -> None:
    meta = metadata(built.wheel)
    assert meta["Name"] == codeq.DISTRIBUTION
    assert meta["Version"] == codeq.__version__
    assert set(meta.get_all("Provides-Extra") or []) >= {"grpc", "server", "otel"}
    requires = meta.get_all("Requires-Dist") or []
    assert [r for r in requires if "extra ==" not in r] == ["msgspec>=0.19"]
    server = [r.split(";")[0] for r in requires if 'extra == "server"' in r]
    assert {r.split(">")[0].split("=")[0].split("[")[0] for r in server} >= {"typer", "rich", "rocksdict"}


def test_the_wheel_and_sdist_hold_every_tracked_file_of_the_package(built: Built) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "src/codeq"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "src/codeq/py.typed" in tracked
    with zipfile.ZipFile(built.wheel) as archive:
        in_wheel = set(archive.namelist())
    assert {path.removeprefix("src/") for path in tracked} <= in_wheel
    assert all(name.startswith(("codeq/", "codeq_queue-")) for name in in_wheel)
    entry_points = next(n for n in in_wheel if n.endswith("entry_points.txt"))
    with zipfile.ZipFile(built.wheel) as archive:
        assert "codeq = codeq.cli.entry:main" in archive.read(entry_points).decode()
    with tarfile.open(built.sdist) as archive:
        in_sdist = {name.partition("/")[2] for name in archive.getnames()}
    assert {"pyproject.toml", "README.md", *tracked} <= in_sdist


def test_without_extras_the_sdk_talks_to_a_server_and_nothing_else_is_installed(
    sdk_only: Path, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "data", args=free_stream_ports())
    script = textwrap.dedent(
        """
        import importlib.util, sys
        import codeq.client
        from codeq.client import Producer
        assert codeq.client.__file__.startswith(sys.prefix), codeq.client.__file__
        for module in ("typer", "rich", "rocksdict", "grpc", "httpx", "yaml"):
            assert importlib.util.find_spec(module) is None, module
        with Producer(sys.argv[1], token="dev-producer") as producer:
            task = producer.create("render", {"page": 1})
            print(producer.get(task.id).payload)
        """
    )
    server.start()
    try:
        done = run_in(sdk_only, "python", "-c", script, server.url)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'page': 1}"


@pytest.mark.parametrize(
    ("args", "first_word"),
    [(["serve", "--dev"], "codeq serve"), (["task", "get", "x"], "codeq task"), ([], "codeq")],
)
def test_without_the_server_extra_the_command_names_the_extra(
    sdk_only: Path, args: list[str], first_word: str
) -> None:
    done = run_in(sdk_only, "codeq", *args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"{first_word} needs the server extra: pip install '{codeq.DISTRIBUTION}[server]'\n"


def test_without_the_server_extra_the_version_still_prints(sdk_only: Path) -> None:
    done = run_in(sdk_only, "codeq", "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"codeq {codeq.__version__}\n", "")


def test_with_the_grpc_extra_the_sdk_streams_import(built: Built, tmp_path: Path) -> None:
    bin_dir = venv_with(built, tmp_path, {"grpc"})
    done = run_in(
        bin_dir, "python", "-c", "import codeq.client._grpc, importlib.util as u; print(u.find_spec('typer'))"
    )
    assert (done.returncode, done.stdout) == (0, "None\n"), done.stderr


def test_with_only_the_server_extra_the_installed_command_serves(built: Built, tmp_path: Path) -> None:
    bin_dir = venv_with(built, tmp_path, {"server"})
    done = run_in(bin_dir, "codeq", "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"codeq {codeq.__version__}\n", "")
    script = (
        "import codeq.cli.serve, importlib.util as u; print(codeq.cli.serve.__file__, u.find_spec('pytest'))"
    )
    where = run_in(bin_dir, "python", "-c", script)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr
    assert where.stdout.endswith(" None\n")  # the dev dependencies are not on its path
    assert_installed_command_creates_a_task(bin_dir, tmp_path)


def assert_installed_command_creates_a_task(bin_dir: Path, tmp_path: Path) -> None:
    """`codeq serve --dev` from `bin_dir` takes a create (202)."""
    port = free_port()
    serve = [str(bin_dir / "codeq"), "serve", "--dev", "--host", "127.0.0.1", "--port", str(port)]
    serve += free_stream_ports()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*serve, "--data", str(tmp_path / "data")], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        created = first_answer(proc, log, f"http://127.0.0.1:{port}/v1/codeq/tasks")
        assert created.status_code == 202, created.text
    finally:
        proc.terminate()
        proc.wait(30)


def free_stream_ports() -> list[str]:
    """--dev would open the gRPC streams on the fixed ports 9092 and 9091, which another test
    process on this machine may hold."""
    return [
        *("--producer-stream-addr", f"127.0.0.1:{free_port()}"),
        *("--worker-stream-addr", f"127.0.0.1:{free_port()}"),
    ]


def first_answer(proc: subprocess.Popen[bytes], log: Path, url: str) -> httpx.Response:
    """Create a task as soon as the process listens (polling its start, up to 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            body = {"command": "render", "payload": {}}
            return httpx.post(url, json=body, headers={"Authorization": "Bearer dev-producer"}, timeout=5)
        except httpx.TransportError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


def test_the_image_compile_step_outside_a_container(built: Built, tmp_path: Path) -> None:
    """The Dockerfile's build stage: install with the `server` and `native` extras, then
    `python -m codeq.native` compiles in site-packages (one module here, to keep it short);
    the installed command then serves with it."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler: the compile step cannot run here")
    bin_dir = venv_with(built, tmp_path, {"server", "native"})
    done = run_in(bin_dir, "python", "-m", "codeq.native", "--module", "codeq.transport.http.body")
    assert done.returncode == 0, done.stdout + done.stderr
    script = "import codeq, codeq.transport.http.body as b; print(codeq.NATIVE, b.__file__)"
    status, where = run_in(bin_dir, "python", "-c", script).stdout.split()
    assert status == "compiled" and where.startswith(str(tmp_path / "venv")) and where.endswith(".so")
    assert_installed_command_creates_a_task(bin_dir, tmp_path)
