"""`clawd-gateway audit`: each unsafe setting from the seeds' pitfalls yields its finding.

Real inputs throughout: config files on disk, files with bad modes, a real gateway process
listening where it should not, generated systemd units, sshd_config files read by the real
`sshd -T` (and by our fallback parser), and the fake `tailscale` for --deep.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from tests.support.fake_tailscale import FakeTailscale
from tests.support.servers import free_port, gateway_process, require

from clawd_gateway.audit.checks import run_checks
from clawd_gateway.audit.facts import ConfigFacts, Facts
from clawd_gateway.audit.gather import gather_sshd, sshd_binary
from clawd_gateway.audit.run import run_audit
from clawd_gateway.audit.strength import estimate_bits, weakness
from clawd_gateway.audit.tsroutes import routes_from_serve_config
from clawd_gateway.audit.units import parse_systemd_unit
from clawd_gateway.service import ServiceSpec, render_systemd_unit

STRONG = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5f"
SAFE_SSHD = """\
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding local
"""


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    """A private config file, state dir and safe sshd_config; the environment to audit them with."""
    home = tmp_path / "home"
    cfg_dir = home / ".openclaw"
    cfg_dir.mkdir(parents=True, mode=0o700)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    sshd_conf = tmp_path / "sshd_config"
    sshd_conf.write_text(SAFE_SSHD)
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(home),
            "CLAWD_STATE_DIR": str(state),
            "CLAWD_AUDIT_SSHD_CONFIG": str(sshd_conf),
            "OPENCLAW_GATEWAY_TOKEN": STRONG,
            # a port nothing else on this box uses, so other tests' gateways never show up here
            "OPENCLAW_GATEWAY_PORT": str(free_port()),
        }
    )
    return {"env": env, "config": cfg_dir / "openclaw.json", "state": state, "home": home, "sshd": sshd_conf}


def write_config(setup: dict[str, Any], text: str, mode: int = 0o600) -> Path:
    path: Path = setup["config"]
    path.write_text(text)
    path.chmod(mode)
    return path


def audit(setup: dict[str, Any], **kw: Any) -> dict[str, Any]:
    report = run_audit(config=str(setup["config"]), env=setup["env"], **kw)
    return report.to_json()


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in report["findings"]}


def cli(setup: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clawd_gateway", "audit", "--config", str(setup["config"]), *args],
        capture_output=True,
        text=True,
        env=setup["env"],
        timeout=60,
    )


# --- the safe default, the JSON schema, exit codes ---------------------------------------------------


def test_safe_default_config_has_no_critical_finding_and_exits_0(setup: dict[str, Any]) -> None:
    write_config(setup, '{gateway: {bind: "loopback", auth: {mode: "token"}}}')
    proc = cli(setup, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["critical"] == 0
    assert [f["id"] for f in report["findings"] if f["severity"] != "info"] == []
    assert "audit.regular" in by_id(report)
    # schema
    assert set(report) == {
        "schemaVersion",
        "deep",
        "summary",
        "findings",
        "audited",
        "skipped",
        "fixes",
        "exitCode",
    }
    assert report["schemaVersion"] == 1 and report["exitCode"] == 0 and report["fixes"] == []
    assert set(report["summary"]) == {"critical", "warn", "info"}
    for f in report["findings"]:
        assert set(f) == {"id", "severity", "title", "evidence", "fix", "autoFixable"}
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", f["id"]), f["id"]
        assert f["severity"] in ("critical", "warn", "info")
        assert all(isinstance(f[k], str) and f[k] for k in ("title", "evidence", "fix"))
    assert report["audited"]["configFile"] == str(setup["config"])
    assert report["audited"]["sshd"]
    assert all({"check", "reason"} == set(s) for s in report["skipped"])


def test_text_output_and_exit_1_on_critical(setup: dict[str, Any]) -> None:
    write_config(setup, '{gateway: {bind: "lan"}}')  # seeds pitfall 1
    proc = cli(setup)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CRITICAL gateway.bind.exposed" in proc.stdout
    assert "0.0.0.0" in proc.stdout and '"bind": "loopback"' in proc.stdout
    assert STRONG not in proc.stdout + proc.stderr


def test_missing_explicit_config_is_a_clear_error(setup: dict[str, Any]) -> None:
    setup["config"] = setup["home"] / "nope.json"
    proc = cli(setup)
    assert proc.returncode == 78
    assert "nope.json" in proc.stderr and "Traceback" not in proc.stderr


# --- configuration pitfalls ---------------------------------------------------------------------------


def test_bind_lan_is_critical_and_tailnet_style_no_auth_too(setup: dict[str, Any]) -> None:
    write_config(setup, '{gateway: {bind: "lan"}}')
    found = by_id(audit(setup))
    assert found["gateway.bind.exposed"]["severity"] == "critical"
    assert "0.0.0.0" in found["gateway.bind.exposed"]["evidence"]
    assert "gateway.bind.no_auth" not in found
    setup["env"].pop("OPENCLAW_GATEWAY_TOKEN")
    found = by_id(audit(setup))
    assert found["gateway.bind.no_auth"]["severity"] == "critical"
    assert "config.refused" in found  # the gateway itself refuses this one


def test_funnel_without_password_is_critical(setup: dict[str, Any]) -> None:
    write_config(setup, '{gateway: {auth: {mode: "token"}, tailscale: {mode: "funnel"}}}')  # seeds pitfall 2
    found = by_id(audit(setup))
    assert found["gateway.tailscale.funnel_without_password"]["severity"] == "critical"
    assert "funnel requires" in found["config.refused"]["evidence"]


def test_funnel_with_password_from_env_is_only_a_warning(setup: dict[str, Any]) -> None:
    # the seeds' corrected config
    write_config(
        setup,
        '{gateway: {auth: {mode: "password", password: "${CLAWDBOT_GATEWAY_PASSWORD}"}, tailscale: {mode: "funnel"}}}',
    )
    setup["env"]["CLAWDBOT_GATEWAY_PASSWORD"] = "Xk3#pQ9!mZ2@vL7$wR4%tY8^nB6&hJ1*"
    report = audit(setup)
    found = by_id(report)
    assert report["summary"]["critical"] == 0, found
    assert found["gateway.tailscale.funnel_public"]["severity"] == "warn"
    assert "config.secrets.password_in_config" not in found
    assert "gateway.auth.password_weak" not in found


def test_password_written_in_config_is_flagged_and_never_shown(setup: dict[str, Any]) -> None:
    write_config(
        setup,
        '{gateway: {auth: {mode: "password", password: "your-secure-password"}, tailscale: {mode: "funnel"}}}',
    )
    report = audit(setup)
    found = by_id(report)
    assert found["config.secrets.password_in_config"]["severity"] == "warn"
    weak = found["gateway.auth.password_weak"]
    assert weak["severity"] == "critical"  # Funnel: reachable from the internet
    assert "**** (20 chars)" in weak["evidence"] and "documentation example" in weak["evidence"]
    assert "your-secure-password" not in json.dumps(report)


def test_auth_none_and_weak_tokens(setup: dict[str, Any]) -> None:
    write_config(setup, '{gateway: {auth: {mode: "none"}}}')
    assert by_id(audit(setup))["gateway.auth.none"]["severity"] == "warn"  # loopback only
    write_config(setup, "{gateway: {}}")
    setup["env"]["OPENCLAW_GATEWAY_TOKEN"] = "abcabcabcabcabcabcabcabcabcabc"
    weak = by_id(audit(setup))["gateway.auth.token_weak"]
    assert weak["severity"] == "warn" and "entropy" in weak["evidence"]
    setup["env"]["OPENCLAW_GATEWAY_TOKEN"] = "short-Tok3n"
    write_config(setup, '{gateway: {bind: "lan"}}')
    weak = by_id(audit(setup))["gateway.auth.token_weak"]
    assert weak["severity"] == "critical" and "11 chars (minimum 24)" in weak["evidence"]


def test_token_in_config_and_allow_tailscale_with_funnel(setup: dict[str, Any]) -> None:
    write_config(
        setup,
        '{gateway: {auth: {mode: "password", password: "'
        + STRONG
        + '", allowTailscale: true, token: "'
        + STRONG[::-1]
        + '"}, tailscale: {mode: "funnel"}}}',
    )
    found = by_id(audit(setup))
    assert found["gateway.tailscale.funnel_allow_tailscale"]["severity"] == "critical"
    assert "config.secrets.token_in_config" in found and "config.secrets.password_in_config" in found


def test_control_ui_origins_and_rate_limit(setup: dict[str, Any]) -> None:
    write_config(
        setup,
        '{gateway: {bind: "lan", controlUi: {allowedOrigins: ["*", "http://192.168.1.5:18789", '
        '"http://127.0.0.1:18789"], allowInsecureAuth: true}, auth: {rateLimit: {enabled: false}}}}',
    )
    found = by_id(audit(setup))
    assert found["gateway.control_ui.allowed_origins_wildcard"]["severity"] == "critical"
    http = found["gateway.control_ui.allowed_origins_http"]
    assert "192.168.1.5" in http["evidence"] and "127.0.0.1" not in http["evidence"]
    assert found["gateway.control_ui.insecure_auth"]["severity"] == "warn"
    assert found["gateway.auth.rate_limit_off"]["severity"] == "warn"
    write_config(setup, '{gateway: {bind: "lan", controlUi: {allowedOrigins: []}}}')
    assert "gateway.control_ui.allowed_origins_required" in by_id(audit(setup))
    write_config(setup, '{gateway: {controlUi: {allowedOrigins: ["*"]}}}')
    assert by_id(audit(setup))["gateway.control_ui.allowed_origins_wildcard"]["severity"] == "warn"


# --- files --------------------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p)] = (digest, stat.S_IMODE(st.st_mode))
    return out


def test_permissions_found_and_fix_changes_modes_only(setup: dict[str, Any], tmp_path: Path) -> None:
    cfg = write_config(setup, '{gateway: {auth: {token: "' + STRONG + '"}}}', mode=0o644)
    state: Path = setup["state"]
    state.chmod(0o755)
    token = state / "gateway.token"
    token.write_text(STRONG + "\n")
    token.chmod(0o644)
    nodes = state / "nodes.json"
    nodes.write_text("{}")
    nodes.chmod(0o664)
    (state / "run").mkdir()
    runtime = state / "run" / "gateway-1.json"
    runtime.write_text('{"pid": 1, "port": 1}')
    runtime.chmod(0o644)
    found = by_id(audit(setup))
    assert found["fs.config.secret_readable"]["severity"] == "critical"
    assert found["fs.token_file.perms"]["severity"] == "critical"
    assert found["fs.state_dir.perms"]["severity"] == "warn"
    assert found["fs.state_file.perms"]["severity"] == "warn"
    assert str(runtime) not in json.dumps(found)  # runtime files are meant to be readable
    assert all(found[i]["autoFixable"] for i in ("fs.config.secret_readable", "fs.token_file.perms"))

    before = _snapshot(tmp_path)
    proc = cli(setup, "--fix", "--json")
    report = json.loads(proc.stdout)
    after = _snapshot(tmp_path)
    expected = {str(cfg): 0o600, str(token): 0o600, str(state): 0o700, str(nodes): 0o600}
    assert {f["path"]: int(f["to"], 8) for f in report["fixes"]} == expected
    assert all(f["applied"] for f in report["fixes"])
    assert set(before) == set(after)
    for path, (digest, mode) in before.items():
        assert after[path][0] == digest, f"{path} content changed"
        assert after[path][1] == expected.get(path, mode), path
    left = by_id(report)
    assert not any(i.startswith("fs.") for i in left), left
    assert "config.secrets.token_in_config" in left  # not a mechanical fix: reported, not touched
    assert proc.returncode == 0


def test_writable_config_and_foreign_owner(setup: dict[str, Any]) -> None:
    cfg = write_config(setup, '{gateway: {bind: "loopback"}}', mode=0o666)
    found = by_id(audit(setup))
    assert found["fs.config.writable"]["severity"] == "critical"
    assert "chmod 644" in found["fs.config.writable"]["fix"]  # no secret inside: stays readable
    require(os.geteuid() == 0, "changing a file's owner needs root")
    cfg.chmod(0o644)
    os.chown(cfg, 65534, 65534)
    found = by_id(audit(setup))
    assert found["fs.config.owner"]["severity"] == "warn"


# --- services --------------------------------------------------------------------------------------------


def _unit(env_file: str) -> str:
    spec = ServiceSpec(
        program=(sys.executable, "-m", "clawd_gateway"),
        args=("run",),
        env_file=PurePosixPath(env_file),
        scope="system",
        user="root",
    )
    return render_systemd_unit(spec)


def test_systemd_unit_with_inline_secret(setup: dict[str, Any], tmp_path: Path) -> None:
    write_config(setup, "{gateway: {}}")
    root = tmp_path / "root"
    setup["env"]["CLAWD_SERVICE_ROOT"] = str(root)
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    env_file = root / "etc" / "clawd-gateway" / "env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"OPENCLAW_GATEWAY_TOKEN={STRONG}\n")
    env_file.chmod(0o600)
    clean = units / "clawd-gateway.service"
    clean.write_text(_unit("/etc/clawd-gateway/env"))
    report = audit(setup)
    assert not [f for f in report["findings"] if f["id"].startswith("service.")]
    assert str(clean) in report["audited"]["serviceFiles"]
    assert str(env_file) in report["audited"]["envFiles"]

    # the seeds' hand-written unit, and an inline token added to a generated one
    (units / "clawdbot.service").write_text(
        "[Service]\nExecStart=/usr/bin/clawdbot gateway start\n"
        'Environment="CLAWDBOT_GATEWAY_PASSWORD=your-secure-password"\n'
    )
    text = _unit("/etc/clawd-gateway/env").replace(
        "Environment=PYTHONUNBUFFERED=1", f"Environment=PYTHONUNBUFFERED=1 OPENCLAW_GATEWAY_TOKEN={STRONG}"
    )
    clean.write_text(text)
    env_file.chmod(0o644)
    report = audit(setup)
    inline = [f for f in report["findings"] if f["id"] == "service.systemd.inline_secret"]
    assert len(inline) == 2 and all(f["severity"] == "critical" for f in inline)
    evidence = " ".join(f["evidence"] for f in inline)
    assert "CLAWDBOT_GATEWAY_PASSWORD=**** (20 chars)" in evidence
    assert f"OPENCLAW_GATEWAY_TOKEN=**** ({len(STRONG)} chars)" in evidence
    assert by_id(report)["fs.env_file.perms"]["severity"] == "critical"
    dumped = json.dumps(report)
    assert STRONG not in dumped and "your-secure-password" not in dumped


# --- what is really listening ---------------------------------------------------------------------------


def test_observed_gateway_on_all_interfaces(setup: dict[str, Any], tmp_path: Path) -> None:
    with gateway_process(tmp_path / "gw", args=["--bind", "lan"], token=STRONG) as gw:
        # The config on disk says loopback; the process was started with --bind lan.
        write_config(setup, '{gateway: {bind: "loopback", port: ' + str(gw.port) + "}}")
        setup["env"].pop("OPENCLAW_GATEWAY_PORT")
        found = by_id(audit(setup))
        exposed = found["gateway.listen.exposed"]
        assert exposed["severity"] == "critical"
        assert f"0.0.0.0:{gw.port}" in exposed["evidence"] and f"pid {gw.proc.pid}" in exposed["evidence"]
        assert "says loopback" in exposed["evidence"]


def test_observed_loopback_gateway_with_secret_on_its_command_line(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    with gateway_process(tmp_path / "gw", args=["--token", STRONG], token=None) as gw:
        write_config(setup, "{gateway: {port: " + str(gw.port) + "}}")
        setup["env"].pop("OPENCLAW_GATEWAY_PORT")
        report = audit(setup, deep=True)
        found = by_id(report)
        assert not [i for i in found if i.startswith("gateway.listen.")]
        argv = found["gateway.process.secret_in_argv"]
        assert argv["severity"] == "critical" and f"--token **** ({len(STRONG)} chars)" in argv["evidence"]
        assert STRONG not in json.dumps(report)
        probe = report["audited"]["probe"]
        assert probe["unauthenticated"].startswith("refused"), probe
        assert probe["readyz"].startswith("200")


def test_deep_probe_notices_a_gateway_without_auth(setup: dict[str, Any], tmp_path: Path) -> None:
    with gateway_process(tmp_path / "gw", args=["--auth", "none"], token=None) as gw:
        # the file says token; the process runs none
        write_config(setup, "{gateway: {port: " + str(gw.port) + "}}")
        setup["env"].pop("OPENCLAW_GATEWAY_PORT")
        found = by_id(audit(setup, deep=True))
        assert found["gateway.probe.unauthenticated_accepted"]["severity"] == "warn"  # loopback only


# --- sshd ------------------------------------------------------------------------------------------------

BAD_SSHD = """\
# a VPS as rented
PermitRootLogin yes
PasswordAuthentication yes
AllowTcpForwarding no
"""


def test_sshd_password_root_login_and_no_forwarding_via_sshd_T(setup: dict[str, Any]) -> None:
    require(sshd_binary() is not None and os.geteuid() == 0, "`sshd -T` needs openssh-server and root")
    write_config(setup, "{gateway: {}}")
    setup["sshd"].write_text(BAD_SSHD)
    report = audit(setup)
    found = by_id(report)
    assert report["audited"]["sshd"].startswith("`sshd -T")
    assert found["sshd.root_password_login"]["severity"] == "critical"
    assert found["sshd.password_auth"]["severity"] == "warn"
    assert "AllowTcpForwarding no" in found["sshd.tcp_forwarding_disabled"]["evidence"]


def test_sshd_config_parser_follows_include_first_value_and_match(tmp_path: Path) -> None:
    drop = tmp_path / "sshd_config.d"
    drop.mkdir()
    (drop / "10-hardening.conf").write_text("PasswordAuthentication no\nKbdInteractiveAuthentication no\n")
    main = tmp_path / "sshd_config"
    main.write_text(
        f"Include {drop}/*.conf\nPasswordAuthentication yes\nUsePAM yes\nAllowTcpForwarding local\n"
        "Match User tunnel\n    AllowTcpForwarding no\nMatch Address 10.0.0.0/8\n    PasswordAuthentication yes\n"
    )
    parsed, why = gather_sshd(main, binary=None)
    assert why is None and parsed is not None and parsed.source.startswith("parsed")
    assert parsed.settings["passwordauthentication"] == "no"  # the drop-in came first
    assert parsed.settings["allowtcpforwarding"] == "local"
    assert [m.criteria for m in parsed.matches] == ["User tunnel", "Address 10.0.0.0/8"]
    found = {f.id: f for f in run_checks(Facts(config=ConfigFacts(None, "test"), sshd=parsed))}
    assert "sshd.password_auth" not in found and "sshd.tcp_forwarding_disabled" not in found
    assert "Match Address 10.0.0.0/8" in found["sshd.password_auth_match"].evidence
    assert found["sshd.tcp_forwarding_match"].severity == "info"
    binary = sshd_binary()
    if binary and os.geteuid() == 0:  # the real sshd agrees with the parser on the global values
        real, _ = gather_sshd(main, binary=binary)
        assert real is not None and real.source.startswith("`sshd -T")
        for key in ("passwordauthentication", "allowtcpforwarding", "permitrootlogin", "usepam"):
            assert real.settings[key] == parsed.settings[key], key


# --- --deep: Tailscale ------------------------------------------------------------------------------------


def test_deep_sees_a_funnel_route_the_config_does_not_know(setup: dict[str, Any], tmp_path: Path) -> None:
    write_config(setup, '{gateway: {port: 18789, auth: {mode: "token"}}}')
    setup["env"]["OPENCLAW_GATEWAY_PORT"] = "18789"  # what the funnel route points at
    with FakeTailscale.create(tmp_path / "ts") as fake:
        setup["env"].update(fake.env)
        assert fake.run("funnel", "--bg", "--yes", "18789").returncode == 0
        assert fake.run("serve", "--bg", "--yes", "--https=8443", "9000").returncode == 0
        report = audit(setup, deep=True)
        found = by_id(report)
        funnel = found["tailscale.funnel.exposes_gateway"]
        assert funnel["severity"] == "critical"  # token auth on the public internet
        assert (
            "gw.tail1234.ts.net:443/" in funnel["evidence"] and "outside clawd-gateway" in funnel["evidence"]
        )
        assert "tailscale.funnel.other" not in found  # the 9000 route is tailnet-only
        assert ["serve", "status", "--json"] in fake.calls()
        assert ["funnel", "status", "--json"] in fake.calls()
        assert not any(c[:1] in (["serve"], ["funnel"]) and "status" not in c for c in fake.calls()[2:])

        fake.run("funnel", "reset")
        fake.run("serve", "--bg", "--yes", "18789")
        found = by_id(audit(setup, deep=True))
        assert found["tailscale.serve.exposes_gateway"]["severity"] == "warn"  # config says off
        assert "tailscale.funnel.exposes_gateway" not in found

        fake.set_daemon_running(False)
        failed = by_id(audit(setup, deep=True))["tailscale.status_failed"]
        assert "tailscaled" in failed["evidence"]


def test_deep_fix_commands_remove_only_the_gateway_route(setup: dict[str, Any], tmp_path: Path) -> None:
    """Run each suggested command as printed: the gateway's route goes, the user's own routes stay."""
    write_config(setup, '{gateway: {port: 18789, auth: {mode: "token"}}}')
    setup["env"]["OPENCLAW_GATEWAY_PORT"] = "18789"
    with FakeTailscale.create(tmp_path / "ts") as fake:
        setup["env"].update(fake.env)
        for kind, finding in (
            ("funnel", "tailscale.funnel.exposes_gateway"),
            ("serve", "tailscale.serve.exposes_gateway"),
        ):
            assert fake.run("serve", "--bg", "--yes", "--set-path=/mine", "9000").returncode == 0
            assert fake.run("serve", "--bg", "--yes", "--https=8443", "9001").returncode == 0
            assert fake.run(kind, "--bg", "--yes", "18789").returncode == 0  # last: Funnel is per port
            fix = by_id(audit(setup, deep=True))[finding]["fix"]
            command = re.findall(r"`([^`]+)`", fix)[0].split()
            assert command[0] == str(fake.binary) and "reset" not in command, fix
            assert fake.run(*command[1:]).returncode == 0, fix
            web = fake.serve_config()["Web"]
            assert set(web["gw.tail1234.ts.net:443"]["Handlers"]) == {"/mine"}, (fix, web)
            assert set(web["gw.tail1234.ts.net:8443"]["Handlers"]) == {"/"}
            assert finding not in by_id(audit(setup, deep=True))
            fake.run("serve", "reset")


# --- pure pieces ----------------------------------------------------------------------------------------------


def test_strength_estimate() -> None:
    assert estimate_bits(STRONG) > 150
    assert estimate_bits("a" * 40) < 10
    assert weakness(len(STRONG), estimate_bits(STRONG), False) is None
    assert "documentation" in (weakness(8, 30.0, True) or "")


def test_unit_parser_sees_flags_and_continuations() -> None:
    unit = parse_systemd_unit(
        "/x.service",
        "[Service]\nExecStart=/usr/bin/clawd-gateway run \\\n  --token=abcdefgh --config /etc/c.json\n"
        "EnvironmentFile=-/etc/clawd-gateway/env\nUser=gw\n",
    )
    assert [(s.var, s.length) for s in unit.inline_secrets] == [("--token", 8)]
    assert unit.env_files == ("/etc/clawd-gateway/env",) and unit.run_as == "gw"
    assert unit.config_arg == "/etc/c.json"


def test_serve_config_routes_include_foreground_and_tcp() -> None:
    routes = routes_from_serve_config(
        {
            "TCP": {"10000": {"TCPForward": "127.0.0.1:18789"}},
            "AllowFunnel": {"gw.ts.net:10000": True},
            "Foreground": {
                "s1": {"Web": {"gw.ts.net:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:1"}}}}}
            },
        }
    )
    assert {(r.listen, r.target_port, r.funnel) for r in routes} == {
        ("tcp:10000", 18789, True),
        ("gw.ts.net:443", 1, False),
    }
    assert routes_from_serve_config(None) == []


def test_tailnet_bind_is_a_warning_and_lan_listener_observed_is_critical() -> None:
    from clawd_gateway.audit.facts import Listener

    tailnet = ConfigFacts("/c.json", "test", bind_mode="tailnet", bind_hosts=("100.101.102.103",))
    found = {f.id: f for f in run_checks(Facts(config=tailnet))}
    assert found["gateway.bind.tailnet"].severity == "warn" and "gateway.bind.exposed" not in found
    li = Listener("100.101.102.103", 18789, 42, "python3", "python3 -m clawd_gateway run", True)
    found = {f.id: f for f in run_checks(Facts(config=tailnet, listeners=(li,)))}
    assert found["gateway.listen.tailnet"].severity == "warn"


def test_launchd_plist_with_secret_in_environment_variables(setup: dict[str, Any]) -> None:
    import plistlib

    write_config(setup, "{gateway: {}}")
    agents = setup["home"] / "Library" / "LaunchAgents"
    agents.mkdir(parents=True)
    (agents / "ai.openclaw.gateway.plist").write_bytes(
        plistlib.dumps(
            {
                "Label": "ai.openclaw.gateway",
                "ProgramArguments": ["/usr/local/bin/openclaw", "gateway", "--port", "18789"],
                "EnvironmentVariables": {"OPENCLAW_GATEWAY_TOKEN": STRONG},
            }
        )
    )
    found = by_id(audit(setup))
    assert found["service.launchd.inline_secret"]["severity"] == "critical"
    assert (
        f"OPENCLAW_GATEWAY_TOKEN=**** ({len(STRONG)} chars)"
        in found["service.launchd.inline_secret"]["evidence"]
    )


def test_config_named_by_env_must_exist_and_deep_without_tailscale_says_so(setup: dict[str, Any]) -> None:
    write_config(setup, "{gateway: {}}")
    setup["env"]["PATH"] = os.path.dirname(sys.executable)  # no tailscale there
    report = audit(setup, deep=True)
    assert any(s["check"] == "tailscale" for s in report["skipped"])
    setup["env"]["OPENCLAW_CONFIG_PATH"] = str(setup["home"] / "missing.json")
    from clawd_gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=r"missing\.json"):
        run_audit(config=None, env=setup["env"])


def test_sshd_password_rules() -> None:
    from clawd_gateway.audit.sshd import DEFAULTS, forwarding_blocked, password_login

    def s(**kw: str) -> dict[str, str]:
        return {**DEFAULTS, **kw}

    assert password_login(s()) == "PasswordAuthentication yes"  # OpenSSH's own default
    pam = s(passwordauthentication="no", usepam="yes")
    assert "UsePAM" in (password_login(pam) or "")  # keyboard-interactive via PAM asks for the password
    assert password_login(s(authenticationmethods="publickey publickey,password")) is None
    assert password_login(s(passwordauthentication="no", kbdinteractiveauthentication="no")) is None
    assert forwarding_blocked(s(allowtcpforwarding="remote"), 18789) == "AllowTcpForwarding remote"
    assert forwarding_blocked(s(disableforwarding="yes"), 18789) == "DisableForwarding yes"
    assert forwarding_blocked(s(permitopen="127.0.0.1:18789"), 18789) is None
    assert "PermitOpen" in (forwarding_blocked(s(permitopen="none"), 18789) or "")
