"""The SSRF guard: address classification, guard decisions, the guarded resolver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Mapping, Sequence
from ipaddress import ip_address
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from crawler import Response, Spider
from crawler._errors import BlockedAddress, FetchError
from crawler.fetch.addressguard import (
    AddressGuard,
    GuardedResolver,
    IPAddress,
    is_public_address,
    unwrap_blocked,
)
from crawler.sites.server import Page, SiteServer

T = TypeVar("T")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        # IPv4 public
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("93.184.216.34", True),
        ("100.63.255.255", True),
        ("100.128.0.0", True),
        ("172.15.255.255", True),
        ("172.32.0.0", True),
        ("192.167.255.255", True),
        ("198.17.255.255", True),
        ("198.20.0.0", True),
        ("223.255.255.255", True),
        # IPv4 not public
        ("0.0.0.0", False),  # unspecified
        ("0.1.2.3", False),  # "this network"
        ("127.0.0.1", False),  # loopback
        ("127.255.255.254", False),
        ("10.0.0.1", False),  # private
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # link-local: cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("100.127.255.255", False),
        ("192.0.0.8", False),  # IETF protocol assignments
        ("192.0.2.1", False),  # documentation
        ("198.51.100.7", False),
        ("203.0.113.9", False),
        ("198.18.0.1", False),  # benchmarking
        ("198.19.255.255", False),
        ("192.88.99.1", False),  # 6to4 relay anycast
        ("224.0.0.1", False),  # multicast
        ("239.255.255.250", False),
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),  # broadcast
        # IPv6 public
        ("2606:4700:4700::1111", True),
        ("2a00:1450:4001:80b::200e", True),
        ("::ffff:8.8.8.8", True),  # IPv4-mapped, public inside
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # Teredo: 65.54.227.120, 8.8.8.8
        # IPv6 not public
        ("::", False),  # unspecified
        ("::1", False),  # loopback
        ("fc00::1", False),  # unique local
        ("fd12:3456:789a::1", False),
        ("fe80::1", False),  # link-local
        ("fe80::1%eth0", False),
        ("fec0::1", False),  # site-local (deprecated)
        ("ff02::1", False),  # multicast
        ("100::1", False),  # discard-only
        ("2001:db8::1", False),  # documentation
        ("3fff::1", False),
        ("2001:2::1", False),  # benchmarking
        ("2001:20::1", False),  # ORCHIDv2
        ("5f00::1", False),  # SRv6 SIDs
        ("4000::1", False),  # not allocated
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:7f00:1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::ffff:0.0.0.0", False),
        ("::127.0.0.1", False),  # IPv4-compatible (deprecated)
        ("::8.8.8.8", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::808:808", False),  # local-use NAT64
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo client 127.0.0.1
        ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", False),  # Teredo server 127.0.0.1
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ip_address(address)) is public


def ips(*addresses: str) -> list[IPAddress]:
    return [ip_address(address) for address in addresses]


@pytest.mark.parametrize(
    ("named", "allow_private", "host", "addresses", "allowed"),
    [
        ([], False, "example.com", ["93.184.216.34"], True),
        ([], False, "example.com", ["93.184.216.34", "2606:2800:220:1::"], True),
        ([], False, "evil.test", ["127.0.0.1"], False),
        ([], False, "evil.test", ["::1"], False),
        ([], False, "evil.test", ["93.184.216.34", "10.0.0.1"], False),  # any one refuses
        ([], False, "evil.test", ["10.0.0.1", "93.184.216.34"], False),
        ([], True, "evil.test", ["127.0.0.1", "10.0.0.1"], True),  # allow_private
        (["localhost"], False, "localhost", ["127.0.0.1", "::1"], True),  # named
        (["LocalHost."], False, "localhost", ["127.0.0.1"], True),
        (["localhost"], False, "LOCALHOST.", ["127.0.0.1"], True),
        (["intranet.test:8080"], False, "intranet.test", ["10.1.2.3"], True),
        (["example.com"], False, "db.example.com", ["10.0.0.1"], False),  # no subdomains
        (["db.example.com"], False, "example.com", ["10.0.0.1"], False),
        (["bücher.test"], False, "xn--bcher-kva.test", ["10.0.0.1"], True),
        (["127.0.0.1"], False, "evil.test", ["127.0.0.1"], False),  # per host, not per address
        (["127.0.0.1"], False, "127.0.0.1", ["127.0.0.1"], True),
        (["2130706433"], False, "127.0.0.1", ["127.0.0.1"], True),
        (["[::1]"], False, "::1", ["::1"], True),
        (["::1"], False, "::1", ["::1"], True),
        (["not a host", ""], False, "evil.test", ["127.0.0.1"], False),
    ],
)
def test_guard_check(
    named: list[str], allow_private: bool, host: str, addresses: list[str], allowed: bool
) -> None:
    guard = AddressGuard(named, allow_private=allow_private)
    if allowed:
        guard.check(host, ips(*addresses))
    else:
        with pytest.raises(BlockedAddress):
            guard.check(host, ips(*addresses))


def test_blocked_address_message_names_host_and_address() -> None:
    with pytest.raises(BlockedAddress) as caught:
        AddressGuard(["example.com"]).check("evil.test", ips("8.8.8.8", "169.254.169.254"))
    message = str(caught.value)
    assert "evil.test" in message and "169.254.169.254" in message and "\n" not in message
    assert isinstance(caught.value, FetchError) and caught.value.kind == "blocked_address"


@pytest.mark.parametrize(
    ("url", "named", "allow_private", "allowed"),
    [
        ("http://127.0.0.1:8000/", [], False, False),
        ("http://127.0.0.1:8000/", ["127.0.0.1"], False, True),
        ("http://127.0.0.1:8000/", ["127.0.0.1:9999"], False, True),
        ("http://127.0.0.1:8000/", [], True, True),
        ("http://10.0.0.1/", ["10.0.0.2"], False, False),
        ("http://169.254.169.254/latest/meta-data/", [], False, False),
        ("http://0.0.0.0/", [], False, False),
        ("http://[::1]:8000/", [], False, False),
        ("http://[::ffff:7f00:1]/", [], False, False),
        ("http://[::1]:8000/", ["::1"], False, True),
        ("http://8.8.8.8/", [], False, True),
        ("https://[2606:4700:4700::1111]/", [], False, True),
        ("http://localhost/", [], False, True),  # a name: the resolver checks it
        ("http://evil.test/", [], False, True),
        ("http://user@10.0.0.1:81/?q=1.2.3.4", [], False, False),
        # not canonical, yet still spelled the way canonicalize would
        ("http://2130706433/", [], False, False),
        ("http://0x7f.1/", [], False, False),
        ("http://2130706433/", ["127.0.0.1"], False, True),
    ],
)
def test_check_url_checks_ip_literals(url: str, named: list[str], allow_private: bool, allowed: bool) -> None:
    guard = AddressGuard(named, allow_private=allow_private)
    if allowed:
        guard.check_url(url)
    else:
        with pytest.raises(BlockedAddress, match="not a public address"):
            guard.check_url(url)


class FakeResolver(AbstractResolver):
    """Maps names to addresses; records every lookup; unknown names fail like DNS."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [_result(host, address, port) for address in self.table[host]]

    async def close(self) -> None:
        self.closed = True


