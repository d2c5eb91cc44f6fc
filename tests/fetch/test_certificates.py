"""aiohttp imported with its CA certificates loaded in a thread (`crawler.fetch.certificates`),
as the proxy transport (`crawler.fetch.proxied`) imports it.

aiohttp is imported once per process, so each case runs in a fresh interpreter,
with ``SSL_CERT_FILE`` naming the system's CA bundle plus a throwaway certificate."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ..support.tls import self_signed_certificate

# Serves one HTTPS answer on 127.0.0.1 from a thread, fetches it through aiohttp
# right after its import (the certificates made to take half a second to load), as
# the proxy transport does, and reports what it saw. argv[3] == "nowait": the fetch
# does not wait for them (the control: the handshake must then fail).
FETCH_OVER_TLS = """
import asyncio, json, ssl, sys, threading, time

server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_context.load_cert_chain(sys.argv[1], sys.argv[2])
loop = asyncio.new_event_loop()

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")

server = loop.run_until_complete(loop.create_server(Answer, "127.0.0.1", 0, ssl=server_context))
threading.Thread(target=loop.run_forever, daemon=True).start()
url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

from crawler.fetch import certificates

load = certificates._load
certificates._load = lambda contexts: (time.sleep(0.5), load(contexts))
other = []
with certificates.deferred_certificates():
    import aiohttp.connector
    # another thread's context, made while the import defers this thread's loads
    thread = threading.Thread(target=lambda: other.append(ssl.create_default_context()))
    thread.start()
    thread.join()
deferred = aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]

async def fetch():
    if sys.argv[3] == "wait":
        await certificates.certificates_loaded()
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return (await response.read()).decode()
    except aiohttp.ClientSSLError as exc:
        return type(exc).__name__

body = asyncio.run(fetch())
certificates.wait_for_certificates()
print(json.dumps({
    "at_import": deferred,
    "other_thread": other[0].cert_store_stats()["x509_ca"],
    "body": body,
    "after": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "restored": "set_default_verify_paths" not in vars(ssl.SSLContext),
}))
"""

# The import fails half-way: the contexts made already still get their certificates.
FAILED_IMPORT = """
import json, ssl
from crawler.fetch import certificates
try:
    with certificates.deferred_certificates():
        import aiohttp.connector
        raise KeyboardInterrupt
except KeyboardInterrupt:
    pass
certificates.wait_for_certificates()
print(json.dumps(aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]))
"""


@pytest.fixture(scope="module")
def trusted_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A self-signed certificate for 127.0.0.1, its key, and a CA bundle holding it."""
    directory = tmp_path_factory.mktemp("ca")
    cert, key = self_signed_certificate(directory)
    bundle = directory / "bundle.pem"
    system = Path(ssl.get_default_verify_paths().cafile or "/nonexistent")
    bundle.write_bytes((system.read_bytes() if system.is_file() else b"") + cert.read_bytes())
    return cert, key, bundle


def run_script(script: str, bundle: Path, *args: str) -> str:
    env = {**os.environ, "SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(bundle.parent)}
    command = [sys.executable, "-c", textwrap.dedent(script), *args]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_https_right_after_the_import_waits_for_the_certificates_and_verifies(trusted_certificate):
    cert, key, bundle = trusted_certificate
    seen = json.loads(run_script(FETCH_OVER_TLS, bundle, str(cert), str(key), "wait"))
    assert seen["at_import"] == 0  # deferred: aiohttp's context trusted nothing yet
    assert seen["other_thread"] >= 1  # another thread's contexts load as always
    assert seen["body"] == "ok"  # the fetch waited for the certificates, and verified with them
    assert seen["after"] == seen["other_thread"] and seen["restored"]


def test_without_the_wait_the_handshake_fails_closed(trusted_certificate):
    """The control of the test above: an HTTPS request made before the certificates
    are in is refused (never sent unverified)."""
    cert, key, bundle = trusted_certificate
    seen = json.loads(run_script(FETCH_OVER_TLS, bundle, str(cert), str(key), "nowait"))
    assert seen["body"] == "ClientConnectorCertificateError"
    assert seen["after"] == seen["other_thread"]


def test_an_import_that_fails_half_way_still_gets_its_certificates(trusted_certificate):
    _, _, bundle = trusted_certificate
    assert json.loads(run_script(FAILED_IMPORT, bundle)) >= 1
