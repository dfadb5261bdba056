"""The JSON checks before parsing: nesting measured exactly, whatever the strings hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeq.core.errors import InvalidInput
from codeq.transport.json_input import MAX_JSON_DEPTH, check_json

# Strings full of what could fool a bracket count: brackets, quotes, backslashes.
tricky_text = st.text(alphabet='[]{}"\\ab', max_size=12)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def chain(levels: int, leaf: Any, texts: list[str] | None = None) -> Any:
    """`leaf` under `levels` more levels; each object also holds a string and an empty list
    before the deeper level, so nothing but a real parse of the strings measures it."""
    texts = texts or ["]]}}"]
    for i in range(levels):
        text = texts[i % len(texts)]
        leaf = [leaf] if i % 2 else {"s": text, "d": [], "k": leaf, "t": text}
    return leaf


values = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    base=values,
    extra=st.integers(0, 2 * MAX_JSON_DEPTH),
    texts=st.lists(tricky_text, min_size=1, max_size=4),
    escape_ascii=st.booleans(),
)
def test_refused_exactly_when_deeper_than_the_limit(
    base: Any, extra: int, texts: list[str], escape_ascii: bool
) -> None:
    value = chain(extra, base, texts)
    body = json.dumps(value, ensure_ascii=escape_ascii).encode()
    if depth(value) > MAX_JSON_DEPTH:
        with pytest.raises(InvalidInput, match="nested deeper"):
            check_json(body, "invalid", "payload")
    else:
        check_json(body, "invalid", "payload")


def test_the_envelope_adds_levels_and_the_field_is_the_top_level_key() -> None:
    payload = chain(MAX_JSON_DEPTH - 1, 1)
    assert depth(payload) == MAX_JSON_DEPTH
    body = json.dumps({"command": "x", "payload": payload}).encode()
    check_json(body, "invalid", envelope=1)
    with pytest.raises(InvalidInput) as refused:
        check_json(body, "invalid", envelope=0)
    assert refused.value.field == "payload"


def test_invalid_utf8_names_the_top_level_key() -> None:
    with pytest.raises(InvalidInput, match="not valid UTF-8") as refused:
        check_json(b'{"command":"x","result":{"a":["\xc3"]}}', "invalid")
    assert refused.value.field == "result"