def _result(host: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host, host=address, port=port, family=family, proto=0, flags=socket.AI_NUMERICHOST
    )


def run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro())


TABLE: dict[str, list[str]] = {
    "public.test": ["93.184.216.34", "2606:2800:220:1::"],
    "loopback.test": ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.1"],
    "zone.test": ["fe80::1%1"],
    "garbage.test": ["not-an-address"],
    "named-garbage.test": ["not-an-address"],
}


def test_guarded_resolver_returns_the_checked_results() -> None:
    base = FakeResolver(TABLE)

    async def main() -> list[ResolveResult]:
        return await GuardedResolver(AddressGuard([]), base).resolve("public.test", 443)

    results = run(main)
    assert [r["host"] for r in results] == ["93.184.216.34", "2606:2800:220:1::"]
    assert all(r["port"] == 443 and r["hostname"] == "public.test" for r in results)
    assert base.lookups == ["public.test"]


@pytest.mark.parametrize("host", ["loopback.test", "mixed.test", "zone.test", "garbage.test"])
def test_guarded_resolver_refuses_non_public_results(host: str) -> None:
    resolver = GuardedResolver(AddressGuard(["public.test"]), FakeResolver(TABLE))
    with pytest.raises(BlockedAddress, match=host):
        run(lambda: resolver.resolve(host, 80))


