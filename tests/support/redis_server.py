"""A redis-server of a test's own, to stop and start again under a crawl."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class RedisServer:
    """A redis-server of this test's own on ``port``, keeping its data in ``dir``
    (append-only file), so it can be stopped and started again; without
    ``persist`` a restart loses everything."""

    def __init__(self, port: int, directory: Path, *, persist: bool = True) -> None:
        self.port, self.dir, self.persist = port, directory, persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes" if self.persist else "no", "--appendfsync", "always"]
        args += ["--dir", str(self.dir)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break  # exited: the port was taken meanwhile
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5.0)
            self.process = None


def started_redis(port: int, directory: Path, *, persist: bool = True) -> Iterator[RedisServer]:
    """A started `RedisServer` (the test is skipped if it cannot start), stopped after."""
    server = RedisServer(port, directory, persist=persist)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"cannot start redis-server: {exc}")
    yield server
    server.stop()
