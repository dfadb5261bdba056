"""The operator pages: linked from the README, their links resolve, their commands exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from codeq.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "deployment", "configuration", "upgrades", "backups",
    "migration-single-to-raft", "resharding", "troubleshooting",
]  # fmt: skip
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]


def test_the_readme_links_every_operator_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in PAGES:
        assert f"](docs/{page}.md)" in readme, page


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (path.parent / target).exists(), f"{path.name}: {target}"


def test_every_documented_codeq_command_exists() -> None:
    group = typer.main.get_command(cli)
    commands = set(getattr(group, "commands", {}))
    for page in PAGES:
        text = (ROOT / "docs" / f"{page}.md").read_text(encoding="utf-8")
        for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                words = shlex.split(line.split("#")[0]) if "codeq " in line else []
                if words and words[0] == "codeq":
                    assert words[1] in commands, f"{page}: {line}"
