"""The SSRF guard: connect only to public addresses, unless the user named the host.

A page can link to ``http://169.254.169.254/`` or to a name whose DNS points at
``10.0.0.5``; a crawler that follows it reads the cloud metadata service or the
intranet on its user's behalf. ``AddressGuard`` refuses such connections with
``BlockedAddress``, except for hosts the user named (the hosts of the start URLs and
the ``allowed_domains`` entries) and when ``allow_private`` is on.

Where the check happens:

- host names: ``GuardedResolver`` resolves, checks every address, and hands the
  transport exactly the addresses it checked, so there is no second lookup for a
  rebinding DNS server to answer differently. It has aiohttp's resolver interface,
  so aiohttp's pool (behind a proxy) uses it too.
- IP literals: no resolver is asked about them (the connection goes to the
  literal), so the transport calls ``AddressGuard.check_url`` before each request.

``BlockedAddress`` is not an ``OSError``, so aiohttp does not wrap it: raised in the
resolver it propagates out unchanged. ``unwrap_blocked`` finds it in an exception
chain either way.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Protocol

from .._errors import BlockedAddress
from .._urls import _allowed_domain, hostname

IPAddress = IPv4Address | IPv6Address

_NON_PUBLIC_V4 = tuple(
    IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 unspecified
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # CGNAT shared address space
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1 documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2 documentation
        "203.0.113.0/24",  # TEST-NET-3 documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255 broadcast
    )
)
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_SIX_TO_FOUR = IPv6Network("2002::/16")
_NAT64 = IPv6Network("64:ff9b::/96")
_NON_PUBLIC_V6 = tuple(
    IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments (Teredo, inside it, is checked first)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is an ordinary Internet address a crawler may connect to.

    IPv4: everything but the ranges in ``_NON_PUBLIC_V4`` (private, loopback,
    link-local, CGNAT, "this network", documentation, benchmarking, multicast,
    reserved, broadcast). IPv6: only global unicast (``2000::/3``) outside
    documentation and IETF ranges; IPv4-mapped (``::ffff:0:0/96``), NAT64
    (``64:ff9b::/96``), 6to4 (``2002::/16``) and Teredo (``2001::/32``) addresses
    are judged by the IPv4 addresses they embed (both, for Teredo). Everything else
    is refused: unspecified, loopback, unique-local ``fc00::/7``, link-local,
    site-local, multicast, discard-only, IPv4-compatible ``::a.b.c.d`` (deprecated).
    A zone id (``fe80::1%eth0``) is ignored: the address is judged without it.
    Decided from this module's own tables, not ``ipaddress``'s ``is_private`` and
    ``is_global``, whose answers change between Python versions.
    """
    if isinstance(ip, IPv4Address):
        return not any(ip in net for net in _NON_PUBLIC_V4)
    if ip.scope_id is not None:  # a zone names an interface, not another address
        ip = IPv6Address(int(ip))
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return all(map(is_public_address, embedded))
    return ip in _GLOBAL_UNICAST_V6 and not any(ip in net for net in _NON_PUBLIC_V6)


