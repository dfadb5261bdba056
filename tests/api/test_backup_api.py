"""`POST /admin/backup`: operators only, new paths inside `backupRoot` only, refused on the memory store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codeq.config import load_settings
from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, Api, make_settings, running


@pytest.fixture
async def rocks_api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(
        provider="embedded", data_path=str(tmp_path / "data"), num_shards=3, backup_root=str(tmp_path)
    )
    async with running(settings) as api:
        yield api


async def test_backup_writes_every_shard_and_a_manifest(rocks_api: Api, tmp_path: Path) -> None:
    await rocks_api.create()
    dest = tmp_path / "backup"
    response = await rocks_api.post("/admin/backup", {"dest": str(dest)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["numShards"] == 3 and [s["shard"] for s in body["shards"]] == [0, 1, 2]
    assert all(s["bytes"] > 0 and s["files"] > 0 for s in body["shards"])
    assert (dest / "codeq-backup.json").is_file() and (dest / "shard2").is_dir()
    again = await rocks_api.post("/admin/backup", {"dest": str(dest), "shard": 1})
    assert again.status_code == 409 and again.json()["field"] == "dest"


async def test_backup_validates_its_input(rocks_api: Api, tmp_path: Path) -> None:
    relative = await rocks_api.post("/admin/backup", {"dest": "backup"})
    assert relative.status_code == 400 and relative.json()["field"] == "dest"
    shard = await rocks_api.post("/admin/backup", {"dest": str(tmp_path / "b"), "shard": 3})
    assert shard.status_code == 400 and shard.json()["field"] == "shard"
    assert (await rocks_api.post("/admin/backup", {})).status_code == 400
    denied = await rocks_api.post("/admin/backup", {"dest": str(tmp_path / "b")}, PLAIN_PRODUCER)
    assert denied.status_code == 403


async def test_a_tenant_admin_is_not_an_operator(rocks_api: Api, tmp_path: Path) -> None:
    # globex-producer is its tenant's admin, yet a backup would copy every tenant's data.
    denied = await rocks_api.post("/admin/backup", {"dest": str(tmp_path / "b")}, OTHER_PRODUCER)
    assert denied.status_code == 403 and "operator" in denied.json()["error"]
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("bad", ["b\x00c", "b\nc", "b\x1bc", "b\x7fc"])
async def test_control_characters_in_dest_are_400(rocks_api: Api, tmp_path: Path, bad: str) -> None:
    response = await rocks_api.post("/admin/backup", {"dest": str(tmp_path / bad)})
    assert response.status_code == 400 and response.json()["field"] == "dest"


async def test_dest_must_be_new_and_errors_name_no_server_path(rocks_api: Api, tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    taken = await rocks_api.post("/admin/backup", {"dest": str(existing)})
    assert taken.status_code == 409 and taken.json()["field"] == "dest"
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]
    outside = await rocks_api.post("/admin/backup", {"dest": "/etc/codeq-backup"})
    assert outside.status_code == 400
    for response in (taken, outside):
        assert str(tmp_path) not in response.text and "/etc" not in response.text


async def test_backup_files_are_private(rocks_api: Api, tmp_path: Path) -> None:
    await rocks_api.create()
    dest = tmp_path / "private"
    assert (await rocks_api.post("/admin/backup", {"dest": str(dest)})).status_code == 200
    assert dest.stat().st_mode & 0o777 == 0o700
    assert (dest / "codeq-backup.json").stat().st_mode & 0o777 == 0o600
    for path in dest.rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path


async def test_the_cli_may_add_shards_one_at_a_time_to_its_own_backup(rocks_api: Api, tmp_path: Path) -> None:
    dest = str(tmp_path / "stepwise")
    for shard in range(3):
        response = await rocks_api.post("/admin/backup", {"dest": dest, "shard": shard})
        assert response.status_code == 200, response.text
    again = await rocks_api.post("/admin/backup", {"dest": dest, "shard": 1})
    assert again.status_code == 409


async def test_the_memory_store_cannot_be_backed_up(api: Api, tmp_path: Path) -> None:
    response = await api.post("/admin/backup", {"dest": str(tmp_path / "b")})
    assert response.status_code == 409


async def test_backup_root_confines_dest(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    settings = make_settings(provider="embedded", data_path=str(tmp_path / "data"), backup_root=str(root))
    async with running(settings) as api:
        outside = await api.post("/admin/backup", {"dest": str(tmp_path / "elsewhere")})
        assert outside.status_code == 400 and "backup root" in outside.json()["error"]
        sneaky = await api.post("/admin/backup", {"dest": str(root / ".." / "escape")})
        assert sneaky.status_code == 400
        inside = await api.post("/admin/backup", {"dest": str(root / "monday")})
        assert inside.status_code == 200 and (root / "monday" / "shard0").is_dir()


async def test_backups_need_a_backup_root_in_every_env(tmp_path: Path) -> None:
    # A backup copies every tenant's data, so even in env dev (the old default that allowed any
    # absolute path) nothing is written until the operator has set backupRoot.
    settings = make_settings(provider="embedded", data_path=str(tmp_path / "data"))
    async with running(settings) as api:
        refused = await api.post("/admin/backup", {"dest": str(tmp_path / "b")})
        assert refused.status_code == 403 and "backupRoot" in refused.json()["error"]
        assert not (tmp_path / "b").exists()


async def test_a_static_operator_token_outside_dev(tmp_path: Path) -> None:
    """A static token gets the operator power only by listing `codeq:operator` in its scopes."""
    producers = {
        "providers": [
            {"type": "static", "config": {"token": "ops", "subject": "ops", "scopes": ["codeq:operator"]}},
            {"type": "static", "config": {"token": "boss", "subject": "acme", "raw": {"role": "ADMIN"}}},
        ]
    }
    env = {
        "ENV": "production",
        "ALLOW_STATIC_TOKENS": "true",
        "PRODUCER_AUTH_PROVIDER": "multi",
        "PRODUCER_AUTH_CONFIG": json.dumps(producers),
        "WORKER_AUTH_PROVIDER": "static",
        "WORKER_AUTH_CONFIG": json.dumps({"token": "w", "scopes": ["codeq:claim"], "eventTypes": ["*"]}),
        "BACKUP_ROOT": str(tmp_path),
    }
    overrides = {"provider": "embedded", "data_path": str(tmp_path / "data")}
    async with running(load_settings(environ=env, overrides=overrides)) as api:
        dest = str(tmp_path / "b")
        admin = await api.post("/admin/backup", {"dest": dest}, {"Authorization": "Bearer boss"})
        assert admin.status_code == 403
        operator = await api.post("/admin/backup", {"dest": dest}, {"Authorization": "Bearer ops"})
        assert operator.status_code == 200, operator.text
