"""The pure rules of installing clawd-gateway on the VPS (setup_remote/install_rules.py): reading
what the VPS reported, the package named for a missing venv, wheel tags and pip arguments, and the
unit and launch command lines. No VPS, no sshd: the real-server tests are in
test_setup_remote_install.py."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from clawd_client.setup_remote import install as install_mod
from clawd_client.setup_remote.install_rules import (
    InstallResult,
    Layout,
    PythonInfo,
    config_text,
    constraints_text,
    detached_note,
    detached_starter,
    install_service_cmd,
    is_our_gateway,
    launch_argv,
    linger_cmd,
    no_venv_error,
    parse_gateway_version,
    parse_layout,
    parse_os_release,
    parse_python_probe,
    pip_download_argv,
    pip_failure_fix,
    pip_install_command,
    pip_wheel_argv,
    platform_tags,
    ready_probe,
    uninstall_service_cmd,
    user_manager_up,
    user_runtime,
    venv_failure_detail,
    venv_package_hint,
    wheel_version,
)
from clawd_client.setup_remote.vpsenv import PYTHON_PROBE

LAY = Layout(
    "u",
    1000,
    "/home/u",
    "/home/u/.local/share/clawd-gateway",
    "/home/u/.config",
    "/home/u/.local/state/clawd/gateway",
)
PY = "/home/u/.local/share/clawd-gateway/venv/bin/python"
CONFIG = "/home/u/.local/share/clawd-gateway/openclaw.json"
GLIBC_311 = PythonInfo("/usr/bin/python3", (3, 11), "cp", "x86_64", "glibc", (2, 17), True)


def test_install_keeps_its_public_names() -> None:
    # flow.py, audit.py and the server tests import these from install.py
    assert install_mod.InstallResult is InstallResult
    assert install_mod.Layout is Layout
    assert install_mod.platform_tags is platform_tags
    assert install_mod.venv_package_hint is venv_package_hint
    for name in ("install_gateway", "purge_gateway", "remote_layout", "probe_python", "os_release"):
        assert callable(getattr(install_mod, name))


# --- the account and its python3 -----------------------------------------------------------------


def test_parse_layout() -> None:
    out = "u\n1000\n/home/u\n/home/u/.local/share\n/home/u/.config\n/home/u/.local/state\n"
    assert parse_layout(out) == LAY
    assert parse_layout("u\n1000\n/home/u\n") is None


def test_layout_paths() -> None:
    assert LAY.python == PY
    assert LAY.config == CONFIG
    assert LAY.log == "/home/u/.local/share/clawd-gateway/gateway.log"
    assert LAY.pid_file == "/home/u/.local/share/clawd-gateway/gateway.pid"
    assert LAY.wheels == "/home/u/.local/share/clawd-gateway/wheels"
    assert LAY.user_unit == "/home/u/.config/systemd/user/clawd-gateway.service"


def test_parse_os_release_unquotes_and_keeps_what_it_cannot() -> None:
    text = 'NAME="Debian GNU/Linux"\nID=debian\n# comment\nPRETTY_NAME=\'Debian 12\'\nBAD="unclosed\n'
    assert parse_os_release(text) == {
        "NAME": "Debian GNU/Linux",
        "ID": "debian",
        "PRETTY_NAME": "Debian 12",
        "BAD": '"unclosed',
    }


def test_venv_package_hint_per_distribution() -> None:
    assert venv_package_hint({"ID": "ubuntu"}, (3, 12)) == (
        "python3.12-venv",
        "sudo apt install python3.12-venv",
    )
    assert venv_package_hint({"ID": "debian"}, None) == ("python3-venv", "sudo apt install python3-venv")
    assert venv_package_hint({"ID": "mint", "ID_LIKE": "ubuntu debian"}, (3, 10))[0] == "python3.10-venv"
    assert venv_package_hint({"ID": "rocky", "ID_LIKE": "rhel centos fedora"}, (3, 9))[0] == "python3"
    assert venv_package_hint({"ID": "alpine"}, (3, 12))[1].startswith("sudo apk add python3")
    assert venv_package_hint({"ID": "arch"}, (3, 12))[0] == "python"
    assert venv_package_hint({"ID": "opensuse-leap"}, (3, 11))[1] == "sudo zypper install python3"
    assert venv_package_hint({}, None)[0] == "python3-venv"


def test_no_venv_error_names_the_package_and_the_fix() -> None:
    release = {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
    err = no_venv_error("u@vps", release, GLIBC_311, "its ensurepip module is missing")
    assert str(err).startswith(
        "u@vps (Debian GNU/Linux 12 (bookworm)) has python3 3.11 without venv: clawd-gateway needs "
        "`python3 -m venv`; install the python3.11-venv package there (its ensurepip module is missing)"
    )
    assert err.fix == "on the VPS: sudo apt install python3.11-venv — then run setup-remote again"
    bare = no_venv_error("u@vps", {}, None, "")
    assert "(this system) has no python3" in str(bare) and "package there" in str(bare)
    assert not str(bare).rstrip().endswith(")")


def test_venv_failure_detail() -> None:
    assert venv_failure_detail("Error: ensurepip is not available") == (
        "`python3 -m venv` says ensurepip is not available"
    )
    assert venv_failure_detail("x\nNo module named venv\n") == "No module named venv"
    assert venv_failure_detail("Permission denied") is None


def test_parse_python_probe() -> None:
    line = json.dumps(
        {
            "path": "/usr/bin/python3",
            "version": [3, 11],
            "implementation": "cp",
            "machine": "x86_64",
            "libc": "glibc",
            "libc_version": "2.17",
            "venv": True,
        }
    )
    assert parse_python_probe("noise\n" + line + "\n") == GLIBC_311
    musl = json.loads(line) | {"libc": "musl", "libc_version": "1", "machine": "aarch64", "venv": False}
    info = parse_python_probe(json.dumps(musl))
    assert info is not None and info.libc_version == (1, 0) and not info.venv_module
    assert parse_python_probe("") is None
    assert parse_python_probe("not json") is None
    assert parse_python_probe('{"path": "/x"}') is None


def test_the_probe_script_parses_on_this_python() -> None:
    out = subprocess.run([sys.executable, "-c", PYTHON_PROBE], capture_output=True, text=True, check=True)
    info = parse_python_probe(out.stdout)
    assert info is not None and info.version == sys.version_info[:2]


def test_parse_gateway_version() -> None:
    assert parse_gateway_version(True, "clawd-gateway 1.2.3\n") == "1.2.3"
    assert parse_gateway_version(False, "clawd-gateway 1.2.3\n") is None
    assert parse_gateway_version(True, "") is None


# --- wheels and pip --------------------------------------------------------------------------------


def test_platform_tags() -> None:
    tags = platform_tags("glibc", (2, 17), "x86_64")
    assert tags[:2] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert "manylinux2010_x86_64" in tags and tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert "manylinux2010_aarch64" not in platform_tags("glibc", (2, 17), "aarch64")
    assert platform_tags("musl", (1, 2), "x86_64") == [
        "musllinux_1_2_x86_64",
        "musllinux_1_1_x86_64",
        "musllinux_1_0_x86_64",
    ]
    assert platform_tags("", (0, 0), "x86_64") == []


def test_pip_target_args() -> None:
    args = GLIBC_311.pip_target_args()
    assert args[:10] == [
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    assert args[10:12] == ["--platform", "manylinux_2_17_x86_64"]
    pypy = PythonInfo("/p", (3, 10), "pp", "x86_64", "", (0, 0), True)
    assert pypy.pip_target_args() == ["--python-version", "3.10", "--implementation", "pp"]


def test_wheel_version() -> None:
    assert wheel_version("dist/clawd-0.4.1-py3-none-any.whl") == "0.4.1"
    assert wheel_version("Clawd-1.0-py3-none-any.whl") == "1.0"
    assert wheel_version("websockets-12.0-cp311-cp311-linux_x86_64.whl") is None
    assert wheel_version("clawd-0.4.1.tar.gz") is None


def test_pip_wheel_and_download_argv() -> None:
    assert pip_wheel_argv("/py", Path("/src"), Path("/out")) == [
        "/py", "-m", "pip", "wheel", "--no-deps", "--quiet", "/src", "-w", "/out"
    ]  # fmt: skip
    base = ["/py", "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", "/house"]
    assert pip_download_argv("/py", Path("/house"), None) == base
    assert pip_download_argv("/py", Path("/house"), GLIBC_311) == base + GLIBC_311.pip_target_args()


def test_constraints_text_pins_the_first_of_each_name() -> None:
    dists = [("Foo_Bar", "1.0"), ("foo.bar", "2.0"), ("clawd", "9"), ("pip", "24"), (None, "1"), ("abc", "3")]
    assert constraints_text(dists) == "abc==3\nfoo-bar==1.0\n"


def test_pip_install_command() -> None:
    pip = f"{PY} -m pip install --disable-pip-version-check --quiet"
    assert pip_install_command(LAY, "0.4.1", False, False) == (
        f"{pip} clawd==0.4.1",
        "the VPS's package index",
    )
    wheels = "/home/u/.local/share/clawd-gateway/wheels"
    assert pip_install_command(LAY, "0.4.1", True, True) == (
        f"PIP_CONFIG_FILE=/dev/null {pip} --no-index --find-links {wheels} clawd==0.4.1",
        "the uploaded wheels",
    )
    assert pip_install_command(LAY, "0.4.1", True, False) == (
        f"{pip} --find-links {wheels} clawd==0.4.1",
        "the uploaded wheels and the VPS's package index",
    )
    assert "--from" in pip_failure_fix(False) and "match" in pip_failure_fix(True)


def test_pip_install_command_quotes_odd_paths() -> None:
    lay = Layout("u", 1, "/h", "/h/my data/clawd-gateway", "/h/.config", "/h/s")
    command, _ = pip_install_command(lay, "1.0", True, True)
    assert shlex.split(command)[1] == "/h/my data/clawd-gateway/venv/bin/python"
    assert "/h/my data/clawd-gateway/wheels" in shlex.split(command)


# --- config, units, launch ---------------------------------------------------------------------------


def test_config_text() -> None:
    text = config_text(28789)
    assert text.startswith("// clawd-gateway, installed by `clawd setup-remote`")
    body = json.loads(text.split("\n", 1)[1])
    assert body == {"gateway": {"port": 28789, "bind": "loopback", "auth": {"mode": "token"}}}


def test_service_commands() -> None:
    assert install_service_cmd(LAY, "--user", "--enable") == (
        f"{PY} -m clawd_gateway install-service --user --enable --config {CONFIG}"
    )
    assert uninstall_service_cmd(LAY, user=True, systemd=True) == (
        f"{PY} -m clawd_gateway uninstall-service --user --purge --disable"
    )
    assert (
        uninstall_service_cmd(LAY, user=False, systemd=False)
        == f"{PY} -m clawd_gateway uninstall-service --purge"
    )
    assert user_runtime(LAY) == "XDG_RUNTIME_DIR=/run/user/1000"
    assert linger_cmd(LAY) == "loginctl enable-linger u"
    assert user_manager_up("degraded") and user_manager_up("running") and not user_manager_up("offline")


def test_launch_and_starter() -> None:
    env = "/home/u/.config/clawd-gateway/env"
    assert launch_argv(LAY) == [
        PY,
        "-m",
        "clawd_gateway.service",
        "launch",
        "--env-file",
        env,
        "--",
        "run",
        "--config",
        CONFIG,
    ]
    starter = detached_starter(LAY)
    run = shlex.join(launch_argv(LAY))
    assert starter.startswith("cd /home/u && echo ")
    assert f"nohup $S {run} >> /home/u/.local/share/clawd-gateway/gateway.log 2>&1 < /dev/null & " in starter
    assert starter.endswith("echo $! > /home/u/.local/share/clawd-gateway/gateway.pid")
    # the log's first line is the command, to start it again by hand
    assert shlex.split(starter)[4] == "# started by clawd setup-remote: " + run


def test_detached_note() -> None:
    assert "will NOT come back after a reboot" in detached_note("u@vps", LAY, False)
    assert detached_note("u@vps", LAY, True).endswith("; --system needs systemd, so it runs as this account")


def test_ready_probe_and_our_gateway() -> None:
    argv = shlex.split(ready_probe(LAY, 28789))
    assert argv[:2] == [PY, "-c"] and "http://127.0.0.1:28789/readyz" in argv[2]
    compile(argv[2], "<probe>", "exec")
    assert is_our_gateway(f"{PY} -m clawd_gateway.service launch -- run --config {CONFIG} ", LAY)
    assert not is_our_gateway(f"python3 -m http.server --config {CONFIG}", LAY)
    assert not is_our_gateway(f"{PY} -m clawd_gateway run --config /other.json", LAY)
