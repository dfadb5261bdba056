"""Rules for the names a caller chooses: commands, tenants, idempotency keys."""

from __future__ import annotations

import re

from codeq.core.errors import InvalidInput

# spec 01 gap 12: one charset for commands, compared case-insensitively everywhere.
_COMMAND = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
TENANT_PATTERN = r"^[a-z][a-z0-9-]{1,62}$"
_TENANT = re.compile(TENANT_PATTERN)
MAX_IDEMPOTENCY_KEY_LENGTH = 256


def command_key(command: str) -> str:
    """The queue a command names: commands differ only in case share one queue."""
    return command.lower()


def validate_command(command: str) -> str:
    """Return the trimmed command, or raise `invalid command`."""
    trimmed = command.strip()
    if not _COMMAND.fullmatch(trimmed):
        raise InvalidInput("invalid command", field="command")
    return trimmed


def is_valid_tenant(tenant: str) -> bool:
    return bool(_TENANT.fullmatch(tenant))


def validate_idempotency_key(key: str) -> str:
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"invalid 'idempotencyKey' (at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters)",
            field="idempotency_key",
        )
    return key
