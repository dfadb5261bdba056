"""`codeq serve --dev` conveniences: what it fills in when the operator left it empty."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeq.cli.serve import _with_dev_backups
from codeq.config import load_settings
from tests.unit.test_config import STATIC_AUTH


def test_dev_backs_up_below_a_backups_directory_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    dev = load_settings(environ={}, overrides={"dev": True})
    assert _with_dev_backups(dev).backup_root == os.path.join(str(tmp_path), "backups")
    chosen = load_settings(environ={"BACKUP_ROOT": "/srv/b"}, overrides={"dev": True})
    assert _with_dev_backups(chosen).backup_root == "/srv/b"


def test_outside_dev_backups_stay_off_until_a_root_is_set() -> None:
    settings = load_settings(environ={**STATIC_AUTH, "ALLOW_STATIC_TOKENS": "true"})
    assert _with_dev_backups(settings).backup_root == ""
