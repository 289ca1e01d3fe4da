"""The egress proxy's reading of an authority and of the addresses it resolves to: what an
agent names is attacker's text, so each accepted form is pinned down, and each form a
resolver would read as an address (or that names this machine) is refused."""

from __future__ import annotations

import pytest

from extproc.codecs.destination import Destination, parse_authority, range_of

LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63, LABEL_63, LABEL_63, "b" * 61])  # 4 labels, 253 characters


# -- accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize(("authority", "default", "expected"), [
    ("pypi.org", 80, Destination("pypi.org", 80, False)),
    ("pypi.org:8080", 80, Destination("pypi.org", 8080, False)),
    ("pypi.org:443", None, Destination("pypi.org", 443, False)),
    ("pypi.org.:443", None, Destination("pypi.org", 443, False)),  # trailing dot
    ("PyPI.ORG:443", None, Destination("pypi.org", 443, False)),  # upper case
    ("files.pythonhosted.org.", 80, Destination("files.pythonhosted.org", 80, False)),
    ("shop_api.internal.test:1", None, Destination("shop_api.internal.test", 1, False)),
    ("123.example:65535", None, Destination("123.example", 65535, False)),
    ("10.1.2.3", 80, Destination("10.1.2.3", 80, True)),
    ("10.1.2.3:8443", None, Destination("10.1.2.3", 8443, True)),
    ("[2001:db8::1]", 80, Destination("2001:db8::1", 80, True)),
    ("[2001:DB8:0:0::1]:443", None, Destination("2001:db8::1", 443, True)),  # compressed
    ("[::1]:8443", None, Destination("::1", 8443, True)),
    ("[::ffff:127.0.0.1]:80", None, Destination("::ffff:7f00:1", 80, True)),
])
def test_an_accepted_authority_is_normalised(authority: str, default: int | None,
                                             expected: Destination) -> None:
    assert parse_authority(authority, default) == expected


def test_names_of_the_longest_lengths_are_accepted() -> None:
    assert parse_authority(f"{LABEL_63}.test:443", None).host == f"{LABEL_63}.test"
    assert len(NAME_253) == 253
    assert parse_authority(f"{NAME_253}:443", None).host == NAME_253
    assert parse_authority(f"{NAME_253}.:443", None).host == NAME_253  # the dot is not counted


@pytest.mark.parametrize(("destination", "authority"), [
    (Destination("pypi.org", 443, False), "pypi.org:443"),
    (Destination("10.1.2.3", 80, True), "10.1.2.3:80"),
    (Destination("2001:db8::1", 443, True), "[2001:db8::1]:443"),
])
def test_the_authority_brackets_ipv6_only(destination: Destination, authority: str) -> None:
    assert destination.authority == authority
    assert parse_authority(authority, None) == destination  # and reads back the same


# -- refused -------------------------------------------------------------------------------


def refusal(authority: str, default: int | None = 80) -> str:
    """Why the authority is refused (the test fails if it is accepted)."""
    with pytest.raises(ValueError) as error:
        parse_authority(authority, default)
    return str(error.value)


def test_a_connect_needs_a_port() -> None:
    assert "CONNECT needs host:port" in refusal("pypi.org", None)
    assert "CONNECT needs host:port" in refusal("[2001:db8::1]", None)
    assert "CONNECT needs host:port" in refusal("10.1.2.3", None)


@pytest.mark.parametrize("port", ["0", "65536", "99999", "08x", "", "+80", "-1",
                                  "123456", "\u0668\u0660"])  # the last: Arabic-Indic 80
def test_a_port_out_of_range_or_not_decimal_is_refused(port: str) -> None:
    assert "not a port" in refusal(f"pypi.org:{port}")
    assert "not a port" in refusal(f"[2001:db8::1]:{port}")


@pytest.mark.parametrize("authority", ["::1", "2001:db8::1", "::1:443", "2001:db8::1:443"])
def test_ipv6_without_brackets_is_refused(authority: str) -> None:
    assert "must be in brackets" in refusal(authority)


@pytest.mark.parametrize("authority", ["[fe80::1%eth0]:80", "[fe80::1%25eth0]:80",
                                       "[fe80::1%1]:80"])
def test_an_ipv6_zone_is_refused(authority: str) -> None:
    assert "zone" in refusal(authority, None)


@pytest.mark.parametrize("authority", ["[::1", "[::1]x", "[::1]x:80", "[2001:db8::g]:80",
                                       "[]:80"])
def test_a_malformed_bracketed_host_is_refused(authority: str) -> None:
    refusal(authority, None)


# Each reaches 127.0.0.1 (or 0.0.0.127) through getaddrinfo: none is a name.
@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1", "127.0.1",
                                  "0x7f.1", "127.0.0.01", "017700000001", "256.0.0.1",
                                  "1.2.3.4.5"])
def test_an_address_in_another_form_than_a_dotted_quad_is_refused(host: str) -> None:
    assert "dotted-quad" in refusal(f"{host}:80", None)


