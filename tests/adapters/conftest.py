"""Fixtures for the adapter tests: real servers on 127.0.0.1, never patched clients.

- `tracker`: devenv's scripted HTTP tracker (from tests/conftest.py);
- `moto_url`: a moto S3 server in this process, shared by the session;
- `s3_stub`: a tiny S3 lookalike that answers every request with a scripted error,
  for the S3 failures moto cannot be made to produce;
- `blackhole`: a port that accepts connections and never answers.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from .harness import wait_until

_OURS = ("WEBHOOK_", "MYFXBOOK_", "FILE_EXPORT_", "S3_", "AWS_", "LEDGER_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from no adapter settings, whatever the developer's shell has."""
    for name in [n for n in os.environ if n.upper().startswith(_OURS)]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    wait_until(lambda: _accepts(host, port), timeout=10)
    yield f"http://{host}:{port}"
    server.stop()


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


class S3Stub:
    """Answers every request with `status` and an S3 error document carrying `code`.

    The error message echoes the request's Authorization header, as a careless
    server might, so tests can check that nothing from a reply reaches a detail.
    """

    def __init__(self) -> None:
        self.status, self.code = 500, "InternalError"
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                echo = self.headers.get("authorization", "")
                body = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{stub.code}</Code>"
                    f"<Message>refused {echo}</Message><RequestId>1</RequestId></Error>"
                ).encode()
                self.send_response(stub.status)
                self.send_header("content-type", "application/xml")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_PUT = do_POST = do_GET = _answer

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def s3_stub() -> Iterator[S3Stub]:
    stub = S3Stub()
    yield stub
    stub.stop()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """`http://127.0.0.1:PORT` whose connections are accepted by the kernel, never answered."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
