"""Field names in the HTTP JSON API's terms: the services name fields by neutral ids."""

from __future__ import annotations

from codeq.core.errors import CodeqError


def json_name(field_id: str) -> str:
    """A neutral field id as the JSON bodies spell it: `max_attempts` → `maxAttempts`. A name
    the HTTP transport raised itself (already camelCase, no underscore) comes back unchanged."""
    head, *rest = field_id.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def error_text(error: CodeqError) -> str:
    """The error's message with its field named as the JSON body names it."""
    return error.text(json_name)


def error_field(error: CodeqError) -> str:
    return json_name(error.field) if error.field else ""
