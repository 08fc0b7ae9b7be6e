"""A stand-in for a Schema Registry on loopback: the one read call a consumer makes,
`GET /schemas/ids/{id}` -> `{"schema": "<schema JSON as a string>"}`, and 404 otherwise.

Kept for the decoder's fast unit tests (tests/unit/codec/test_registry.py) only, for what a
real registry cannot be made to do on demand: answer 503 a scripted number of times,
serve a schema that is not Avro (a real one refuses to register it), and count requests.
Everything else runs against a real registry (devenv/apicurio.py)."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Registry:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.failures: deque[int] = deque()  # statuses to answer before serving again
        self.hits = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.hits += 1
                status, body = registry._answer(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def register(self, schema: dict[str, Any]) -> int:
        schema_id = len(self.schemas) + 1
        self.schemas[schema_id] = json.dumps(schema)
        return schema_id

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if self.failures:
            return self.failures.popleft(), {"error_code": 50001, "message": "unavailable"}
        prefix = "/schemas/ids/"
        if path.startswith(prefix) and path[len(prefix) :].isdigit():
            found = self.schemas.get(int(path[len(prefix) :]))
            if found is not None:
                return 200, {"schema": found}
        return 404, {"error_code": 40403, "message": "Schema not found"}

    def __enter__(self) -> Registry:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
