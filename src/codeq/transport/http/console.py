"""The web console (`/console`) and API docs (`/docs`): packaged static files, strict headers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from codeq.transport.http.asgi import Handler, Reply, Request, Router
from codeq.transport.http.errors import error_reply

STATIC = resources.files("codeq.transport.http") / "static"
# Swagger UI 5 (it reads OpenAPI 3.1) from the swagger-ui-bundle-v2 wheel, served as installed.
SWAGGER_PACKAGE = "swagger_ui_bundle"
SWAGGER_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})

# The page paths: HTML and assets, not API operations, so the OpenAPI document leaves them out.
PAGE_ROUTES = frozenset({"/", "/console", "/console/{asset}", "/docs", "/docs/{asset}"})

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
# No inline script or style anywhere in the console: everything it runs is a file served here.
CONSOLE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Swagger UI sets style attributes from its React components, so only styles relax here.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Console files keep their names between releases, so browsers revalidate them (ETag, 304);
# the Swagger files live in a versioned folder of their package and may be cached for a day.
REVALIDATE = b"no-cache"
CACHE_A_DAY = b"public, max-age=86400"


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: bytes
    etag: bytes


class _Folder:
    """The files of one packaged folder, read once on first request and kept in memory."""

    def __init__(self, root: Traversable | None, names: frozenset[str] | None = None) -> None:
        self.root = root
        self.names = names
        self._cache: dict[str, _Asset] = {}

    def get(self, name: str) -> _Asset | None:
        asset = self._cache.get(name)
        if asset is not None or self.root is None:
            return asset
        suffix = name[name.rfind(".") :] if "." in name else ""
        allowed = name in self.names if self.names is not None else not name.startswith(".")
        if suffix not in _TYPES or not allowed:
            return None
        path = self.root / name
        if not path.is_file():
            return None
        body = path.read_bytes()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        asset = self._cache[name] = _Asset(body, _TYPES[suffix], etag)
        return asset


def _swagger_root() -> Traversable | None:
    try:
        vendor = resources.files(SWAGGER_PACKAGE) / "vendor"
    except ModuleNotFoundError:
        return None
    folders = sorted(d.name for d in vendor.iterdir() if d.name.startswith("swagger-ui-"))
    return vendor / folders[-1] if folders else None


class ConsoleRoutes:
    def __init__(self) -> None:
        self.console = _Folder(STATIC / "console")
        self.docs_page = _Folder(STATIC / "docs")
        self.swagger = _Folder(_swagger_root(), SWAGGER_FILES)

    def add_to(self, router: Router) -> None:
        router.add("GET", "/", self.root)
        router.add("GET", "/console", self._page(self.console, CONSOLE_CSP))
        router.add("GET", "/console/{asset}", self._assets(self.console, CONSOLE_CSP, REVALIDATE))
        router.add("GET", "/docs", self._page(self.docs_page, DOCS_CSP))
        router.add("GET", "/docs/{asset}", self.docs_asset)

    async def root(self, request: Request) -> Reply:
        return Reply(302, b"", [(b"location", b"/console")], content_type=b"text/plain; charset=utf-8")

    async def docs_asset(self, request: Request) -> Reply:
        name = request.path_params["asset"]
        if name in SWAGGER_FILES:
            if self.swagger.root is None:
                return error_reply(404, "API docs need the swagger-ui-bundle-v2 package")
            return _serve(request, self.swagger.get(name), DOCS_CSP, CACHE_A_DAY)
        return _serve(request, self.docs_page.get(name), DOCS_CSP, REVALIDATE)

    @staticmethod
    def _page(folder: _Folder, csp: bytes) -> Handler:
        async def page(request: Request) -> Reply:
            return _serve(request, folder.get("index.html"), csp, REVALIDATE)

        return page

    @staticmethod
    def _assets(folder: _Folder, csp: bytes, cache: bytes) -> Handler:
        async def asset(request: Request) -> Reply:
            return _serve(request, folder.get(request.path_params["asset"]), csp, cache)

        return asset


def _serve(request: Request, asset: _Asset | None, csp: bytes, cache: bytes) -> Reply:
    if asset is None:
        return error_reply(404, "not found")
    headers = [
        (b"cache-control", cache),
        (b"etag", asset.etag),
        (b"content-security-policy", csp),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]
    if request.header(b"if-none-match") == asset.etag.decode():
        return Reply(304, b"", headers, content_type=asset.content_type)
    return Reply(200, asset.body, headers, content_type=asset.content_type)
