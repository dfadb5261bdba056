"""Metrics exposition, recording helpers, the queue-depth cap, and log formatting."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from codeq.core.clock import FakeClock
from codeq.core.model import Status, Task
from codeq.observability.logging import configure_logging
from codeq.observability.metrics import OTHER, Metrics, RaftGroupState, cap_series
from codeq.observability.page import MetricsPage, at_once


def text(metrics: Metrics) -> str:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return body.decode()


def test_render_exposes_every_metric_name() -> None:
    rendered = text(Metrics())
    for name in (
        "codeq_task_created_total",
        "codeq_task_claimed_total",
        "codeq_task_completed_total",
        "codeq_task_processing_latency_seconds",
        "codeq_lease_expired_total",
        "codeq_webhook_deliveries_total",
        "codeq_rate_limit_hits_total",
        "codeq_commit_batch_size",
        "codeq_commit_latency_seconds",
        "codeq_http_requests_total",
        "codeq_http_request_duration_seconds",
        "codeq_queue_depth",
    ):
        assert f"# TYPE {name} " in rendered, name


def test_each_instance_owns_its_registry_or_uses_the_injected_one() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert metrics.registry is registry
    Metrics()  # a second instance on its own registry does not clash
    metrics.rate_limit_hits.labels(scope="producer", operation="create_task").inc()
    assert (
        registry.get_sample_value(
            "codeq_rate_limit_hits_total", {"scope": "producer", "operation": "create_task"}
        )
        == 1
    )


def test_recording_helpers() -> None:
    metrics = Metrics()
    task = Task(id="t1", tenant="acme", command="Render", payload="{}", created_ms=1_000)
    metrics.record_task_event("created", task)
    metrics.record_task_event("claimed", task)
    metrics.record_task_event("lease_expired", task)
    metrics.record_task_event("something_else", task)
    task.status, task.finished_ms = Status.FAILED, 3_500
    metrics.record_finished(task)
    metrics.observe_commit("0", 12, 0.002)
    metrics.observe_request("/v1/codeq/tasks", "POST", 202, 0.01)
    metrics.webhook_deliveries.labels(kind="task_result", command="Render", outcome="success").inc()
    rendered = text(metrics)
    assert 'codeq_task_created_total{command="Render"} 1.0' in rendered
    assert 'codeq_task_claimed_total{command="Render"} 1.0' in rendered
    assert 'codeq_lease_expired_total{command="Render"} 1.0' in rendered
    assert 'codeq_task_completed_total{command="Render",status="FAILED"} 1.0' in rendered
    assert 'codeq_task_processing_latency_seconds_sum{command="Render",status="FAILED"} 2.5' in rendered
    assert (
        'codeq_task_processing_latency_seconds_bucket{command="Render",le="5.0",status="FAILED"} 1.0'
        in rendered
    )
    assert 'codeq_commit_batch_size_sum{shard="0"} 12.0' in rendered
    assert 'codeq_commit_latency_seconds_bucket{le="0.0025",shard="0"} 1.0' in rendered
    assert 'codeq_http_requests_total{method="POST",route="/v1/codeq/tasks",status="202"} 1.0' in rendered
    assert (
        'codeq_http_request_duration_seconds_count{method="POST",route="/v1/codeq/tasks",status="202"} 1.0'
        in rendered
    )
    assert (
        'codeq_webhook_deliveries_total{command="Render",kind="task_result",outcome="success"} 1.0'
        in rendered
    )


def test_queue_depth_is_read_at_scrape_time_and_summed_across_shards() -> None:
    metrics = Metrics(tenant_labels=True)
    depths = {"ready": 2}

    def source() -> Iterator[tuple[str, str, str, int]]:
        yield ("acme", "render", "ready", depths["ready"])
        yield ("acme", "render", "ready", 1)  # the same queue on another shard
        yield ("acme", "render", "dlq", 0)

    metrics.register_queue_depth(source)
    assert 'codeq_queue_depth{command="render",queue="ready",tenant="acme"} 3.0' in text(metrics)
    depths["ready"] = 5
    rendered = text(metrics)
    assert 'codeq_queue_depth{command="render",queue="ready",tenant="acme"} 6.0' in rendered
    assert 'codeq_queue_depth{command="render",queue="dlq",tenant="acme"} 0.0' in rendered


def test_a_failing_depth_source_does_not_break_the_scrape(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()

    def broken() -> list[tuple[str, str, str, int]]:
        raise RuntimeError("boom")

    metrics.register_queue_depth(broken)
    with caplog.at_level(logging.ERROR, logger="codeq.metrics"):
        rendered = text(metrics)
    assert "codeq_task_created_total" in rendered and "queue depth collection failed" in caplog.text


def test_queue_depth_series_are_capped() -> None:
    metrics = Metrics(tenant_labels=True)
    rows = [(f"t{i:04d}", "render", queue, 1) for i in range(600) for queue in ("ready", "dlq")]
    metrics.register_queue_depth(lambda: rows)
    series = [line for line in text(metrics).splitlines() if line.startswith("codeq_queue_depth{")]
    assert len(series) == 1000
    assert f'codeq_queue_depth{{command="render",queue="ready",tenant="{OTHER}"}}' in "\n".join(series)
    assert sum(float(line.rsplit(" ", 1)[1]) for line in series) == 1200


def test_cap_series_keeps_label_order_and_the_total() -> None:
    rows = {(f"t{i}", f"c{i % 3}", "ready"): i for i in range(10)}
    capped = cap_series(rows, 6)
    assert len(capped) <= 6 and sum(capped.values()) == sum(rows.values())
    kept = [key for key in capped if key[0] != OTHER]
    assert kept == sorted(rows)[: len(kept)]
    assert cap_series(rows, 10) is rows


def test_cap_series_folds_commands_when_even_the_fold_would_not_fit() -> None:
    rows = {("t", f"c{i}", "ready"): 1 for i in range(20)}
    assert cap_series(rows, 5) == {(OTHER, OTHER, "ready"): 20}


# -- logging -------------------------------------------------------------------------------


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_logging_writes_one_object_per_line() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    log = logging.getLogger("codeq.test")
    log.debug("claimed %d", 3, extra={"tenant": "acme", "task_ids": ["a", "b"], "obj": object()})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    assert first["level"] == "debug" and first["logger"] == "codeq.test" and first["msg"] == "claimed 3"
    assert first["tenant"] == "acme" and first["task_ids"] == ["a", "b"] and first["ts"].endswith("Z")
    assert first["obj"].startswith("<object")
    assert second["level"] == "error" and "ValueError: bad" in second["exc"]


@pytest.mark.usefixtures("restore_root_logger")
def test_text_logging_and_reconfiguration_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("WARN", "text", stream=second)
    log = logging.getLogger("codeq.test")
    log.info("hidden")
    log.warning("shown", extra={"route": "/x"})
    assert first.getvalue() == ""
    assert second.getvalue().endswith("WARNING codeq.test: shown route=/x\n")


@pytest.mark.parametrize(("level", "fmt"), [("verbose", "json"), ("info", "xml")])
def test_logging_rejects_unknown_settings(level: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        configure_logging(level, fmt)


# -- bounded series, tenant labels, the cached page (issue 11) ------------------------------


def series_of(rendered: str, name: str) -> list[str]:
    return [line for line in rendered.splitlines() if line.startswith(name + "{")]


def test_command_labels_fold_into_other_beyond_the_cap_and_keep_the_count() -> None:
    metrics = Metrics(max_series=10)
    for i in range(30):
        task = Task(id=f"t{i}", tenant="acme", command=f"cmd{i:02d}", payload="{}")
        metrics.record_task_event("created", task)
        task.status, task.finished_ms = Status.COMPLETED, 5
        metrics.record_finished(task)
    metrics.record_task_event("created", Task(id="again", tenant="acme", command="cmd00", payload="{}"))
    rendered = text(metrics)
    created = series_of(rendered, "codeq_task_created_total")
    assert len(created) == 11  # ten commands by name, the rest as one
    assert 'codeq_task_created_total{command="cmd00"} 2.0' in created  # a kept name keeps counting
    assert f'codeq_task_created_total{{command="{OTHER}"}} 20.0' in created
    # The bounded label (status) survives the fold.
    assert f'codeq_task_completed_total{{command="{OTHER}",status="COMPLETED"}} 20.0' in rendered


def test_queue_depth_without_tenant_labels_sums_tenants_under_an_empty_label() -> None:
    metrics = Metrics()
    metrics.register_queue_depth(lambda: [("acme", "render", "ready", 2), ("globex", "render", "ready", 3)])
    assert series_of(text(metrics), "codeq_queue_depth") == [
        'codeq_queue_depth{command="render",queue="ready",tenant=""} 5.0'
    ]


def test_queue_depth_without_tenant_labels_folds_commands_beyond_the_cap() -> None:
    metrics = Metrics(max_series=12)
    rows = [("acme", f"c{i:02d}", queue, 1) for i in range(20) for queue in ("ready", "dlq")]
    metrics.register_queue_depth(lambda: rows)
    series = series_of(text(metrics), "codeq_queue_depth")
    assert len(series) == 12
    assert f'codeq_queue_depth{{command="{OTHER}",queue="ready",tenant=""}} 15.0' in series
    assert sum(float(line.rsplit(" ", 1)[1]) for line in series) == 40


def test_raft_groups_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    state = RaftGroupState("0", True, True, 3, 120, 117, 5)
    metrics.register_raft(lambda: [state])
    rendered = text(metrics)
    for line in (
        'codeq_raft_is_leader{group="0"} 1.0',
        'codeq_raft_has_leader{group="0"} 1.0',
        'codeq_raft_term{group="0"} 3.0',
        'codeq_raft_apply_queue_depth{group="0"} 3.0',
        'codeq_raft_proposals_in_flight{group="0"} 5.0',
    ):
        assert line in rendered, line


async def test_the_page_is_rendered_at_most_once_per_max_age() -> None:
    clock = FakeClock()
    renders = []

    def render() -> tuple[bytes, str]:
        renders.append(clock.now_ms())
        return str(len(renders)).encode(), "text/plain"

    page = MetricsPage(at_once(render), clock.now_ms, max_age_ms=1000)
    assert await page() == await page() == (b"1", "text/plain")
    clock.advance(0.999)
    assert (await page())[0] == b"1"
    clock.advance(0.001)
    assert (await page())[0] == b"2"
    assert len(renders) == 2


async def test_scrapes_during_a_slow_rendering_share_it() -> None:
    clock = FakeClock()
    release = asyncio.Event()
    renders = 0

    async def render() -> tuple[bytes, str]:  # as a node asking its other processes
        nonlocal renders
        renders += 1
        await release.wait()
        return b"page", "text/plain"

    page = MetricsPage(render, clock.now_ms)
    scrapes = [asyncio.ensure_future(page()) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*scrapes) == [(b"page", "text/plain")] * 5
    assert renders == 1


def test_request_stats_buckets_are_cumulative_and_inclusive_and_routes_are_capped() -> None:
    metrics = Metrics(max_series=10)
    for seconds in (0.005, 0.0051, 100.0):
        metrics.observe_request("/r", "GET", 200, seconds)
    for i in range(12):
        metrics.observe_request(f"/route{i:02d}", "GET", 200, 0.001)
    rendered = text(metrics)
    labels = 'method="GET",route="/r",status="200"'
    assert f'codeq_http_request_duration_seconds_bucket{{le="0.005",{labels}}} 1.0' in rendered
    assert f'codeq_http_request_duration_seconds_bucket{{le="0.01",{labels}}} 2.0' in rendered
    assert f'codeq_http_request_duration_seconds_bucket{{le="60.0",{labels}}} 2.0' in rendered
    assert f'codeq_http_request_duration_seconds_bucket{{le="+Inf",{labels}}} 3.0' in rendered
    assert f"codeq_http_request_duration_seconds_sum{{{labels}}} 100.0101" in rendered
    requests = series_of(rendered, "codeq_http_requests_total")
    assert len(requests) == 11  # ten rows, then one for every route beyond them
    assert f'codeq_http_requests_total{{method="GET",route="{OTHER}",status="200"}} 3.0' in requests


def test_a_bound_route_recorder_shares_rows_with_observe_request_and_honours_the_cap() -> None:
    metrics = Metrics(max_series=3)
    metrics.observe_request("/r", "POST", 202, 0.001)
    record = metrics.http_requests.bound("/r", "POST").observe
    record(202, 0.001)  # the row observe_request made: counted on, not replaced
    record(400, 0.002)
    metrics.http_requests.bound("/s", "GET").observe(200, 0.001)
    metrics.http_requests.bound("/t", "GET").observe(200, 0.001)  # a fourth series: folded
    requests = series_of(text(metrics), "codeq_http_requests_total")
    assert 'codeq_http_requests_total{method="POST",route="/r",status="202"} 2.0' in requests
    assert 'codeq_http_requests_total{method="POST",route="/r",status="400"} 1.0' in requests
    assert f'codeq_http_requests_total{{method="GET",route="{OTHER}",status="200"}} 1.0' in requests
    assert len(requests) == 4


def test_task_counters_and_latency_fold_client_chosen_commands_past_the_cap() -> None:
    metrics = Metrics(max_series=2)
    for command in ("a", "b", "c", "d"):
        task = Task(id=command, tenant="t", command=command, payload="{}", created_ms=1_000)
        metrics.record_task_event("created", task)
        task.status, task.finished_ms = Status.COMPLETED, 1_500
        metrics.record_finished(task)
    rendered = text(metrics)
    created = series_of(rendered, "codeq_task_created_total")
    assert f'codeq_task_created_total{{command="{OTHER}"}} 2.0' in created and len(created) == 3
    completed = series_of(rendered, "codeq_task_completed_total")
    assert f'codeq_task_completed_total{{command="{OTHER}",status="COMPLETED"}} 2.0' in completed
    assert len(completed) == 3
    assert (
        f'codeq_task_processing_latency_seconds_count{{command="{OTHER}",status="COMPLETED"}} 2.0' in rendered
    )
    assert 'codeq_task_processing_latency_seconds_sum{command="a",status="COMPLETED"} 0.5' in rendered