# glibc's inet_aton reads a last label of 0x... as a number too: getaddrinfo("0x7f000001")
# and getaddrinfo("127.0.0.0x1") give 127.0.0.1. The WHATWG URL standard's "ends in a
# number" check counts a 0x-label as numeric for this reason.
@pytest.mark.parametrize("host", ["0x7f000001", "127.0.0.0x1", "0x7f"])
def test_a_hexadecimal_last_label_is_refused(host: str) -> None:
    refusal(f"{host}:80", None)


@pytest.mark.parametrize("authority", [
    "", " ", ":80", ".", "..", "a..b", ".pypi.org", "a b.test", "pypi.org :80", "\tpypi.org\n:80",
    f"{'a' * 64}.test", f"{NAME_253}a", f"{NAME_253}.a", "-pypi.org", "pypi-.org", "pypi.-org",
    "b\u00fccher.de", "\u00df.de", "\uff45xample.com", "user@pypi.org", "pypi.org/simple",
    "pypi.org\x00", "pypi*.org",
])
def test_a_host_that_is_no_name_is_refused(authority: str) -> None:
    assert "not a host name" in refusal(authority)


def test_a_non_ascii_letter_that_lower_cases_to_ascii_is_refused() -> None:
    assert "not a host name" in refusal("\u212aube.internal:443", None)


@pytest.mark.parametrize("authority", ["[pypi.org]:443", "[10.1.2.3]:443"])
def test_brackets_hold_only_an_ipv6_address(authority: str) -> None:
    refusal(authority, None)


# -- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "expected"), [
    # public
    ("8.8.8.8", "public"), ("1.1.1.1", "public"), ("2606:4700::1111", "public"),
    ("::ffff:8.8.8.8", "public"), ("64:ff9b::808:808", "public"), ("2002:808:808::1", "public"),
    # private
    ("10.0.0.1", "private"), ("10.255.255.255", "private"), ("172.16.0.1", "private"),
    ("172.31.255.255", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("fd12:3456::1", "private"), ("::ffff:10.1.2.3", "private"),
    ("64:ff9b::a01:203", "private"), ("2002:c0a8:101::", "private"),
    # just outside private
    ("172.15.255.255", "public"), ("172.32.0.1", "public"), ("11.0.0.1", "public"),
    # loopback, and its IPv4-mapped, NAT64 and 6to4 forms
    ("127.0.0.1", "loopback"), ("127.255.255.254", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"),
    # link-local
    ("169.254.1.1", "link_local"), ("fe80::1", "link_local"), ("::ffff:169.254.1.1", "link_local"),
    # metadata, and its IPv4-mapped, NAT64 and 6to4 forms
    ("169.254.169.254", "metadata"), ("169.254.170.2", "metadata"), ("100.100.100.200", "metadata"),
    ("fd00:ec2::254", "metadata"), ("::ffff:169.254.169.254", "metadata"),
    ("64:ff9b::a9fe:a9fe", "metadata"), ("2002:a9fe:a9fe::", "metadata"),
    ("2002:a9fe:a9fe:1234::1", "metadata"),
    # shared (carrier-grade NAT), 100.64/10; 100.100.100.200 above is Alibaba's metadata
    ("100.64.0.1", "shared"), ("100.127.255.255", "shared"), ("::ffff:100.64.0.1", "shared"),
    ("100.63.255.255", "public"), ("100.128.0.0", "public"),
    # multicast
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("::ffff:224.0.0.1", "multicast"),
    # reserved: not globally routable, none of the above
    ("0.1.2.3", "reserved"), ("192.0.0.1", "reserved"), ("192.0.2.1", "reserved"),
    ("198.51.100.1", "reserved"), ("203.0.113.1", "reserved"), ("198.18.0.1", "reserved"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("2001:db8::1", "reserved"),
    ("100::1", "reserved"), ("::ffff:192.0.2.1", "reserved"),
    # unspecified
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::ffff:0.0.0.0", "unspecified"),
])
def test_each_address_lies_in_its_range(address: str, expected: str) -> None:
    assert range_of(address) == expected


# IANA's special-purpose registry: 64:ff9b:1::/48 (local-use NAT64, RFC 8215: a local
# translator may carry 169.254.169.254 in it), ::/96 (IPv4-compatible, deprecated),
# ::ffff:0:0:0/96 (IPv4-translated), fec0::/10 (site-local, deprecated) and the rest of ::/8
# and 5f00::/8 are not globally reachable; Python 3.11's is_global says they are.
@pytest.mark.parametrize("address", ["64:ff9b:1::a9fe:a9fe", "64:ff9b:1:a9fe:a9:fe00::",
                                     "::a9fe:a9fe", "::7f00:1", "::ffff:0:a9fe:a9fe",
                                     "fec0::1", "::2", "5f00::1"])
def test_ipv6_ranges_that_are_not_globally_reachable_are_not_public(address: str) -> None:
    assert range_of(address) != "public"


@pytest.mark.parametrize("address", ["192.0.0.8", "192.0.0.100", "192.0.0.255",
                                     "::ffff:192.0.0.8"])
def test_all_of_192_0_0_0_24_is_reserved(address: str) -> None:
    assert range_of(address) == "reserved"


def test_a_range_is_given_for_addresses_only() -> None:
    with pytest.raises(ValueError):
        range_of("pypi.org")
