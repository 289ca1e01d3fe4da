"""ip_address: IPv4 dotted quads with octets 0-255, and IPv6 that `ipaddress` accepts.

A dotted quad right after a version word ("version 1.2.3.4", "v1.2.3.4") or a product
name ("Chrome/120.0.0.1") is a version; any other is an address, 1.2.3.4 included. The
host of a URL (`http://10.1.2.3:8080/`) is a link's structure and stays; an address in
its path or query is masked. A spec leaves the detector out to keep addresses in clear.
"""

from __future__ import annotations

import pytest

from extproc.masking import Masker, MaskSpec
from tests.masking.conftest import found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # positives
        ("from 10.0.0.1 today", ["10.0.0.1"]),
        ("host 192.168.1.100:8080", ["192.168.1.100"]),
        ("GET /hosts/10.1.2.3/x", ["10.1.2.3"]),
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
        # SQL's casts: of a parameter, of a number (a one-group `h::` is only a prefix)
        ("SELECT $1::\"char\"", []),
        ("SELECT 7::\"pg_catalog\".\"int4\"", []),
        ("route 2001::/16", ["2001::"]),
        ("00:1A:2B:3C:4D:5E", []),  # a MAC address
        ("2026-11-23T05:10:00Z", []),
    ],
)
def test_ip_address(text: str, expected: list[str]) -> None:
    assert found("ip_address", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the host of a link stays, with or without a port or a user
        ("http://10.1.2.3/x", []),
        ("see http://127.0.0.1:10000/db/t.json?_next=3 for more", []),
        ('{"next_url": "http://127.0.0.1:10000/db/t.json?_next=3"}', []),
        ("ssh://git@10.1.2.3:22/repo.git", []),
        ("http://[fe80::1]:8080/", []),
        ("postgres://app:pw@192.168.0.9:5432/db", []),
        # an address anywhere else in the link, or outside it, is masked
        ("http://example.com/hosts/10.1.2.3", ["10.1.2.3"]),
        ("http://example.com/?client=10.1.2.3", ["10.1.2.3"]),
        ("http://example.com/#10.1.2.3", ["10.1.2.3"]),
        ("http://example.com/?peer=fe80::1", ["fe80::1"]),
        ("http://example.com 10.1.2.3", ["10.1.2.3"]),
        ('"http://example.com" "10.1.2.3"', ["10.1.2.3"]),
        ("//10.1.2.3/x", ["10.1.2.3"]),  # no scheme: not a link tollgate can tell
        ("://10.1.2.3", ["10.1.2.3"]),
    ],
)
def test_the_host_of_a_link_is_not_an_address(text: str, expected: list[str]) -> None:
    assert found("ip_address", text) == expected


def test_a_link_in_json_keeps_its_host(masker: Masker) -> None:
    """Datasette's `next_url`: a link the agent follows, next to an address that is data."""
    value = {"next_url": "http://127.0.0.1:10000/db/t.json?_next=3", "client": "10.1.2.3",
             "rows": [["http://10.9.8.7/x?peer=10.1.2.3"]]}
    masked, counts = masker.mask_json(value, MaskSpec())
    assert masked == {"next_url": value["next_url"], "client": "[REDACTED:IP_ADDRESS]",
                      "rows": [["http://10.9.8.7/x?peer=[REDACTED:IP_ADDRESS]"]]}
    assert counts == {"ip_address": 2}