@pytest.mark.parametrize(
    ("named", "allow_private"),
    [(["loopback.test", "mixed.test", "zone.test", "named-garbage.test"], False), ([], True)],
)
def test_guarded_resolver_passes_named_hosts_and_allow_private(named: list[str], allow_private: bool) -> None:
    resolver = GuardedResolver(AddressGuard(named, allow_private=allow_private), FakeResolver(TABLE))

    async def main() -> list[str]:
        hosts = ("loopback.test", "mixed.test", "zone.test", "named-garbage.test")
        return [r["host"] for host in hosts for r in await resolver.resolve(host)]

    expected = ["127.0.0.1", "93.184.216.34", "10.0.0.1", "fe80::1%1", "not-an-address"]
    assert run(main) == expected


def test_guarded_resolver_passes_lookup_errors_through_and_closes_its_base() -> None:
    base = FakeResolver(TABLE)
    resolver = GuardedResolver(AddressGuard([]), base)
    with pytest.raises(OSError, match="no such host"):
        run(lambda: resolver.resolve("missing.test"))
    run(resolver.close)
    assert base.closed


def test_guarded_resolver_defaults_to_aiohttps_resolver() -> None:
    async def main() -> None:
        resolver = GuardedResolver(AddressGuard([]))
        with pytest.raises(BlockedAddress, match="localhost"):
            await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
        await resolver.close()

    run(main)


def _raised(
    exc: BaseException, *, cause: BaseException | None = None, context: BaseException | None = None
) -> BaseException:
    exc.__cause__ = cause
    exc.__context__ = context
    return exc


@pytest.mark.parametrize(
    "wrap",
    [
        lambda e: e,
        lambda e: _raised(RuntimeError("outer"), cause=e),
        lambda e: _raised(RuntimeError("outer"), context=e),
        lambda e: _raised(ValueError("outer"), cause=_raised(OSError("middle"), context=e)),
        lambda e: ExceptionGroup("group", [ValueError("x"), e]),
    ],
)
def test_unwrap_blocked_finds_it_in_the_chain(wrap: Callable[[BaseException], BaseException]) -> None:
    blocked = BlockedAddress("refused")
    assert unwrap_blocked(wrap(blocked)) is blocked


def test_unwrap_blocked_returns_none_without_one_and_survives_cycles() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert unwrap_blocked(first) is None


# End to end: a real session and a real server; only loopback targets.


async def _get(session: aiohttp.ClientSession, url: str) -> bytes:
    async with session.get(url) as response:
        return await response.read()


def _session(guard: AddressGuard, base: AbstractResolver, **connector: Any) -> aiohttp.ClientSession:
    resolver = GuardedResolver(guard, base)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver, **connector))


