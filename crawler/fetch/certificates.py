"""aiohttp, imported without waiting for the system's CA certificates.

aiohttp carries the crawls that go through a ``proxy`` (`crawler.fetch.proxied`),
and loads only for them. Importing ``aiohttp.connector`` builds two SSL contexts,
and each loads the system's certificate store from disk: together most of what
aiohttp's import costs. `deferred_certificates` imports aiohttp with those two
loads taken out of the importing thread; a background thread then loads the
certificates into the same two contexts, while the crawl starts.

Nothing is verified less. Until its certificates are in, aiohttp's verifying
context trusts no certificate at all, so a TLS handshake through it fails; it
never succeeds unverified. The proxy transport waits for the certificates
(`certificates_loaded`) before its first request, and the
engine before the spider's or a pipeline's ``open`` hook, which may speak HTTPS
through aiohttp itself. Other threads are left alone: only the importing thread's
loads are deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import threading
from collections.abc import Iterator

# How often a coroutine looks whether the certificates are in (a thread to wait in
# would outlive the wait, and a process with threads forks its workers slower).
POLL_SECONDS = 0.005

_CONNECTOR = "aiohttp.connector"
_load_verify_paths = ssl.SSLContext.set_default_verify_paths  # the C method, inherited
_loaded = threading.Event()
_loaded.set()  # nothing deferred yet


@contextlib.contextmanager
def deferred_certificates() -> Iterator[None]:
    """Inside this block, a first import of aiohttp leaves its SSL contexts'
    certificates to a background thread (see the module docstring)."""
    if _CONNECTOR in sys.modules or "set_default_verify_paths" in vars(ssl.SSLContext):
        yield  # imported already, or another thread is importing it this way
        return
    importing, deferred = threading.get_ident(), []

    def defer_in_this_thread(context: ssl.SSLContext) -> None:
        if threading.get_ident() == importing:
            deferred.append(context)
        else:
            _load_verify_paths(context)

    _loaded.clear()  # before the import: a waiter in another thread waits from now on
    ssl.SSLContext.set_default_verify_paths = defer_in_this_thread  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del ssl.SSLContext.set_default_verify_paths  # the inherited C method again
        # even when the block raised: contexts made already must get their certificates
        threading.Thread(target=_load, args=(deferred,), name="certificates", daemon=True).start()


def _load(contexts: list[ssl.SSLContext]) -> None:
    try:
        for context in contexts:
            _load_verify_paths(context)
    finally:
        _loaded.set()


def wait_for_certificates() -> None:
    """Return once the certificates deferred at aiohttp's import are loaded."""
    _loaded.wait()


async def certificates_loaded() -> None:
    """`wait_for_certificates`, for a coroutine: the event loop carries on meanwhile."""
    while not _loaded.is_set():
        await asyncio.sleep(POLL_SECONDS)
