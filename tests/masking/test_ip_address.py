"""ip_address: IPv4 dotted quads with octets 0-255, and IPv6 that `ipaddress` accepts.

A dotted quad right after a version word ("version 1.2.3.4", "v1.2.3.4") or a product
name ("Chrome/120.0.0.1") is a version; any other is an address, 1.2.3.4 included. A
spec leaves the detector out to keep addresses in clear.
"""

from __future__ import annotations

import pytest

from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("from 10.0.0.1 today", ["10.0.0.1"]),
        ("host 192.168.1.100:8080", ["192.168.1.100"]),
        ("http://10.1.2.3/x", ["10.1.2.3"]),
        ("ip=255.255.255.255.", ["255.255.255.255"]),
        ("1.2.3.4", ["1.2.3.4"]),
        ("link fe80::1 up", ["fe80::1"]),
        ("2001:db8:85a3::8a2e:370:7334", ["2001:db8:85a3::8a2e:370:7334"]),
        ("[2001:db8:85a3:0:0:8a2e:370:7334]:443", ["2001:db8:85a3:0:0:8a2e:370:7334"]),
        ("::ffff:192.0.2.1", ["::ffff:192.0.2.1"]),
        # negatives
        ("v1.2.3.4", []),
        ("version 1.2.3.4", []),
        ("release: 10.0.0.1", []),
        ("server 10.0.0.1", ["10.0.0.1"]),  # "ver" inside a word is no version
        ("Chrome/120.0.0.1", []),
        ("1.2.3", []),
        ("1.2.3.4.5", []),
        ("256.1.1.1", []),
        ("10.0.19045.2965", []),
        ("01.02.2026", []),
        ("05:10:00", []),
        ("std::vector", []),
        ("a::b", []),
        ("00:1A:2B:3C:4D:5E", []),  # a MAC address
        ("2026-11-23T05:10:00Z", []),
    ],
)
def test_ip_address(text: str, expected: list[str]) -> None:
    assert found("ip_address", text) == expected
