"""The container image: hadolint, its documented shape, and its entry command run as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.support import (
    BIN,
    ROOT,
    Instruction,
    dockerfile_instructions,
    exec_form,
    final_stage,
    healthcheck_command,
    image_env,
    server_env_names,
    tool,
)
from tests.support.server import free_port

DOCKERFILE = ROOT / "Dockerfile"
DATA_VOLUME = "/var/lib/codeq"
# Read by the interpreter, not by codeq.
INTERPRETER_ENV = frozenset({"PATH", "PYTHONUNBUFFERED"})
# What an operator adds: the image configures no authentication on purpose.
OPERATOR_AUTH = {
    "PRODUCER_AUTH_PROVIDER": "static",
    "PRODUCER_AUTH_CONFIG": json.dumps("image-test-producer"),
    "WORKER_AUTH_PROVIDER": "static",
    "WORKER_AUTH_CONFIG": json.dumps("image-test-worker"),
    "ALLOW_STATIC_TOKENS": "true",
}


@pytest.fixture(scope="module")
def stage() -> list[Instruction]:
    return final_stage(dockerfile_instructions(DOCKERFILE))


def test_hadolint_finds_nothing() -> None:
    run = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_image_is_multi_stage_slim_and_runs_as_a_non_root_user(stage: list[Instruction]) -> None:
    froms = [ins.arguments for ins in dockerfile_instructions(DOCKERFILE) if ins.keyword == "FROM"]
    assert len(froms) >= 2
    assert all("-slim" in base for base in froms)
    (user,) = [ins.arguments for ins in stage if ins.keyword == "USER"]
    assert user.split(":")[0] not in ("0", "root")


def test_image_declares_the_volume_ports_healthcheck_and_entry_command(stage: list[Instruction]) -> None:
    volumes = [json.loads(ins.arguments) for ins in stage if ins.keyword == "VOLUME"]
    assert volumes == [[DATA_VOLUME]]
    exposed = {port for ins in stage if ins.keyword == "EXPOSE" for port in ins.arguments.split()}
    assert exposed == {"8080", "9091", "9092", "7000"}
    assert any("/healthz" in word for word in healthcheck_command(stage))
    assert exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD") == ["codeq", "serve"]


def test_image_env_uses_only_names_the_server_reads(stage: list[Instruction]) -> None:
    env = image_env(stage)
    unknown = set(env) - server_env_names() - INTERPRETER_ENV
    assert not unknown, f"the image sets names codeq does not read: {sorted(unknown)}"
    assert json.loads(env["PERSISTENCE_CONFIG"])["path"] == DATA_VOLUME


def test_dockerignore_keeps_everything_the_build_copies() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # everything else stays out of the build context
    copies = [
        ins.arguments.split()[:-1]
        for ins in dockerfile_instructions(DOCKERFILE)
        if ins.keyword == "COPY" and not ins.arguments.startswith("--from")
    ]
    sources = {source.rstrip("/") for words in copies for source in words}
    assert sources and sources <= kept, sorted(sources - kept)


def _container_env(stage: list[Instruction], data: Path) -> dict[str, str]:
    """The image's ENV, with this machine's paths and free loopback ports in place of the container's."""
    env = image_env(stage)
    persistence = json.loads(env["PERSISTENCE_CONFIG"])
    persistence["path"] = str(data)
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        HOME=str(data.parent),
        HOST="127.0.0.1",
        PORT=str(free_port()),
        PRODUCER_STREAM_ADDR=f"127.0.0.1:{free_port()}",
        WORKER_STREAM_ADDR=f"127.0.0.1:{free_port()}",
        PERSISTENCE_CONFIG=json.dumps(persistence),
        **OPERATOR_AUTH,
    )
    return env


@pytest.fixture
def container_process(stage: list[Instruction], tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    data = tmp_path / "var-lib-codeq"
    env = _container_env(stage, data)
    log = tmp_path / "serve.log"
    command = exec_form(stage, "ENTRYPOINT") + exec_form(stage, "CMD")
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_alive(proc, f"http://127.0.0.1:{env['PORT']}", log)
        yield env, data
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_until_alive(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the image's command exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling for the process to come up, not waiting on queue behaviour
    raise AssertionError(f"/healthz never answered: {log.read_text()}")


@pytest.mark.process
def test_the_images_command_serves_healthz_with_the_images_env(
    stage: list[Instruction], container_process: tuple[dict[str, str], Path]
) -> None:
    env, data = container_process
    reply = httpx.get(f"http://127.0.0.1:{env['PORT']}/healthz", timeout=5)
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}
    assert any(data.iterdir()), "the store was not opened in the data directory PERSISTENCE_CONFIG names"
    check = subprocess.run(healthcheck_command(stage), env=env, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stderr
