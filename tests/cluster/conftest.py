"""The three-node cluster most cluster tests start: real `codeq serve` processes, stopped after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.support import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    cl = Cluster(tmp_path)
    try:
        cl.start()
        yield cl
    finally:
        cl.stop()
