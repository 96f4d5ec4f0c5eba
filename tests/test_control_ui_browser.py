"""The Control UI in a real browser: Debian's Chromium, headless, driven by Playwright.

Playwright only drives the browser here (`executable_path`), it never downloads one. Every test
talks to a real gateway on loopback; the pending device is a real protocol node (NodeClient).
Screenshots land in the test's tmp dir, and in $CLAWD_ARTIFACTS_DIR when that is set.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.nodeclient import NodeClient
from tests.support.servers import free_port, gateway_in_thread, make_settings, require

TOKEN = "s3cret-token-for-tests-0123456789"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Names the browser resolves to loopback, so a page can have a non-loopback origin without
# any traffic leaving the machine.
FOREIGN_HOST = "control.example.test"
WAIT_MS = 10_000

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(CHROMIUM is not None, "Chromium is not installed (Debian: apt-get install chromium)")
    require(
        importlib.util.find_spec("playwright") is not None,
        "playwright is not installed (pip install -e '.[test]')",
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-proxy-server", f"--host-resolver-rules=MAP {FOREIGN_HOST} 127.0.0.1"],
        )
        try:
            yield b
        finally:
            b.close()


class Page:
    """A fresh browser context (own sessionStorage) that records console errors and CSP reports."""

    def __init__(self, browser: Any, shots: Path) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.problems: list[str] = []
        self.shots = shots
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("console", self._console)

    def _console(self, msg: Any) -> None:
        # Chromium logs every failed WebSocket attempt; while a gateway is down that is expected.
        if msg.type == "error" and not msg.text.startswith("WebSocket connection to"):
            self.problems.append(f"console {msg.type}: {msg.text}")

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"control-ui-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        out = os.environ.get("CLAWD_ARTIFACTS_DIR")
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, Path(out) / path.name)
        print(f"screenshot: {path}" + (f" (copied to {out})" if out else ""))
        return path

    def sign_in(self, secret: str, kind: str = "token") -> None:
        self.page.get_by_label("Credential type").select_option(kind)
        self.page.get_by_label("Token or password").fill(secret)
        self.page.get_by_role("button", name="Connect").click()

    def session_storage(self) -> dict[str, str]:
        return self.page.evaluate("() => Object.fromEntries(Object.entries(sessionStorage))")

    def state(self) -> str:
        return self.page.locator("#conn-state").get_attribute("data-state") or ""


@pytest.fixture
def open_page(browser: Any, tmp_path: Path) -> Iterator[Callable[[str], Page]]:
    pages: list[Page] = []

    def factory(url: str) -> Page:
        page = Page(browser, tmp_path)
        pages.append(page)
        page.page.goto(url)
        return page

    yield factory
    for page in pages:
        page.context.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def test_sign_in_see_health_and_approve_a_pending_node(open_page, tmp_path):
    settings = make_settings(tmp_path, token=TOKEN, tick_interval_ms=1000)
    expect = _expect()
    with gateway_in_thread(settings) as gw:
        ui = open_page(f"http://127.0.0.1:{gw.port}/")
        page = ui.page
        expect(page.get_by_role("heading", name="Sign in to this gateway")).to_be_visible()
        ui.sign_in(TOKEN)

        expect(page.locator("#conn-state")).to_have_attribute("data-state", "connected")
        health = page.locator("#health-summary")
        expect(health).to_contain_text("OK")
        expect(health).to_contain_text("clawd-gateway")
        expect(page.locator("#session-scopes")).to_contain_text("operator.pairing")
        # Presence lists the page itself (mode ui) next to the gateway's own entry.
        expect(page.locator('#presence-table tbody tr[data-mode="ui"]')).to_have_count(1)
        expect(page.locator("#presence-table tbody tr[data-mode='gateway']")).to_have_count(1)
        # Ticks arrive as events and are shown.
        expect(page.locator("#last-tick time")).to_have_count(1)
        # The secret lives in sessionStorage only: not in the URL, not left in the form.
        assert TOKEN in ui.session_storage().values()
        assert TOKEN not in page.url
        assert page.get_by_label("Token or password").input_value() == ""
        assert page.evaluate("() => localStorage.length") == 0

        with NodeClient(
            gw.url, token=TOKEN, display_name="kitchen-pi", commands=["echo"], caps=["camera"]
        ) as node:
            # The pending request appears live, from node.pair.requested: no reload, no polling.
            pending = page.locator(f'#pending-table tr[data-node-id="{node.node_id}"]')
            expect(pending).to_be_visible()
            expect(pending).to_contain_text("kitchen-pi")
            expect(pending).to_contain_text("echo")
            expect(page.locator("#pending-count")).to_have_text("1")
            ui.screenshot("pending")

            page.get_by_role("button", name="Approve kitchen-pi").click()
            resolved = node.wait_event("node.pair.resolved", timeout=10)
            assert resolved["nodeId"] == node.node_id and resolved["decision"] == "approved"

            expect(pending).to_have_count(0)
            expect(page.locator("#pending-count")).to_have_text("0")
            row = page.locator(f'#nodes-table tr[data-node-id="{node.node_id}"]')
            expect(row).to_have_attribute("data-paired", "true")
            expect(row).to_have_attribute("data-connected", "true")
            expect(row).to_contain_text("kitchen-pi")
            expect(row).to_contain_text("camera")
            expect(page.locator("#action-status")).to_have_text("Approved kitchen-pi.")
            ui.screenshot("approved")

        # The node leaving is a live update too.
        expect(row).to_have_attribute("data-connected", "false")

        page.get_by_role("button", name="Forget credential and disconnect").click()
        expect(page.get_by_label("Token or password")).to_be_visible()
        expect(page.locator("#dashboard")).to_be_hidden()
        assert ui.session_storage() == {}
        assert ui.problems == []


def test_reject_a_pending_node(open_page, gateway):
    expect = _expect()
    ui = open_page(f"http://127.0.0.1:{gateway.port}/")
    ui.sign_in(gateway.token)
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    with NodeClient(
        gateway.url, token=gateway.token, display_name="stranger", commands=["system.run"]
    ) as node:
        pending = ui.page.locator(f'#pending-table tr[data-node-id="{node.node_id}"]')
        # Exec commands make approval an admin decision; the page says so before anyone clicks.
        expect(pending).to_contain_text("operator.admin")
        ui.page.get_by_role("button", name="Reject stranger").click()
        resolved = node.wait_event("node.pair.resolved", timeout=10)
        assert resolved["nodeId"] == node.node_id and resolved["decision"] == "rejected"
        expect(pending).to_have_count(0)
        expect(ui.page.locator("#action-status")).to_have_text("Rejected stranger.")
        row = ui.page.locator(f'#nodes-table tr[data-node-id="{node.node_id}"]')
        expect(row).to_have_count(1)  # still connected (loopback paired the device, not its commands)
        expect(row).not_to_contain_text("system.run")  # its command surface was never granted
    assert ui.problems == []


def test_approve_a_remote_device_then_its_commands(open_page, gateway):
    """A node from elsewhere (here: behind a proxy) is refused until its device identity is approved;
    the page lists that request too, and after the node reconnects, its commands."""
    from tests.support.nodeclient import NodeRefused

    expect = _expect()
    ui = open_page(f"http://127.0.0.1:{gateway.port}/")
    ui.sign_in(gateway.token)
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    node = NodeClient(gateway.url, token=gateway.token, display_name="far-pi", headers=proxied)
    with pytest.raises(NodeRefused):
        node.connect()
    device_row = ui.page.locator(f'#pending-table tr[data-node-id="{node.node_id}"][data-kind="device"]')
    expect(device_row).to_contain_text("far-pi")
    expect(device_row).to_contain_text("device identity")
    expect(device_row).to_contain_text("127.0.0.1")  # the socket: the proxy is not a trusted one
    ui.page.get_by_role("button", name="Approve far-pi").click()
    expect(device_row).to_have_count(0)
    expect(ui.page.locator("#action-status")).to_have_text("Approved far-pi.")
    with NodeClient(
        gateway.url, token=gateway.token, display_name="far-pi", headers=proxied, key=node.key
    ) as back:
        node_row = ui.page.locator(f'#pending-table tr[data-node-id="{back.node_id}"][data-kind="node"]')
        expect(node_row).to_contain_text("echo")
        ui.page.get_by_role("button", name="Approve far-pi").click()
        assert back.wait_event("node.pair.resolved", timeout=10)["decision"] == "approved"
        row = ui.page.locator(f'#nodes-table tr[data-node-id="{back.node_id}"]')
        expect(row).to_have_attribute("data-paired", "true")
    assert ui.problems == []


def test_markup_from_a_node_is_shown_as_text(open_page, gateway):
    """Whoever holds the shared secret chooses a node's name and command ids: the page shows them
    as text, never as markup (and a CSP violation or script run would be recorded as a problem)."""
    expect = _expect()
    ui = open_page(f"http://127.0.0.1:{gateway.port}/")
    ui.sign_in(gateway.token)
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    name = '<img src=x onerror="window.__xss=1">'
    with NodeClient(
        gateway.url, token=gateway.token, display_name=name, commands=["<b>bold</b>"], caps=["<i>c</i>"]
    ) as node:
        pending = ui.page.locator(f'#pending-table tr[data-node-id="{node.node_id}"]')
        expect(pending).to_contain_text(name)
        expect(pending).to_contain_text("<b>bold</b>")
        expect(ui.page.get_by_role("button", name=f"Approve {name}")).to_be_visible()
        assert pending.locator("img, b").count() == 0
        row = ui.page.locator(f'#nodes-table tr[data-node-id="{node.node_id}"]')
        expect(row).to_contain_text("<i>c</i>")
        assert row.locator("img, i").count() == 0
    assert ui.page.evaluate("() => window.__xss") is None
    assert ui.problems == []


def test_wrong_token_shows_the_gateways_message(open_page, gateway):
    expect = _expect()
    ui = open_page(f"http://127.0.0.1:{gateway.port}/")
    ui.sign_in("not-the-token")
    error = ui.page.get_by_role("alert")
    expect(error).to_contain_text("gateway token mismatch")
    expect(error).to_contain_text("gateway.auth.token")
    assert ui.state() == "refused"
    expect(ui.page.locator("#dashboard")).to_be_hidden()
    # A refused secret is not kept, so a reload does not retry it in a loop.
    assert "clawd.controlUi.secret" not in ui.session_storage()
    ui.screenshot("wrong-token")
    # Correcting it in the same page works.
    ui.sign_in(gateway.token)
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    expect(error).to_be_hidden()


def test_under_a_base_path_and_a_deep_link(open_page, make_gateway):
    expect = _expect()
    gw = make_gateway('{gateway: {controlUi: {basePath: "/control"}}}', token=TOKEN)
    ui = open_page(f"http://127.0.0.1:{gw.port}/control/some/deep/view")
    ui.sign_in(TOKEN)
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    expect(ui.page.locator("#health-summary")).to_contain_text("OK")
    assert ui.problems == []


def test_rate_limited_sign_in_waits(open_page, make_gateway):
    expect = _expect()
    gw = make_gateway("{gateway: {auth: {rateLimit: {maxAttempts: 2, lockoutMs: 60000}}}}", token=TOKEN)
    ui = open_page(f"http://127.0.0.1:{gw.port}/")
    error = ui.page.get_by_role("alert")
    ui.sign_in("wrong-1")
    expect(error).to_contain_text("token mismatch")
    ui.sign_in("wrong-2")
    expect(error).to_contain_text("too many failed authentication attempts")
    expect(error).to_contain_text("Try again in")
    button = ui.page.locator("#connect-button")
    expect(button).to_be_disabled()
    expect(button).to_contain_text("wait")


def test_foreign_origin_refused_unless_allowed(open_page, make_gateway):
    """A page served under a name that is not loopback is refused, until allowedOrigins lists it."""
    expect = _expect()
    gw = make_gateway(token=TOKEN)
    ui = open_page(f"http://{FOREIGN_HOST}:{gw.port}/")
    ui.sign_in(TOKEN)
    error = ui.page.get_by_role("alert")
    expect(error).to_contain_text("origin not allowed")
    expect(error).to_contain_text("gateway.controlUi.allowedOrigins")
    expect(error).to_contain_text(f"http://{FOREIGN_HOST}:{gw.port}")
    assert ui.state() == "refused"
    ui.screenshot("origin-refused")

    port = free_port()
    listed = make_gateway(
        f'{{gateway: {{controlUi: {{allowedOrigins: ["http://{FOREIGN_HOST}:{port}"]}}}}}}',
        token=TOKEN,
        port=port,
    )
    ui = open_page(f"http://{FOREIGN_HOST}:{listed.port}/")
    ui.sign_in(TOKEN)
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    expect(ui.page.locator("#health-summary")).to_contain_text("OK")
    assert ui.problems == []


def test_reconnects_after_the_gateway_restarts(open_page, tmp_path):
    expect = _expect()
    port = free_port()
    settings = make_settings(tmp_path, token=TOKEN, port=port)
    with gateway_in_thread(settings) as gw:
        ui = open_page(f"http://127.0.0.1:{gw.port}/")
        ui.sign_in(TOKEN)
        expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected")
    # Gateway gone: the page says so and keeps the dashboard, retrying with backoff.
    expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "reconnecting")
    expect(ui.page.locator("#conn-state")).to_contain_text("retrying in")
    again = tmp_path / "again"
    again.mkdir()
    with gateway_in_thread(make_settings(again, token=TOKEN, port=port)):
        expect(ui.page.locator("#conn-state")).to_have_attribute("data-state", "connected", timeout=20_000)
        expect(ui.page.locator("#health-summary")).to_contain_text("OK")
    assert ui.problems == []
