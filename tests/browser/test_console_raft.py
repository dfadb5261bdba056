"""The Cluster page of a real three-node Raft cluster with two shard groups."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import LAPTOP, Console
from tests.cluster.support import Cluster, until

NUMBER = re.compile(r"^\d+$")
# Shard i's preferred leader is the i-th node in id order: its group hands leadership there.
PREFERRED = {0: "a", 1: "b"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, shards=2)
    nodes.start()
    try:
        for shard in (0, 1):
            nodes.wait_leader(shard)
        until(
            lambda: all(nodes.leader_of(shard) == node for shard, node in PREFERRED.items()),
            30.0,
            "each group led by its preferred node",
        )
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
        expect(page.locator("table tbody tr")).to_have_count(6)  # every voter of every group
        for shard, leader in PREFERRED.items():
            for node in cluster.ids:
                row = page.locator(f'tbody tr[data-shard="{shard}"][data-node="{node}"]')
                cells = row.locator("td")
                expect(row.locator("th")).to_have_text(str(shard))
                expect(cells.nth(0)).to_contain_text(f"{leader} (127.0.0.1:")
                expect(cells.nth(1)).to_have_text(NUMBER)  # term
                expect(cells.nth(2)).to_contain_text(f"{node} (127.0.0.1:")
                # Node b knows its own applied index, and its peers' only in the group it leads.
                expect(cells.nth(3)).to_have_text(NUMBER if "b" in (node, leader) else "—")
                expect(cells.nth(4)).to_have_text("ready")  # peers: b's probe of their /readyz
        console.shot("cluster-raft")
        assert console.errors == []
    finally:
        context.close()
