"""Sleep and network-change detection from two samples (pure), and the live sampler."""

from __future__ import annotations

from clawd_client.engine.wake import Sample, detect, take_sample


def test_clock_jump_means_sleep():
    a = Sample(mono=100.0, wall=1000.0, addresses=frozenset({"eth0/10.0.0.2"}))
    slept = Sample(mono=102.0, wall=1302.0, addresses=a.addresses)
    assert "woke from sleep" in (detect(a, slept) or "")
    steady = Sample(mono=102.0, wall=1002.2, addresses=a.addresses)
    assert detect(a, steady) is None


def test_address_change_means_network_change():
    a = Sample(100.0, 1000.0, frozenset({"wlan0/192.0.2.5"}))
    b = Sample(102.0, 1002.0, frozenset({"wlan0/198.51.100.7"}))
    reason = detect(a, b) or ""
    assert "network changed" in reason and "+wlan0/198.51.100.7" in reason and "-wlan0/192.0.2.5" in reason


def test_live_sample_is_consistent():
    s1 = take_sample()
    s2 = take_sample()
    assert detect(s1, s2) is None
    assert not any(a.split("/", 1)[1].startswith("127.") for a in s1.addresses)
