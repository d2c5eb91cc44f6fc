"""aiohttp imported with its CA certificates loaded in a thread (`crawler.fetch.certificates`).

aiohttp is imported once per process, so each case runs in a fresh interpreter,
with ``SSL_CERT_FILE`` naming the system's CA bundle plus a throwaway certificate
(the bundle, so that loading takes about as long as it does for users)."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Serves one HTTPS answer on 127.0.0.1 from a thread, fetches it through the
# crawler's fetcher right after aiohttp's import, and reports what it saw.
FETCH_OVER_TLS = """
import asyncio, json, ssl, sys, threading

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

from crawler.fetch.certificates import deferred_certificates

other = []
with deferred_certificates():
    import aiohttp.connector
    # another thread's context, made while the import defers this thread's loads
    thread = threading.Thread(target=lambda: other.append(ssl.create_default_context()))
    thread.start()
    thread.join()
deferred = aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]

from crawler import Request, Settings
from crawler.fetch.client import Fetcher

async def fetch():
    fetcher = Fetcher(Settings(allow_private=True))
    try:
        return (await fetcher.fetch(Request(url))).body.decode()
    finally:
        await fetcher.close()

print(json.dumps({
    "at_import": deferred,
    "other_thread": other[0].cert_store_stats()["x509_ca"],
    "body": asyncio.run(fetch()),
    "after": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "restored": "set_default_verify_paths" not in vars(ssl.SSLContext),
}))
"""


@pytest.fixture(scope="module")
def trusted_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A self-signed certificate for 127.0.0.1, its key, and a CA bundle holding it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("ca")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    bundle = directory / "bundle.pem"
    system = Path(ssl.get_default_verify_paths().cafile or "/nonexistent")
    bundle.write_bytes((system.read_bytes() if system.is_file() else b"") + cert.read_bytes())
    return cert, key, bundle


def test_https_right_after_the_import_waits_for_the_certificates_and_verifies(trusted_certificate):
    cert, key, bundle = trusted_certificate
    env = {**os.environ, "SSL_CERT_FILE": str(bundle), "SSL_CERT_DIR": str(bundle.parent)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FETCH_OVER_TLS), str(cert), str(key)],
        check=False, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["at_import"] == 0  # deferred: aiohttp's context trusted nothing yet
    assert seen["other_thread"] >= 1  # another thread's contexts load as always
    assert seen["body"] == "ok"  # the fetch waited for the certificates, and verified with them
    assert seen["after"] == seen["other_thread"] and seen["restored"]
