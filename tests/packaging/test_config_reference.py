"""docs/configuration.md is what `make docs` renders from the key table, and every key is described."""

from __future__ import annotations

from pathlib import Path

from codeq.config import key_table
from codeq.config.reference import UNDOCUMENTED, render, undocumented

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_committed_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "docs/configuration.md is stale: run `make docs`"


def test_every_key_of_the_table_has_a_description() -> None:
    missing = undocumented()
    assert not missing, f"describe these keys in src/codeq/config/descriptions.py: {missing}"
    assert UNDOCUMENTED not in render()


def test_every_yaml_key_and_environment_name_appears_in_the_reference() -> None:
    page = render()
    for row in key_table():
        for name in (row.yaml, row.env):
            if name:
                assert f"`{name}`" in page, name
