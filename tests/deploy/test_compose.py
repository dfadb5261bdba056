"""The Compose projects under deploy/compose: valid for Compose, and configurations codeq accepts."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeq.config import load_settings
from tests.deploy.support import (
    DEPLOY,
    ROOT,
    dockerfile_instructions,
    final_stage,
    image_env,
    server_env_names,
    tool,
)

COMPOSE = DEPLOY / "compose"
MODES = ("local-dev", "multi-shard", "raft-cluster", "raft-shards")


def compose_config(project: Path, compose_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`docker compose config` (no daemon needed): the project as Compose resolves it, or its error."""
    command = [tool("docker-compose"), "-f", str(compose_file or project / "compose.yaml")]
    command += ["--project-directory", str(project), "config", "--format", "json"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def resolved(mode: str, tmp_path: Path) -> dict[str, Any]:
    """The mode's project resolved by Compose; its env files made from their committed examples."""
    source = COMPOSE / mode
    examples = sorted(source.glob("*.env.example"))
    if examples:
        # The real env files are not committed: resolve a copy beside its example-made env files.
        project = tmp_path / mode
        shutil.copytree(source, project)
        for example in examples:
            # As the example says: its placeholder replaced by a long random secret.
            text = example.read_text().replace(
                "RAFT_SECRET=change-me", f"RAFT_SECRET={secrets.token_urlsafe(32)}"
            )
            (project / example.name.removesuffix(".example")).write_text(text)
    else:
        project = source
    run = compose_config(project)
    assert run.returncode == 0, run.stderr
    config: dict[str, Any] = json.loads(run.stdout)
    return config


def codeq_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = config["services"]
    return {name: s for name, s in services.items() if s.get("image") == "codeq:local"}


def test_every_mode_has_a_compose_file_and_a_readme() -> None:
    assert sorted(p.name for p in COMPOSE.iterdir() if p.is_dir()) == sorted(MODES)
    for mode in MODES:
        readme = (COMPOSE / mode / "README.md").read_text()
        assert "docker compose" in readme, f"{mode}/README.md must give the command that starts it"


@pytest.mark.parametrize("mode", MODES)
def test_compose_accepts_the_project(mode: str, tmp_path: Path) -> None:
    services = codeq_services(resolved(mode, tmp_path))
    assert services, "no codeq service"
    assert all(service["build"]["dockerfile"] == "Dockerfile" for service in services.values())


def test_compose_rejects_an_unknown_key(tmp_path: Path) -> None:
    """The validator really validates: a misspelt service key is an error, not ignored."""
    broken = tmp_path / "compose.yaml"
    broken.write_text((COMPOSE / "multi-shard" / "compose.yaml").read_text().replace("ports:", "portz:"))
    run = compose_config(tmp_path, broken)
    assert run.returncode != 0
    assert "portz" in run.stderr


@pytest.mark.parametrize("mode", MODES)
def test_codeq_services_use_only_env_names_the_server_reads(mode: str, tmp_path: Path) -> None:
    known = server_env_names()
    for name, service in codeq_services(resolved(mode, tmp_path)).items():
        unknown = set(service.get("environment") or {}) - known
        assert not unknown, f"{mode}/{name} sets names codeq does not read: {sorted(unknown)}"


@pytest.mark.parametrize("mode", MODES)
def test_codeq_accepts_each_nodes_configuration(mode: str, tmp_path: Path) -> None:
    """The image's env plus the service's, loaded and validated as `codeq serve` would."""
    base = image_env(final_stage(dockerfile_instructions(ROOT / "Dockerfile")))
    for service in codeq_services(resolved(mode, tmp_path)).values():
        env = {**base, **{k: str(v) for k, v in (service.get("environment") or {}).items()}}
        overrides: dict[str, object] = {"dev": True} if "--dev" in service["command"] else {}
        settings = load_settings(environ=env, overrides=overrides)
        assert settings.store.path == "/var/lib/codeq"


def test_raft_modes_list_three_voters_and_read_the_secret_from_an_uncommitted_env_file(
    tmp_path: Path,
) -> None:
    ignored = (COMPOSE / ".gitignore").read_text().split()
    assert "raft.env" in ignored
    for mode in ("raft-cluster", "raft-shards"):
        services = codeq_services(resolved(mode, tmp_path / "ok"))
        assert len(services) == 3
        for service in services.values():
            env = service["environment"]
            assert len(env["RAFT_PEERS"].split(",")) == 3
            assert env["RAFT_SELF_ID"] in env["RAFT_PEERS"]
        assert "RAFT_SECRET" not in (COMPOSE / mode / "compose.yaml").read_text()
        bare = tmp_path / "bare" / mode
        shutil.copytree(COMPOSE / mode, bare, ignore=shutil.ignore_patterns("raft.env"))
        missing = compose_config(bare)
        assert missing.returncode != 0
        assert "raft.env" in missing.stderr


def test_local_dev_mounts_files_that_exist(tmp_path: Path) -> None:
    services = resolved("local-dev", tmp_path)["services"]
    assert {"codeq", "prometheus", "grafana", "jaeger"} <= set(services)
    binds = [v["source"] for s in services.values() for v in s.get("volumes", []) if v["type"] == "bind"]
    assert binds
    for source in binds:
        assert Path(source).exists(), source
