"""Helpers for forwarding tests: a PostgreSQL database of one's own, incidents with work
orders, a real HTTP receiver in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


from gridworker.incidents import IncidentStore
from gridworker.cases.workorders import WorkOrders

T0 = 1_700_000_000.0


def open_incident(orders: WorkOrders, *, type: str = "illegal_parking", site: str = "market", camera: str = "cam-1", at: float = T0, summary: str = "a car parked"):
    inc = IncidentStore(orders.db).open(
        camera_id=camera, camera_name="东门 Gate", site=site, zone_id="kerb", rule_id="r1", type=type,
        at=at, count=1, summary=summary, details={}, snapshot=None,
    )
    order = orders.on_incident_opened(inc)
    assert order is not None
    return order


class Receiver:
    """A real HTTP server (thread) that records every POST; ``respond`` decides the status
    (default 200), and may give headers and a body too."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        # a status, (status, headers) or (status, headers, body)
        self.respond: Callable[[dict[str, Any]], int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]] = lambda req: 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                req = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                with outer.lock:
                    outer.requests.append(req)
                out = outer.respond(req)
                headers: dict[str, str] = {}
                answer = b"ok"
                if isinstance(out, tuple):
                    code, headers = out[0], out[1]
                    answer = out[2] if len(out) == 3 else answer
                else:
                    code = out
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def documents(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

