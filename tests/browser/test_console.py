"""The console and /docs in a real browser: sign in, queues, tasks, dead letters, cluster."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Api, Console, needs_route

pytestmark = pytest.mark.process  # every test here talks to a real `codeq serve`

COLUMNS = ["Command", "Ready", "Delayed", "In progress", "Dead-lettered", "Completed (1h)", "Failed (1h)"]
XSS = "<img src=x onerror=window.pwned=1>"  # no quotes, so the JSON text shows it verbatim


def test_keyboard_sign_in_then_the_queue_shows_its_counts(console: Console, api: Api) -> None:
    command = api.command("mail")
    for n in range(3):
        api.create(command, {"n": n})
    api.create(command, delaySeconds=3600)
    api.claim(command)
    page = console.page
    page.goto(f"{console.url}/console")
    console.shot("sign-in")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Token")).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.keyboard.type("dev-producer")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    row = page.locator(f'#queues tr[data-command="{command}"]')
    expect(row.locator('td[data-col="ready"]')).to_have_text("2")
    expect(row.locator('td[data-col="delayed"]')).to_have_text("1")
    expect(row.locator('td[data-col="inProgress"]')).to_have_text("1")
    expect(row.locator('td[data-col="deadLettered"]')).to_have_text("0")
    headers = page.locator("#queues thead th").all_inner_texts()
    assert headers[:7] == COLUMNS
    expect(row.locator("svg[role=img]")).to_be_visible()  # the rate sparkline
    console.shot("queues")
    assert console.errors == []


def test_the_queues_page_refreshes_by_itself(console: Console, api: Api) -> None:
    command = api.command("live")
    api.create(command)
    console.sign_in()
    ready = console.page.locator(f'#queues tr[data-command="{command}"] td[data-col="ready"]')
    expect(ready).to_have_text("1")
    api.create(command)
    api.create(command)
    expect(ready).to_have_text("3")  # no reload: the page polls every 2 s
    assert console.errors == []


def test_the_queues_page_fits_a_phone(console: Console, api: Api) -> None:
    api.create(api.command("phone"))
    console.page.set_viewport_size(PHONE)
    console.sign_in()
    expect(console.page.locator("#queues")).to_be_visible()
    page_width = console.page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= PHONE["width"]  # the table scrolls in its own box, the page does not
    console.shot("queues-phone")
    assert console.errors == []


def test_a_task_page_shows_its_facts_and_a_hostile_payload_as_text(console: Console, api: Api) -> None:
    command = api.command("render")
    task = api.create(command, {"html": XSS, "nested": {"list": [1, 2]}}, priority=7)
    console.sign_in()
    expect(console.page.get_by_role("heading", name="Queues")).to_be_visible()
    console.open(f"/tasks/{task['id']}")
    page = console.page
    expect(page.locator('dd[data-fact="ID"]')).to_have_text(task["id"])
    expect(page.locator('dd[data-fact="Status"]')).to_have_text("PENDING")
    expect(page.locator('dd[data-fact="Priority"]')).to_have_text("7")
    expect(page.locator('dd[data-fact="Attempts"]')).to_have_text("0 of 5")
    payload = page.locator("#payload")
    expect(payload).to_contain_text(XSS)  # shown as text...
    assert '\n  "nested": {\n' in payload.inner_text()  # ...pretty-printed
    assert page.locator("img").count() == 0 and page.evaluate("window.pwned") is None  # ...never run
    console.shot("task")
    page.set_viewport_size(PHONE)
    console.shot("task-phone")
    assert console.errors == []


def test_a_claimed_task_shows_its_lease_holder_and_expiry(console: Console, api: Api) -> None:
    command = api.command("lease")
    task = api.create(command)
    api.claim(command)
    console.sign_in()
    expect(console.page.get_by_role("heading", name="Queues")).to_be_visible()
    console.open(f"/tasks/{task['id']}")
    expect(console.page.locator('dd[data-fact="Lease holder"]')).to_have_text("dev-worker")
    expect(console.page.locator('dd[data-fact="Lease expires"]')).to_have_text(re.compile(r"^\d{4}-.+Z$"))
    assert console.errors == []


def test_requeue_a_dead_letter_and_purge_another_after_confirming(console: Console, api: Api) -> None:
    command = api.command("dead")
    first = api.dead_letter(command, {"n": 1})
    second = api.dead_letter(command, {"n": 2})
    console.sign_in()
    page = console.page
    row = page.locator(f'#queues tr[data-command="{command}"]')
    expect(row.locator('td[data-col="deadLettered"]')).to_have_text("2")
    row.locator('td[data-col="deadLettered"] a').click()
    expect(page.get_by_role("heading", name=f"Dead letters of {command}")).to_be_visible()
    console.shot("dead-letters")
    page.get_by_role("button", name=f"Requeue {first['id']}").click()
    expect(page.locator("#status")).to_have_text("Requeued 1.")
    expect(page.locator(f'tr[data-task="{first["id"]}"]')).to_have_count(0)
    assert api.task(first["id"])["status"] == "PENDING"

    page.get_by_role("button", name=f"Purge {second['id']}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Purge task {second['id']}?")
    dialog.get_by_role("button", name="Keep").click()  # the first answer is no: nothing happens
    expect(page.locator(f'tr[data-task="{second["id"]}"]')).to_have_count(1)
    page.get_by_role("button", name=f"Purge {second['id']}").click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.locator("#status")).to_have_text("Purged 1.")
    expect(page.get_by_text("No dead letters.")).to_be_visible()
    assert console.errors == []


def test_requeue_from_a_dead_letter_task_page(console: Console, api: Api) -> None:
    command = api.command("dead-one")
    task = api.dead_letter(command)
    console.sign_in()
    expect(console.page.get_by_role("heading", name="Queues")).to_be_visible()
    console.open(f"/tasks/{task['id']}")
    console.page.get_by_role("button", name="Requeue").click()
    expect(console.page.locator("#status")).to_have_text("Task requeued.")
    expect(console.page.locator('dd[data-fact="Status"]')).to_have_text("PENDING")
    assert console.errors == []


def test_the_cluster_page_shows_each_shard_and_its_commit_latency(console: Console, api: Api) -> None:
    api.create(api.command("cluster"))
    console.sign_in()
    console.page.get_by_role("link", name="Cluster", exact=True).click()
    page = console.page
    expect(page.get_by_role("heading", name="Cluster")).to_be_visible()
    expect(page.locator("#readiness")).to_have_text("This node is ready.")
    expect(page.locator("tr[data-shard]").first).to_be_visible()
    latency = page.locator("tr[data-shard] td").nth(1).inner_text()
    assert re.fullmatch(r"\d+\.\d\d ms", latency), latency
    console.shot("cluster")
    assert console.errors == []


def test_a_wrong_token_brings_back_the_sign_in_with_a_message(console: Console) -> None:
    console.sign_in("not-a-token")
    expect(console.page.get_by_role("alert")).to_contain_text("not accepted")
    expect(console.page.get_by_label("Token")).to_be_visible()
    assert console.page.evaluate("sessionStorage.getItem('codeq.token')") is None


def test_a_worker_token_is_told_what_it_may_not_see(console: Console) -> None:
    console.sign_in("dev-worker")
    expect(console.page.get_by_role("alert")).to_contain_text("may not see this page")
    console.page.get_by_role("link", name="Cluster", exact=True).click()  # what its role allows still works
    expect(console.page.locator("#readiness")).to_have_text("This node is ready.")


def test_the_api_docs_load_the_document_with_a_bearer_authorize_box(console: Console) -> None:
    page = console.page
    page.goto(f"{console.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("codeq")
    page.get_by_role("button", name=re.compile("Authorize")).first.click()
    expect(page.get_by_text("bearer", exact=False).first).to_be_visible()
    expect(page.locator(".auth-container input")).to_be_visible()
    console.shot("docs")
    assert console.errors == []


@needs_route("/v1/codeq/admin/queues/{command}/tasks")
def test_tasks_of_a_queue_by_state_open_a_task(console: Console, api: Api) -> None:
    command = api.command("listed")
    tasks = [api.create(command, {"n": n}) for n in range(3)]
    api.create(command, delaySeconds=3600)
    console.sign_in()
    page = console.page
    page.locator(f'#queues tr[data-command="{command}"] th a').click()
    expect(page.get_by_role("heading", name=f"Tasks of {command}")).to_be_visible()
    expect(page.locator("tr[data-task]")).to_have_count(3)
    page.get_by_label("Order").select_option("oldest")
    expect(page.locator("tr[data-task]").first).to_have_attribute("data-task", tasks[0]["id"])
    page.get_by_role("link", name="Delayed", exact=True).click()
    expect(page.locator("tr[data-task]")).to_have_count(1)
    console.shot("tasks")
    page.get_by_role("link", name="Ready", exact=True).click()
    page.get_by_role("link", name=tasks[1]["id"]).click()
    expect(page.locator('dd[data-fact="ID"]')).to_have_text(tasks[1]["id"])
    assert console.errors == []


@needs_route("/v1/codeq/tasks/{id}/cancel")
def test_cancel_a_waiting_task_from_its_page(console: Console, api: Api) -> None:
    command = api.command("cancel")
    task = api.create(command)
    console.sign_in()
    expect(console.page.get_by_role("heading", name="Queues")).to_be_visible()
    console.open(f"/tasks/{task['id']}")
    console.page.get_by_role("button", name="Cancel").click()
    expect(console.page.locator("#status")).to_have_text("Task cancelled.")
    expect(console.page.locator('dd[data-fact="Status"]')).to_have_text("CANCELLED")
    expect(console.page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert api.task(task["id"])["status"] == "CANCELLED"
    assert console.errors == []


@needs_route("/v1/codeq/admin/overview")
def test_the_overview_counts_finished_tasks_of_the_last_hour(console: Console, api: Api) -> None:
    command = api.command("done")
    api.create(command)
    claimed = api.claim(command)
    done = {"status": "COMPLETED", "result": {"ok": True}}
    headers = {"Authorization": "Bearer dev-worker"}
    assert api.client.post(f"/tasks/{claimed['id']}/result", json=done, headers=headers).status_code == 200
    console.sign_in()
    row = console.page.locator(f'#queues tr[data-command="{command}"]')
    expect(row.locator('td[data-col="completed1h"]')).to_have_text("1")
    expect(row.locator('td[data-col="failed1h"]')).to_have_text("0")
    assert console.errors == []


@needs_route("/v1/codeq/tasks/{id}/cancel")
def test_cancel_a_leased_task_asks_its_worker_to_stop(console: Console, api: Api) -> None:
    command = api.command("cancel-leased")
    task = api.create(command)
    api.claim(command)
    console.sign_in()
    expect(console.page.get_by_role("heading", name="Queues")).to_be_visible()
    console.open(f"/tasks/{task['id']}")
    console.page.get_by_role("button", name="Cancel").click()
    expect(console.page.locator("#status")).to_contain_text("Cancel requested")
    expect(console.page.locator('dd[data-fact="Status"]')).to_have_text("IN_PROGRESS (cancel requested)")
    expect(console.page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert api.task(task["id"])["cancelRequested"] is True
    assert console.errors == []
