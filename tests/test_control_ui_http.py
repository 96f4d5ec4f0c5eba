"""The Control UI's HTTP side: what is served, with which headers, and what can never be reached."""

from __future__ import annotations

import fnmatch
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from clawd_gateway.http import RouteContext, route

ROOT = RouteContext(ready=True, uptime_ms=1, local_caller=True, ui_enabled=True, base_path="")
CONTROL = RouteContext(ready=True, uptime_ms=1, local_caller=True, ui_enabled=True, base_path="/control")
UI_DIR = resources.files("clawd_gateway.ui")
SHIPPED = sorted(
    e.name
    for e in UI_DIR.iterdir()
    if e.is_file() and e.name.rsplit(".", 1)[-1] in ("html", "js", "css", "svg")
)
ASSETS = [n for n in SHIPPED if n != "index.html"]
EXPECTED_TYPE = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}


class _PageScan(HTMLParser):
    """Collects what a strict CSP would refuse: inline scripts/styles, handlers, foreign URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in a:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=...>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            if not a.get("src"):
                self.inline.append("<script> without src")
            self._in = "script"
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith("#"):
                self.urls.append(str(a[key]))

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script" and data.strip():
            self.inline.append("<script> with a body")


def _page(ctx: RouteContext = ROOT, path: str = "/") -> str:
    reply = route("GET", path, ctx)
    assert reply.status == 200 and reply.headers["Content-Type"] == "text/html; charset=utf-8"
    return reply.body.decode()


def test_page_headers_forbid_inline_code_framing_and_referrers():
    headers = route("GET", "/", ROOT).headers
    csp = {d.split()[0]: d.split()[1:] for d in headers["Content-Security-Policy"].split("; ")}
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]  # CSP3: 'self' covers ws:/wss: to the same host
    assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("ctx", [ROOT, CONTROL], ids=["root", "basePath"])
def test_page_has_no_inline_code_and_every_reference_is_served(ctx):
    scan = _PageScan()
    scan.feed(_page(ctx, ctx.base_path + "/"))
    assert scan.inline == []
    assert scan.urls, "the page references its script and stylesheet"
    for url in scan.urls:
        assert url.startswith(ctx.base_path + "/"), f"{url} is not an absolute path under the base"
        reply = route("GET", url, ctx)
        assert reply.status == 200, url


def test_modules_import_only_shipped_files_and_nothing_remote():
    for name in ASSETS:
        text = UI_DIR.joinpath(name).read_text()
        if name.endswith(".js"):
            for target in re.findall(r"""\bfrom\s+["']([^"']+)["']""", text):
                assert target.startswith("./") and target[2:] in ASSETS, f"{name} imports {target}"
            assert "innerHTML" not in text and "eval(" not in text, name
        if name.endswith((".js", ".css")):
            assert not re.search(r"\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), (
                f"{name} loads something remote"
            )
            assert "@import" not in text and "url(" not in text, name


@pytest.mark.parametrize("name", ASSETS)
def test_assets_have_their_content_type_and_revalidate(name):
    reply = route("GET", "/" + name, ROOT)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith(EXPECTED_TYPE[name.rsplit(".", 1)[1]])
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-cache"
    assert reply.body == UI_DIR.joinpath(name).read_bytes()
    head = route("HEAD", "/" + name, ROOT)
    assert head.body == b"" and head.headers["Content-Length"] == str(len(reply.body))


TRAVERSALS = [
    "/../http.py",
    "/..%2fhttp.py",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e%2fhttp.py",
    "/..\\http.py",
    "/__init__.py",
    "/__pycache__/__init__.cpython-311.pyc",
    "/app.js/../../http.py",
    "/ui/app.js",
    "/./app.js",
    "/app.js%00.css",
    "/APP.JS",
    "/.app.js",
    "/control/../http.py",
    "/etc/passwd",
    "//etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
@pytest.mark.parametrize("ctx", [ROOT, CONTROL], ids=["root", "basePath"])
def test_no_path_reaches_a_file_outside_the_ui(target, ctx):
    reply = route("GET", target, ctx)
    assert reply.status in (200, 302, 404)
    if reply.status == 200:
        # Only ever the page itself (SPA fallback for extensionless paths), never file contents.
        assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"<!doctype html>" in reply.body
    assert b"import " not in reply.body and b"root:" not in reply.body


def test_unknown_files_are_404_not_the_page():
    for target in ("/missing.js", "/favicon.ico", "/app.css.map", "/control/app.js"):
        assert route("GET", target, ROOT).status == 404, target
    assert route("GET", "/app.js", CONTROL).status == 404  # outside the base path
    assert route("GET", "/control/app.js", CONTROL).status == 200


def test_spa_routes_and_reserved_prefixes():
    assert route("GET", "/nodes/some-view?x=1", ROOT).status == 200
    for target in ("/api/x", "/plugins/y", "/ui", "/healthcheck", "/ready-or-not"):
        assert route("GET", target, ROOT).status == 404, target
    reply = route("GET", "/control", CONTROL)
    assert reply.status == 302 and reply.headers["Location"] == "/control/"


def test_base_path_is_escaped_into_the_page():
    ctx = RouteContext(ready=True, uptime_ms=1, local_caller=True, ui_enabled=True, base_path='/a"b<c>')
    page = route("GET", '/a"b<c>/', ctx).body.decode()
    assert 'data-base-path="/a&quot;b&lt;c&gt;"' in page
    assert '"/a"b' not in page and "<c>" not in page


def test_disabled_ui_serves_nothing():
    off = RouteContext(ready=True, uptime_ms=1, local_caller=True, ui_enabled=False, base_path="")
    assert route("GET", "/", off).status == 404 and route("GET", "/app.js", off).status == 404


def load_toml(path: Path) -> dict[str, Any]:
    """tomllib from Python 3.11 on. On 3.10 (still supported) tomli: the package if installed, else
    the copy pip vendors (a venv made by `python -m venv` has pip), so the check below runs on
    every supported Python instead of skipping on one."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            from pip._vendor import tomli as tomllib
    with path.open("rb") as fh:
        return tomllib.load(fh)


def test_package_data_ships_every_ui_file():
    """A non-editable install gets the UI only if pyproject's package-data globs cover each file."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    globs = load_toml(pyproject)["tool"]["setuptools"]["package-data"]["clawd_gateway"]
    for name in SHIPPED:
        assert any(fnmatch.fnmatch(f"ui/{name}", g) for g in globs), f"ui/{name} is not in package-data"


def test_served_over_the_real_socket(gateway):
    """The same headers survive the websockets HTTP path (no proxy in between)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = f"http://127.0.0.1:{gateway.port}"
    with opener.open(base + "/", timeout=5) as resp:
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    with opener.open(base + "/gateway.js", timeout=5) as resp:
        assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert b"connect.challenge" in resp.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(base + "/..%2fhttp.py", timeout=5)
    with err.value:  # close it: an open keep-alive socket would outlive the gateway's loop
        assert err.value.code == 404 and err.value.read() == b"Not Found\n"
