"""A neutral field id, named in each transport's own terms."""

from __future__ import annotations

from codeq.core.errors import FIELD, InvalidInput
from codeq.transport.grpc.errors import error_text as grpc_text
from codeq.transport.grpc.errors import proto_name
from codeq.transport.http.fields import error_field, error_text, json_name


def test_each_transport_names_the_field_its_own_way() -> None:
    error = InvalidInput(f"invalid '{FIELD}' (at most 1000)", field="max_attempts")
    assert error_text(error) == "invalid 'maxAttempts' (at most 1000)" and error_field(error) == "maxAttempts"
    assert grpc_text(error) == "invalid 'max_attempts' (at most 1000)"
    assert error.message == "invalid 'max_attempts' (at most 1000)"  # logs name the neutral id


def test_names_the_transports_chose_themselves_pass_through() -> None:
    assert json_name("deletionPolicy") == "deletionPolicy" and json_name("min_interval_seconds") == (
        "minIntervalSeconds"
    )
    assert proto_name("result") == "result_json" and proto_name("delay_seconds") == "delay_seconds"
    assert InvalidInput("invalid command", field="command").text(json_name) == "invalid command"
