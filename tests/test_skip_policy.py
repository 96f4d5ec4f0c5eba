"""The skip policy itself (tests/support/skip_policy.py), run by pytester on small test files.

Under CLAWD_REQUIRE_SERVERS=1 a bare skip, a skipif mark, an importorskip, a module-level skip
and an xfail fail the run; a platform skip on the allowlist, on that platform, stays a skip;
without the flag every skip stays a skip.
"""

from __future__ import annotations

import pytest
from tests.support import skip_policy

pytest_plugins = ["pytester"]

# The plugin is already imported (tests/conftest.py), so the inner run cannot assert-rewrite it.
POLICY = ("-p", "tests.support.skip_policy", "-W", "ignore::pytest.PytestAssertRewriteWarning")


@pytest.fixture
def flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(skip_policy.REQUIRE_ENV, "1")


@pytest.fixture
def no_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(skip_policy.REQUIRE_ENV, raising=False)


BARE = """
import pytest

def test_bare():
    pytest.skip("no IPv6 loopback on this machine")

@pytest.mark.skipif(True, reason="kernel too old")
def test_skipif():
    pass

def test_importorskip():
    pytest.importorskip("no_such_module_for_clawd_tests")

def test_runs():
    pass
"""


def test_bare_skips_fail_the_run_under_the_flag(pytester: pytest.Pytester, flag: None) -> None:
    pytester.makepyfile(BARE)
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The call-phase skips are failures, the skipif (raised in setup) an error; nothing skipped.
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines(["*no IPv6 loopback on this machine*", "*CLAWD_REQUIRE_SERVERS=1 turns*"])
    result.stdout.fnmatch_lines(["*kernel too old*"])
    result.stdout.fnmatch_lines(["*no_such_module_for_clawd_tests*"])


def test_without_the_flag_skips_stay_skips(pytester: pytest.Pytester, no_flag: None) -> None:
    pytester.makepyfile(BARE)
    result = pytester.runpytest(*POLICY, "-rs")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1, skipped=3)


PLATFORM_SKIPS = """
import pytest
from tests.support.skip_policy import platform_skip, skip_on_platform

@platform_skip("darwin", "launchd only")
def test_marked():
    pass

def test_imperative():
    skip_on_platform("darwin", "the macOS app bundle is installed here")
"""


@pytest.mark.parametrize("platform", sorted(skip_policy.PLATFORM_SKIPS))
def test_an_allowlisted_platform_skip_stays_a_skip_on_that_platform(
    pytester: pytest.Pytester, flag: None, monkeypatch: pytest.MonkeyPatch, platform: str
) -> None:
    monkeypatch.setattr(skip_policy, "PLATFORM", platform)
    pytester.makepyfile(PLATFORM_SKIPS.replace("darwin", platform))
    result = pytester.runpytest(*POLICY, "-rs")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([f"*platform skip ({platform}): launchd only*"])


def test_a_platform_skip_runs_the_test_on_every_other_platform(
    pytester: pytest.Pytester, flag: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(skip_policy, "PLATFORM", "linux")
    pytester.makepyfile(PLATFORM_SKIPS)
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)


def test_only_the_allowlist_and_only_the_real_thing_pass(
    pytester: pytest.Pytester, flag: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A platform skip for Linux (not allowlisted), a darwin skip text that is a bare skip, and a
    platform skip that names another platform than the one running all fail."""
    monkeypatch.setattr(skip_policy, "PLATFORM", "linux")
    pytester.makepyfile(
        """
        import pytest
        from tests.support import skip_policy
        from tests.support.skip_policy import platform_skip, skip_on_platform

        @platform_skip("linux", "not on the allowlist")
        def test_linux_mark():
            pass

        def test_linux_call():
            skip_on_platform("linux", "not on the allowlist either")

        def test_lookalike_text():
            pytest.skip("platform skip (darwin): only looks like one")

        def test_other_platform():
            raise skip_policy.PlatformSkip("darwin", "raised by hand on linux")
        """
    )
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=3, errors=1)
    result.stdout.fnmatch_lines(["*platform skip for 'linux', which is not allowlisted here*"])
    result.stdout.fnmatch_lines(["*platform skip for 'darwin', which is not allowlisted here*"])


def test_a_module_level_skip_is_a_collection_error_under_the_flag(
    pytester: pytest.Pytester, flag: None
) -> None:
    pytester.makepyfile(
        """
        import pytest
        pytest.skip("whole module needs a desktop", allow_module_level=True)

        def test_never_collected():
            pass
        """
    )
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*whole module needs a desktop*"])


def test_a_module_level_platform_skip_stays_a_skip_on_that_platform(
    pytester: pytest.Pytester, flag: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(skip_policy, "PLATFORM", "win32")
    pytester.makepyfile(
        """
        from tests.support.skip_policy import skip_on_platform
        skip_on_platform("win32", "POSIX only module", allow_module_level=True)

        def test_never_collected():
            pass
        """
    )
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.assert_outcomes(skipped=1)


def test_a_module_level_lookalike_text_is_no_platform_skip(
    pytester: pytest.Pytester, flag: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(skip_policy, "PLATFORM", "win32")
    pytester.makepyfile(
        """
        import pytest
        pytest.skip("platform skip (win32): only looks like one", allow_module_level=True)
        """
    )
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)


def test_an_xfail_fails_under_the_flag(pytester: pytest.Pytester, flag: None) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(reason="known broken")
        def test_marked():
            assert False

        def test_called():
            pytest.xfail("broken today")
        """
    )
    result = pytester.runpytest(*POLICY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*expected failure (xfail) in call: known broken*"])


def test_the_suite_runs_under_the_policy(request: pytest.FixtureRequest) -> None:
    """tests/conftest.py registers the plugin for every run of this suite."""
    assert request.config.pluginmanager.is_registered(skip_policy)