def _embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...] | None:
    """The IPv4 addresses an IPv4-mapped, NAT64, 6to4 or Teredo address stands for."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip in _NAT64:
        return (IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    return ip.teredo  # (server, client) inside 2001::/32


class AddressGuard:
    """Refuses connections to addresses that are not public (``is_public_address``)
    unless the host was named or ``allow_private`` is on.

    ``allowed_hosts`` are the hosts the user named: the hosts of the start URLs and
    the ``allowed_domains`` entries, in any spelling ``in_scope`` accepts (case,
    port, brackets, trailing dot, IDN, odd IPv4 spellings). A named domain exempts
    itself only, not its subdomains: naming ``example.com`` lets ``example.com``
    resolve to ``10.0.0.1`` but not ``intranet.example.com``, since a page on the
    site choosing a subdomain is exactly what the guard is for. Naming is per host,
    not per address: naming ``127.0.0.1`` does not let ``evil.test`` resolve to it.
    """

    def __init__(self, allowed_hosts: Collection[str], *, allow_private: bool = False) -> None:
        self._named = frozenset(filter(None, map(_allowed_domain, allowed_hosts)))
        self._allow_private = allow_private

    def is_exempt(self, host: str) -> bool:
        """Whether ``host`` may connect anywhere: named, or ``allow_private`` is on."""
        return self._allow_private or _allowed_domain(host) in self._named

    def check(self, host: str, addresses: Sequence[IPAddress]) -> None:
        """Raise ``BlockedAddress`` if ``host`` is not exempt and any of the
        ``addresses`` it resolved to is not public."""
        if self.is_exempt(host):
            return
        for address in addresses:
            if not is_public_address(address):
                raise BlockedAddress(_refusal(host, address))

    def check_url(self, url: str) -> None:
        """``check`` for a URL whose host is an IP literal, which the transport connects
        to without a lookup; a host name passes (``GuardedResolver`` checks
        it). The host is judged in its canonical spelling whatever spelling the URL
        uses (``0x7f.1``, ``[::ffff:127.0.0.1]``, ``127.0.0.1.``, ``%31...``), and a
        host that has none, such as an IPv6 literal with a zone id
        (``[fe80::1%25eth0]``), is refused outright, named or not: the guard fails
        closed. Raises ``InvalidURL`` for a URL without a host."""
        host, address = literal_address(url)
        if address is not None:
            self.check(host, [address])


def literal_address(url: str) -> tuple[str, IPAddress | None]:
    """``url``'s host in its canonical spelling, and the address it is a literal of
    (``None`` for a host name, which is never a number: ``web1`` is a name,
    ``127.1`` an address). Raises ``BlockedAddress`` for a host without a canonical
    spelling."""
    raw = hostname(url)
    host = _allowed_domain(raw)
    if not host:
        raise BlockedAddress(f"refused {raw!r}: a host the address guard cannot read (a zone id?)")
    try:
        return host, ip_address(host)
    except ValueError:
        return host, None


def _refusal(host: str, address: IPAddress) -> str:
    """The one-line message of a ``BlockedAddress``."""
    target = host if host == str(address) else f"{host} ({address})"
    return f"refused {target}: not a public address, the host was not named, allow_private is off"


ResolveResult = dict[str, Any]  # aiohttp's: hostname, host, port, family, proto, flags


class Resolver(Protocol):
    """aiohttp's resolver interface (``aiohttp.abc.AbstractResolver``)."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = ...) -> list[Any]: ...

    async def close(self) -> None: ...


class SystemResolver:
    """The system's ``getaddrinfo``, on the event loop's threads: what aiohttp's
    ``ThreadedResolver`` does, without loading aiohttp."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, family=family, flags=socket.AI_ADDRCONFIG
        )
        results = [
            {
                "hostname": host,
                "host": address[0],
                "port": address[1],
                "family": found,
                "proto": proto,
                "flags": 0,
            }
            for found, _, proto, _, address in infos
            if found in (socket.AF_INET, socket.AF_INET6)
        ]
        if not results:
            raise OSError(None, f"{host} has no address")
        return results

    async def close(self) -> None:
        pass


class GuardedResolver:
    """A resolver that lets ``guard`` check every address it returns, with aiohttp's
    resolver interface.

    ``base`` does the lookups (default `SystemResolver`). A ``TCPConnector`` given a
    resolver does not close it: call ``close`` after closing the session."""

    def __init__(self, guard: AddressGuard, base: Resolver | None = None) -> None:
        self._guard = guard
        self._base: Resolver = base if base is not None else SystemResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The base resolver's results for ``host``, copied, after ``guard.check``
        passed them; raises ``BlockedAddress`` otherwise."""
        results = [result.copy() for result in await self._base.resolve(host, port, family)]
        if not self._guard.is_exempt(host):
            self._guard.check(host, [_parse(host, result["host"]) for result in results])
        return results

    async def close(self) -> None:
        await self._base.close()


def _parse(host: str, address: str) -> IPAddress:
    """A resolved address (``fe80::1%eth0`` keeps its zone); one that does not parse
    is refused rather than connected to unchecked."""
    try:
        return ip_address(address)
    except ValueError:
        raise BlockedAddress(f"refused {host}: resolved to unreadable address {address!r}") from None


def unwrap_blocked(exc: BaseException) -> BlockedAddress | None:
    """The ``BlockedAddress`` that ``exc`` is or was caused by, if any: it is looked
    for in ``__cause__``, ``__context__``, a ``ClientConnectorError``'s ``os_error``
    and the members of exception groups."""
    pending, seen = [exc], set[int]()
    while pending:
        current = pending.pop()
        if isinstance(current, BlockedAddress):
            return current
        seen.add(id(current))
        linked = [current.__cause__, current.__context__]
        if isinstance(os_error := getattr(current, "os_error", None), BaseException):  # aiohttp's
            linked.append(os_error)
        if isinstance(current, BaseExceptionGroup):
            linked.extend(current.exceptions)
        pending.extend(e for e in linked if e is not None and id(e) not in seen)
    return None
