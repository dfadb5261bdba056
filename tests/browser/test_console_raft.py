"""The Cluster page of a real three-node Raft cluster with two shard groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import LAPTOP, Console
from tests.cluster.support import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, shards=2)
    nodes.start()
    try:
        for shard in (0, 1):
            nodes.wait_leader(shard)
        yield nodes
    finally:
        nodes.stop()


@pytest.mark.process
def test_the_cluster_page_shows_every_raft_group_and_its_leader(browser: Browser, cluster: Cluster) -> None:
    context = browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(10_000)
    try:
        console = Console(context.new_page(), cluster.url("b"))
        console.sign_in()
        console.page.get_by_role("link", name="Cluster", exact=True).click()
        page = console.page
        expect(page.locator("#readiness")).to_have_text("This node is ready.")
        expect(page.get_by_text("Raft: 2 group(s), as seen from this node.")).to_be_visible()
        rows = page.locator("table tbody tr")
        expect(rows).to_have_count(2)
        for shard in (0, 1):
            leader = cluster.leader_of(shard)
            assert leader is not None
            row = rows.nth(shard)
            expect(row.locator("th")).to_have_text(str(shard))
            expect(row.locator("td").first).to_contain_text(leader)
            expect(row.locator("td").nth(2)).to_contain_text("b (127.0.0.1:")
        console.shot("cluster-raft")
        assert console.errors == []
    finally:
        context.close()