@pytest.mark.parametrize("dns_cache", [True, False])
def test_refused_host_never_reaches_the_server(dns_cache: bool) -> None:
    server = SiteServer({"/": Page(b"hi")}).start()
    base = FakeResolver({"named.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]})
    try:

        async def main() -> None:
            async with _session(AddressGuard(["named.test"]), base, use_dns_cache=dns_cache) as session:
                for _ in range(2):  # the refusal is not cached as a success
                    with pytest.raises(BlockedAddress, match=r"evil\.test \(127\.0\.0\.1\)"):
                        await _get(session, f"http://evil.test:{server.port}/")
                assert server.connections == 0
                assert await _get(session, f"http://named.test:{server.port}/") == b"hi"

        run(main)
        assert server.connections == 1
        assert base.lookups.count("named.test") == 1  # one lookup: the checked one is used
    finally:
        server.stop()


def test_allow_private_lets_any_host_through() -> None:
    server = SiteServer({"/": Page(b"hi")}).start()
    try:

        async def main() -> bytes:
            base = FakeResolver({"evil.test": ["127.0.0.1"]})
            async with _session(AddressGuard([], allow_private=True), base) as session:
                return await _get(session, f"http://evil.test:{server.port}/")

        assert run(main) == b"hi"
    finally:
        server.stop()


def test_ip_literal_hosts_bypass_the_resolver() -> None:
    """Why ``check_url`` exists: aiohttp connects to an IP literal without asking the
    resolver, so the guarded resolver alone would let it through."""
    server = SiteServer({"/": Page(b"hi")}).start()
    base = FakeResolver({})
    guard = AddressGuard([])
    try:

        async def main() -> bytes:
            async with _session(guard, base) as session:
                return await _get(session, server.url + "/")

        with pytest.raises(BlockedAddress):
            guard.check_url(server.url + "/")
        assert run(main) == b"hi"
        assert base.lookups == []
    finally:
        server.stop()


def test_unwrap_blocked_finds_it_behind_aiohttps_dns_error() -> None:
    """``BlockedAddress`` is no ``OSError``, so aiohttp lets it out unchanged (above);
    a resolver that raised an ``OSError`` from it would surface as
    ``ClientConnectorDNSError``, whose ``os_error`` and ``__cause__`` lead to it."""
    blocked = BlockedAddress("refused")

    class WrappingResolver(FakeResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            raise OSError("lookup failed") from blocked

    async def main() -> BaseException:
        connector = aiohttp.TCPConnector(resolver=WrappingResolver({}))
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientConnectorDNSError) as caught:
                await _get(session, "http://evil.test/")
        return caught.value

    assert unwrap_blocked(run(main)) is blocked


def test_unwrap_blocked_finds_nothing_in_an_ordinary_connection_error(unused_port: int) -> None:
    async def main() -> BaseException:
        async with _session(AddressGuard(["127.0.0.1"]), FakeResolver({})) as session:
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await _get(session, f"http://127.0.0.1:{unused_port}/")
        return caught.value

    assert unwrap_blocked(run(main)) is None


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://web1/", []),  # a name: the resolver checks what it resolves to
        ("http://db01:8080/x", ["db01"]),
        ("http://host-2.example/", []),
        ("http://[::ffff:7f00:30b%251]:18711/", ["127.0.0.1"]),
    ],
)
def test_check_url_reads_names_ending_in_a_digit_as_names(url: str, named: list[str]) -> None:
    guard = AddressGuard(named)
    if "%" in url:  # a zone id: no canonical spelling, refused whoever is named
        with pytest.raises(BlockedAddress, match="cannot read"):
            guard.check_url(url)
    else:
        guard.check_url(url)


class NamePage(Spider):
    def parse(self, response: Response) -> Any:
        yield {"url": response.url, "title": response.css_first("title").text()}


@pytest.mark.parametrize("allow_private", [False, True])
def test_host_names_ending_in_a_digit_are_fetched(allow_private, monkeypatch, serve, crawl_items) -> None:
    """``web1`` and ``db01`` are host names, not IPv4 addresses: named (start URLs)
    or with ``allow_private``, they are resolved and fetched."""
    server = serve({"/": Page(b"<title>named</title>")})
    table = {"web1": ["127.0.0.1"], "db01": ["127.0.0.1"]}
    monkeypatch.setattr("crawler.fetch.addressguard.SystemResolver", lambda: FakeResolver(table))
    starts = [f"http://web1:{server.port}/", f"http://db01:{server.port}/"]
    items, stats = crawl_items(NamePage, starts, obey_robots=False, allow_private=allow_private, retries=0)
    assert sorted(item["url"] for item in items) == sorted(starts)
    assert stats.errors == 0 and len(server.hits) == 2
