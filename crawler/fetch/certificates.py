"""aiohttp, imported without waiting for the system's CA certificates.

Importing ``aiohttp.connector`` builds two SSL contexts, and each loads the
system's certificate store from disk: together most of what aiohttp's import
costs, on the start-up of every crawl, most of which never speak HTTPS before
their first pages are in. `deferred_certificates` imports aiohttp with those two
loads taken out of the importing thread; a background thread then loads the
certificates into the same two contexts, while the crawl starts.

Nothing is verified less. Until its certificates are in, aiohttp's verifying
context trusts no certificate at all, so a TLS handshake through it fails; it
never succeeds unverified. The crawler's transport waits for the certificates
(`wait_for_certificates`) before its first HTTPS request or HTTPS proxy. Other
threads are left alone: only the importing thread's loads are deferred.
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import threading
from collections.abc import Iterator

_CONNECTOR = "aiohttp.connector"
_load_verify_paths = ssl.SSLContext.set_default_verify_paths  # the C method, inherited
_loading: threading.Thread | None = None


@contextlib.contextmanager
def deferred_certificates() -> Iterator[None]:
    """Inside this block, a first import of aiohttp leaves its SSL contexts'
    certificates to a background thread (see the module docstring)."""
    global _loading  # one loader per process: aiohttp is imported once
    if _CONNECTOR in sys.modules or "set_default_verify_paths" in vars(ssl.SSLContext):
        yield  # imported already, or another thread is importing it this way
        return
    importing, deferred = threading.get_ident(), []

    def defer_in_this_thread(context: ssl.SSLContext) -> None:
        if threading.get_ident() == importing:
            deferred.append(context)
        else:
            _load_verify_paths(context)

    ssl.SSLContext.set_default_verify_paths = defer_in_this_thread  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        del ssl.SSLContext.set_default_verify_paths  # the inherited C method again
    if deferred:
        _loading = threading.Thread(target=_load, args=(deferred,), name="certificates", daemon=True)
        _loading.start()


def _load(contexts: list[ssl.SSLContext]) -> None:
    for context in contexts:
        _load_verify_paths(context)


def wait_for_certificates() -> None:
    """Return once the certificates deferred at aiohttp's import are loaded."""
    if _loading is not None:
        _loading.join()
