"""Where an agent's outbound request goes: the authority it names, read strictly, and the
range each address it resolves to lies in.

A proxy's authority is attacker's text. Resolvers take more than host names — `2130706433`,
`0x7f.1`, `127.1` all reach 127.0.0.1 through getaddrinfo — so a host is a dotted-quad,
a bracketed IPv6 literal, or a DNS name whose last label is not numeric; anything else is
refused before it is looked up. Whatever a name resolves to is then classified here, so
the policy decides on the addresses too (a public name resolving to 169.254.169.254 is
refused as the address would be).

This module imports nothing of tollgate's: the config reads destinations with it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# One DNS label: letters, digits, hyphens (and underscores, which some internal names
# carry), 1-63 characters, no hyphen at either end.
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_PORT = re.compile(r"[0-9]{1,5}")
# A last label a resolver may read as a number (WHATWG URL's "ends in a number"): decimal,
# or hexadecimal with 0x.
_NUMERIC = re.compile(r"[0-9]+|0x[0-9a-f]*")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata and link-local services: AWS (IPv4, IPv6, ECS task metadata,
# its DNS and time), Azure and GCP share 169.254.169.254; Alibaba's.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.253", "169.254.169.123",
    "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23",
))
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Globally routable IPv6 unicast is in 2000::/3; within it, what Python 3.11 still calls
# global though it is not (local-use NAT64, which can carry any IPv4 address). In IPv4,
# 192.0.0.0/24 (protocol assignments) is not, whatever `is_global` says of parts of it.
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NOT_GLOBAL = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("192.0.0.0/24"))


@dataclass(frozen=True, slots=True)
class Destination:
    host: str  # lower-case, no trailing dot; an IPv6 literal without brackets
    port: int
    literal: bool  # the host is an IP address

    @property
    def authority(self) -> str:
        """host:port, an IPv6 literal in brackets: how the policy and the record name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_authority(authority: str, default_port: int | None) -> Destination:
    """`host[:port]` as a CONNECT or an absolute-form request names it (ValueError saying
    what is wrong). `default_port`: the scheme's (None: a port is required, as CONNECT's)."""
    text = authority.strip()
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")) or ":" not in host:
            raise ValueError(f"not a host[:port] (brackets hold an IPv6 address only): "
                             f"{authority!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_found = text.rpartition(":")
        if not colon:
            host, port_text_found = text, ""
        if ":" in host:
            raise ValueError(f"an IPv6 address must be in brackets: {authority!r}")
        port_text = port_text_found if colon else None
    if port_text is None:
        if default_port is None:
            raise ValueError(f"no port in {authority!r} (CONNECT needs host:port)")
        port = default_port
    elif not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a port: {port_text!r} in {authority!r}")
    else:
        port = int(port_text)
    name, literal = _host(host, authority)
    return Destination(name, port, literal)


def parse_host(host: str) -> tuple[str, bool]:
    """A host alone (an IPv6 address with or without brackets), read as in an authority:
    normalised, and whether it is an IP literal (ValueError saying what is wrong)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" not in bare and host != bare:
        raise ValueError(f"brackets hold an IPv6 address only: {host!r}")
    return _host(bare, host)


def _host(host: str, authority: str) -> tuple[str, bool]:
    """The host, normalised, and whether it is an IP literal."""
    if ":" in host:  # from brackets
        if "%" in host:
            raise ValueError(f"an IPv6 zone (%...) names an interface of this machine: "
                             f"{authority!r}")
        try:
            return str(ipaddress.IPv6Address(host)), True
        except ValueError:
            raise ValueError(f"not an IPv6 address: {host!r}") from None
    # ASCII first: lower-casing maps some other letters onto ASCII ones (the Kelvin sign
    # onto k), and clients send internationalised names as punycode anyway.
    if not host.isascii():
        raise ValueError(f"not a host name (not ASCII; send IDNA): {host!r}")
    name = host.lower().removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(x) for x in labels):
        raise ValueError(f"not a host name: {host!r} in {authority!r}")
    if _NUMERIC.fullmatch(labels[-1]):
        # Only a dotted quad: a resolver reads 127.1, 2130706433, 0x7f000001 or
        # 0177.0.0.1 as addresses too, which no name check would see.
        try:
            return str(ipaddress.IPv4Address(name)), True
        except ValueError:
            raise ValueError(f"not a host name nor a dotted-quad address: {host!r}") \
                from None
    return name, False


def range_of(address: str) -> str:
    """The range an address lies in, as input.egress names it: public, private,
    loopback, link_local, metadata, shared, multicast, reserved or unspecified."""
    found: Address = ipaddress.ip_address(address)
    if isinstance(found, ipaddress.IPv6Address):
        # What an IPv6 form carries an IPv4 address to is that address's range.
        embedded = found.ipv4_mapped or found.sixtofour or (
            ipaddress.IPv4Address(int(found) & 0xFFFFFFFF) if found in _NAT64 else None)
        if embedded is not None:
            found = embedded
    if found.is_unspecified:
        return "unspecified"
    if found in METADATA:
        return "metadata"
    if found.is_loopback:
        return "loopback"
    if found.is_link_local:
        return "link_local"
    if found.is_multicast:
        return "multicast"
    if isinstance(found, ipaddress.IPv4Address) and found in _SHARED:
        return "shared"
    if any(found in network for network in _PRIVATE if network.version == found.version):
        return "private"
    if not found.is_global or found.is_reserved or any(
            found in network for network in _NOT_GLOBAL if network.version == found.version):
        return "reserved"
    if isinstance(found, ipaddress.IPv6Address) and found not in _GLOBAL_UNICAST:
        return "reserved"
    return "public"
