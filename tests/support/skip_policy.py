"""No skip hides in CI: under CLAWD_REQUIRE_SERVERS=1 every skipped test is a failure, except a
platform skip on the one allowlist below, raised on that very platform.

Why a hook and not a convention: `tests.support.servers.require()` already fails instead of
skipping under the flag, but a bare `pytest.skip()`, a `skipif` mark, an `importorskip` or an
`xfail` anywhere else would still let CI go green without running the test. This plugin sees
every test report (setup, call, teardown) and every collection report, so nothing gets past it.

What stays a skip under the flag: a `PlatformSkip` for a platform in `PLATFORM_SKIPS`, raised
while running on exactly that platform. Write one with the `platform_skip` mark or with
`skip_on_platform()`; both do nothing on any other platform, so on Linux CI they never skip.
A text that merely looks like a platform skip (`pytest.skip("platform skip (win32): ...")`) is
not one: for test reports the check is on the exception type, and for collection reports (where
pytest keeps only the text) the named platform must also be the one we run on.

tests/conftest.py registers this module as a plugin; tests/test_skip_policy.py runs it with
pytester.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Generator
from typing import Any

import pytest

REQUIRE_ENV = "CLAWD_REQUIRE_SERVERS"

# The one allowlist: platforms where a test may legitimately not apply. Linux is not on it, so
# nothing can skip on CI.
PLATFORM_SKIPS: frozenset[str] = frozenset({"win32", "darwin"})

# The platform the checks compare against; a module attribute so tests/test_skip_policy.py can
# play another platform without touching sys.platform under a running pytest.
PLATFORM: str = sys.platform

MARK = "platform_skip"
_PREFIX = "platform skip ({platform}): "


def required() -> bool:
    """Whether skips are failures in this run (CI sets the variable)."""
    return os.environ.get(REQUIRE_ENV) == "1"


class PlatformSkip(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """A skip because the test does not apply to `platform` (one of PLATFORM_SKIPS)."""

    def __init__(self, platform: str, reason: str, allow_module_level: bool = False) -> None:
        super().__init__(_PREFIX.format(platform=platform) + reason, allow_module_level=allow_module_level)
        self.platform = platform


# How a PlatformSkip raised at collection (module level) reads in a collection report, which
# keeps only the text: pytest prefixes the exception's qualified name (a bare skip: "Skipped").
_COLLECTED_RE = re.compile(
    rf"^{re.escape(f'{PlatformSkip.__module__}.{PlatformSkip.__qualname__}')}: platform skip \(([a-z0-9]+)\): "
)


def skip_on_platform(platform: str, reason: str, *, allow_module_level: bool = False) -> None:
    """Skip the running test (or module) when running on `platform`; a no-op anywhere else."""
    if platform == PLATFORM:
        raise PlatformSkip(platform, reason, allow_module_level)


def platform_skip(platform: str, reason: str) -> pytest.MarkDecorator:
    """`@platform_skip("win32", "POSIX pseudo-terminal")`: the mark form of skip_on_platform."""
    return pytest.mark.platform_skip(platform, reason=reason)


def _allowed_platform(platform: str) -> bool:
    return platform in PLATFORM_SKIPS and platform == PLATFORM


def _refusal(what: str) -> str:
    return (
        f"{what}\n{REQUIRE_ENV}=1 turns every skip into a failure; only a platform skip "
        f"(tests.support.skip_policy: the platform_skip mark or skip_on_platform) for one of "
        f"{sorted(PLATFORM_SKIPS)}, on that platform, stays a skip"
    )


def _skip_text(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARK}(platform, reason): skip on that platform only ({sorted(PLATFORM_SKIPS)}); "
        f"the only skip that {REQUIRE_ENV}=1 allows",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(MARK):
        platform, reason = mark.args[0], mark.kwargs.get("reason", "")
        skip_on_platform(platform, reason)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # tryfirst makes this the outermost wrapper: it sees the report after pytest's own
    # skipping plugin has turned xfail outcomes into "skipped".
    report = yield
    if not report.skipped or not required():
        return report
    excinfo = call.excinfo
    if hasattr(report, "wasxfail"):
        what = f"expected failure (xfail) in {report.when}: {report.wasxfail or 'no reason given'}"
        del report.wasxfail
    elif excinfo is not None and isinstance(excinfo.value, PlatformSkip):
        if _allowed_platform(excinfo.value.platform):
            return report
        what = f"platform skip for {excinfo.value.platform!r}, which is not allowlisted here"
    else:
        what = f"skipped in {report.when}: {_skip_text(report.longrepr)}"
    report.outcome = "failed"
    report.longrepr = _refusal(what)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if not report.skipped or not required():
        return report
    text = _skip_text(report.longrepr)
    m = _COLLECTED_RE.match(text)
    if m and _allowed_platform(m.group(1)):
        return report
    report.outcome = "failed"
    report.longrepr = _refusal(f"{collector.nodeid or 'collection'} skipped: {text}")
    return report
