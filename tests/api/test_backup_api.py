"""`POST /admin/backup`: admin only, absolute new paths only, and refused on the memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import OTHER_PRODUCER, PLAIN_PRODUCER, Api, make_settings, running


@pytest.fixture
async def rocks_api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = make_settings(provider="embedded", data_path=str(tmp_path / "data"), num_shards=3)
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


async def test_outside_dev_backups_need_a_backup_root(tmp_path: Path) -> None:
    # A backup copies every tenant's data, so outside dev only an operator who has set
    # backupRoot enables it: a tenant's admin token alone cannot.
    settings = make_settings(
        provider="embedded",
        data_path=str(tmp_path / "data"),
        env="production",
        dev=False,
        allow_static_tokens=True,
    )
    async with running(settings) as api:
        refused = await api.post("/admin/backup", {"dest": str(tmp_path / "b")}, OTHER_PRODUCER)
        assert refused.status_code == 403 and "backupRoot" in refused.json()["error"]
        assert not (tmp_path / "b").exists()
