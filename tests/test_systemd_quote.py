"""clawd_gateway.systemd: the one ExecStart=/Environment= quoting both unit writers use.

Round trips are property-tested; `systemd-analyze verify` then checks the part a round trip cannot:
that systemd reads the executable path we meant (it must exist, so a wrong escape fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.servers import require

from clawd_client import autostart
from clawd_gateway import systemd
from clawd_gateway.service import ServiceSpec, render_systemd_unit

# Anything a unit line can carry: no control characters (callers refuse those first).
_text = st.text(st.characters(min_codepoint=32, exclude_characters="\x7f"), max_size=12)
_nasty = st.text(st.sampled_from(list("a /$%\"'\\;#é=-")), max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_text, _nasty), min_size=1, max_size=5))
def test_exec_line_round_trips(argv):
    argv = ["/" + argv[0], *argv[1:]]
    assert systemd.parse_exec(systemd.exec_line(argv)) == argv


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 3),
    st.sampled_from(["/we'ird/python", "/plain/python", "/back\\slash"]),
    st.lists(st.one_of(_text, _nasty, st.just(systemd.ENV_PROGRAM)), max_size=3),
)
def test_round_trip_survives_an_explicit_env_program(envs, program, rest):
    """parse_exec drops only the env(1) exec_line added, never one the caller asked for."""
    argv = [*[systemd.ENV_PROGRAM] * envs, program, *rest]
    assert systemd.parse_exec(systemd.exec_line(argv)) == argv


def test_escapes():
    line = systemd.exec_line(["/opt/a$b/py", "$HOME", "100%", "two words", 'q"uote'])
    # The executable is never $-expanded by systemd, so no $$ there; arguments are.
    assert line == '"/opt/a$b/py" "$$HOME" 100%% "two words" "q\\"uote"'
    assert systemd.exec_line(["/x'y/python", "-m"]) == '/usr/bin/env "/x\'y/python" -m'
    assert systemd.quote_environment("CLAWD_CONFIG_DIR", "/c d/%x$y") == '"CLAWD_CONFIG_DIR=/c d/%%x$y"'
    assert systemd.quote_word("/plain/path") == "/plain/path"
    assert systemd.escape_specifiers("/a%b c") == "/a%%b c"
    assert systemd.parse_exec("-/bin/true x") == ["/bin/true", "x"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_text, _nasty), min_size=1, max_size=4))
def test_both_unit_writers_quote_alike(argv):
    """The gateway's unit and `clawd autostart`'s unit write the same ExecStart for the same argv."""
    argv = ["/" + argv[0], *argv[1:]]
    spec = ServiceSpec(program=tuple(argv[:1]), args=tuple(argv[1:]), env_file=PurePosixPath("/e"))
    exec_lines = [line for line in render_systemd_unit(spec).split("\n") if line.startswith("ExecStart=")]
    assert exec_lines == [f"ExecStart={autostart.systemd_exec(argv)}"]
    assert autostart.parse_systemd_exec(autostart.systemd_exec(argv)) == argv


def _verify(unit: Path, tmp_path: Path) -> None:
    exe = shutil.which("systemd-analyze")
    require(exe is not None, "systemd-analyze not found (apt-get install systemd)")
    assert exe
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.run(
        [exe, "--user", "verify", str(unit)],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        timeout=60,
    )
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


def test_gateway_unit_with_a_hostile_interpreter_path_verifies(tmp_path):
    """`$`, `%`, quotes and spaces in the interpreter's path: systemd must find the real file.

    With `$$` in the executable (the gateway's old rule) systemd looked for a file that does not
    exist; with a quote it refused the unit. env(1) and no `$$` fix both.
    """
    for name in ("d ir $HOME %h", "q\"uo'te back\\slash"):
        bindir = tmp_path / name / "bin"
        bindir.mkdir(parents=True)
        python = bindir / "python"
        python.symlink_to(sys.executable)
        spec = ServiceSpec(
            program=(str(python), "-m", "clawd_gateway"),
            args=("run", "--config", str(tmp_path / name / "c$fg %h.json")),
            env_file=PurePosixPath(tmp_path / name / "env"),
            scope="user",
            state_dir=PurePosixPath(tmp_path / name / "state"),
            protect_home="read-only",
        )
        units = tmp_path / f"units-{len(name)}"
        units.mkdir()
        unit = units / "clawd-gateway.service"
        unit.write_text(render_systemd_unit(spec))
        _verify(unit, tmp_path)
        exec_value = next(line for line in unit.read_text().split("\n") if line.startswith("ExecStart="))
        assert systemd.parse_exec(exec_value.removeprefix("ExecStart=")) == list(spec.argv)
