"""A test server on its own event loop, in a thread."""

from __future__ import annotations

import asyncio
import ssl
import threading


class ThreadedServer:
    """An ``asyncio`` server on ``hosts`` (port chosen by the system), run by its own
    event loop in a daemon thread while the ``with`` block runs; over TLS when
    ``tls`` is a server context."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _start(self, hosts: str | list[str], timeout: float) -> list[tuple[str, int]]:
        """Start listening (`_listen`); the (host, port) of every socket."""
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(hosts), self._loop).result(timeout)
        return [sock.getsockname()[:2] for sock in self._server.sockets]

    async def _listen(self, hosts: str | list[str]) -> asyncio.Server:
        """A server of ``_handle`` on ``hosts``."""
        return await asyncio.start_server(self._handle, hosts, 0, ssl=self._tls)

    def __exit__(self, *exc_info: object) -> None:
        # on the server's own loop: asyncio is not thread-safe, and connections that
        # close meanwhile touch the same server
        asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shut_down(self) -> None:
        """Stop listening, and end the connections still open (keep-alive ones wait
        for a next request that will not come)."""
        self._server.close()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        # the transports they closed close their sockets in the next turns, and so do
        # those whose TLS handshake failed (they never had a handler)
        await asyncio.sleep(0.02)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
