"""The console and /docs pages: packaged files with strict headers, nothing else reachable."""

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, make_settings, running


@pytest.fixture
async def node() -> AsyncIterator[Api]:
    async with running(make_settings()) as api:
        yield api


async def test_root_redirects_to_the_console(node: Api) -> None:
    response = await node.client.get("/")
    assert response.status_code == 302 and response.headers["location"] == "/console"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/docs", "text/html; charset=utf-8"),
        ("/docs/docs.js", "text/javascript; charset=utf-8"),
        ("/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8"),
    ],
)
async def test_pages_have_their_type_and_strict_headers(node: Api, path: str, content_type: str) -> None:
    response = await node.client.get(path)
    assert response.status_code == 200 and response.content
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp and "cdn" not in csp
    assert response.headers["cache-control"] in ("no-cache", "public, max-age=86400")


async def test_the_console_has_no_inline_script_or_style(node: Api) -> None:
    html = (await node.client.get("/console")).text
    for tag in re.findall(r"<script[^>]*>.*?</script>", html, re.S):
        assert re.search(r'\ssrc="/console/[a-z]+\.js"', tag) and tag.endswith("></script>"), tag
    assert "<style" not in html and " style=" not in html and not re.search(r"\son[a-z]+=", html)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN


async def test_an_unchanged_file_answers_304_to_its_etag(node: Api) -> None:
    first = await node.client.get("/console/app.js")
    again = await node.client.get("/console/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/console/missing.js",
        "/console/..%2F__init__.py",
        "/console/%2e%2e",
        "/console/.hidden.js",
        "/console/index.py",
        "/docs/index.j2",
        "/docs/swagger-ui.js.map",
        "/docs/..%2Fconsole%2Fapp.js",
    ],
)
async def test_only_the_packaged_assets_are_served(node: Api, path: str) -> None:
    response = await node.client.get(path)
    assert response.status_code == 404, path
    assert response.headers["content-type"] == "application/json"


def test_the_wheel_ships_every_packaged_page_file() -> None:
    """Each file under static/ matches a `package-data` glob, so the wheel carries it."""
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = root / "src" / "codeq"
    files = [p for p in (package / "transport/http/static").rglob("*") if p.is_file()]
    assert len(files) >= 10
    for path in files:
        relative = path.relative_to(package).as_posix()
        assert any(_glob(pattern).fullmatch(relative) for pattern in patterns["codeq"]), relative


def _glob(pattern: str) -> re.Pattern[str]:
    """A setuptools glob: `*` stays within one folder."""
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")))
