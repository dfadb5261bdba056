"""The configuration reference, rendered from the key table: `python -m codeq.config.reference`.

`make docs` writes it to docs/configuration.md, and a test fails when that file is not what
this renders, so a key added to the table shows up in the reference on the next `make docs`.
"""

from __future__ import annotations

from collections.abc import Mapping

from codeq.config.descriptions import DESCRIPTIONS
from codeq.config.keys import KeyName, key_table
from codeq.config.tree import Settings

UNDOCUMENTED = "(undocumented)"
# Section of the settings tree -> heading; a section missing here is headed by its own name.
TITLES = {
    "": "Process",
    "http": "HTTP",
    "log": "Logging",
    "store": "Store (`persistenceConfig`)",
    "tasks": "Task defaults",
    "retention": "Retention",
    "auth": "Authentication",
    "grpc": "gRPC streams",
    "webhooks": "Result callbacks",
    "subscriptions": "Subscriptions",
    "limits": "Request limits",
    "rate_limit": "Rate limits",
    "raft": "Raft",
}
PROCESS_SETTINGS = ("env", "timezone", "shutdown_grace_seconds", "backup_root", "dev")
HEADER = """\
# Configuration reference

Generated from the server's key table by `make docs` (`python -m codeq.config.reference`);
do not edit by hand. Precedence: flags > environment > YAML file (`--config` or
`CODEQ_CONFIG_PATH`) > defaults. Every problem is reported at start, together, with exit
status 2. YAML keys nest as written (`persistenceConfig.numShards` is `numShards` inside the
`persistenceConfig` mapping); a key with no environment name is set in the YAML file, or
inside the JSON of the environment variable of its mapping (`PERSISTENCE_CONFIG`).
"""


def render() -> str:
    """The whole reference page as Markdown."""
    defaults = Settings()
    parts = [HEADER.rstrip("\n")]
    for section, rows in _sections(key_table()).items():
        if not rows:
            continue
        parts.append(f"\n## {TITLES.get(section, section)}\n")
        parts.append("| YAML key | Environment | Default | Description |")
        parts.append("|---|---|---|---|")
        parts += [_row(row, defaults) for row in rows]
    return "\n".join(parts) + "\n"


def undocumented() -> list[str]:
    """The keys of the table that have no description yet."""
    return [_name(row) for row in key_table() if _name(row) not in DESCRIPTIONS]


def _sections(rows: tuple[KeyName, ...]) -> dict[str, list[KeyName]]:
    sections: dict[str, list[KeyName]] = {"": []}
    for row in rows:
        head = row.setting.partition(".")[0]
        if row.setting in PROCESS_SETTINGS or not row.setting:
            head = "store" if row.yaml == "persistenceConfig" else ""
        sections.setdefault(head, []).append(row)
    return sections


def _row(row: KeyName, defaults: Settings) -> str:
    cells = (
        f"`{row.yaml}`" if row.yaml else "—",
        f"`{row.env}`" if row.env else "—",
        _default(row.setting, defaults),
        DESCRIPTIONS.get(_name(row), UNDOCUMENTED),
    )
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _name(row: KeyName) -> str:
    return row.yaml or row.env


def _default(setting: str, defaults: Settings) -> str:
    if not setting:
        return "—"
    value: object = defaults
    for part in setting.split("."):
        value = getattr(value, part)
    return _literal(value)


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value is None or value == "" or (isinstance(value, Mapping) and not value):
        return "(none)"
    return f"`{value}`"


if __name__ == "__main__":
    print(render(), end="")
