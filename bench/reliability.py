"""``gridworker bench reliability``: forwarding under two faults, against real processes.

1. **Receiver down.** A webhook receiver (a real HTTP server *process*, this module's
   ``receiver`` command) records every delivery durably and de-duplicates by
   ``Idempotency-Key``. It is killed (``SIGKILL``) while the first incidents are being
   delivered, ≥ 500 incidents are produced while it is down, then it is started again.
   Every event must arrive; after de-duplication none twice.

   The incidents are produced in the benchmark process through the same two calls the
   pipeline makes when a detection opens an incident — ``IncidentStore.open`` then
   ``WorkOrders.on_incident_opened`` (the ``on_open`` hook) — and forwarded by the real
   ``Dispatcher``. A detector would only decide *when* those calls happen; what is under
   test starts at them.

2. **kill -9 of the service.** A real service process (this module's ``service`` command:
   gridworker's API app with its work orders and forwarding, plus ``POST /bench/incidents``
   that opens an incident the way the pipeline does and answers 201 only after both
   commits) takes a burst of incidents from concurrent HTTP clients and is killed with
   ``SIGKILL`` in the middle of it, then restarted on the same database (the rest of the
   burst follows). Every incident the API acknowledged must be in the store and be
   delivered; incidents stored but not acknowledged (the kill landed between the commit
   and the answer) must be delivered too.

Printed: ``produced`` (events of scenario 1 + acknowledged incidents of scenario 2),
``delivered`` (of those, arrived at the receiver at least once), ``duplicates`` (arrivals
beyond the first, dropped by the receiver's de-duplication), ``lost`` and
``lost_after_kill`` (acknowledged in scenario 2 but not stored or not delivered), with
each scenario's details.

The module is also the receiver and the service (``python -m gridworker.bench.reliability
receiver|service ...``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

SECRET = "bench-reliability-secret"
Progress = Callable[[str], None]


# -- the receiver process ------------------------------------------------------------------
def run_receiver(port: int, log_path: Path, secret: str) -> None:
    """Record each POST's Idempotency-Key durably (an append before the 200) and count
    duplicates; keys seen by earlier runs (same log) count as seen."""
    from gridworker.delivery.webhook import verify

    seen: set[str] = set()
    received = 0
    bad = 0
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                received += 1
                seen.add(rec["key"])
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, code: int, body: bytes = b"{}") -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            nonlocal received, bad
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not verify(secret, body, self.headers.get("X-Gridworker-Signature")):
                with lock:
                    bad += 1
                self._reply(401)
                return
            key = self.headers.get("Idempotency-Key") or ""
            with lock:
                os.write(fd, (json.dumps({"key": key, "event_id": json.loads(body)["event_id"]}) + "\n").encode())
                received += 1
                seen.add(key)
            self._reply(200)

        def do_GET(self) -> None:  # noqa: N802
            with lock:
                out = {"received": received, "unique": len(seen), "duplicates": received - len(seen), "bad_signatures": bad, "keys": sorted(seen)}
            self._reply(200, json.dumps(out).encode())

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


# -- the service process -------------------------------------------------------------------
class BenchIncidentIn(BaseModel):
    camera_id: str = Field(max_length=64)
    type: str = Field("illegal_parking", max_length=64)
    site: str = Field("bench", max_length=200)


def run_service(database: str, port: int, webhook: str, secret: str) -> None:
    import uvicorn
    from fastapi import APIRouter, status

    from gridworker.api import create_app
    from gridworker.api.deps import CaseParts
    from gridworker.incidents import IncidentStore
    from gridworker.delivery import ForwardingConfig, RetryPolicy, WebhookDestination, build_forwarding
    from gridworker.delivery.outbox import reconcile_workorders
    from gridworker.cases.workorders import WorkOrders
    from gridworker.keystore import KeyStore

    store = IncidentStore(database)
    orders = WorkOrders(store.db)
    cfg = ForwardingConfig(
        destinations=[WebhookDestination(name="receiver", url=webhook, secret=secret, timeout_s=5, connect_timeout_s=2)],
        retry=RetryPolicy(base_s=0.2, cap_s=1.0, max_attempts=50),
        poll_interval_s=0.2,
    )
    disp = build_forwarding(cfg, store.db, orders=orders)
    reconciled = reconcile_workorders(orders)  # before anything else writes: the crash gap

    router = APIRouter()

    @router.post("/bench/incidents", status_code=status.HTTP_201_CREATED)
    def produce(body: BenchIncidentIn) -> dict[str, Any]:
        now = time.time()
        inc = store.open(
            camera_id=body.camera_id, camera_name=body.camera_id, site=body.site, zone_id="zone", rule_id="rule",
            type=body.type, at=now, count=1, summary="bench incident", details={}, snapshot=None,
        )
        orders.on_incident_opened(inc)  # what IncidentManager.on_open does in the pipeline
        return {"incident_id": inc.id}

    keys = KeyStore(store.db, orders.catalogue, auth_enabled=False)
    app = CaseParts.of(store, orders, disp, keys).serve(create_app())  # the case routes, no cameras
    app.include_router(router)
    print(json.dumps({"reconciled": reconciled}), flush=True)
    with disp:  # delivering while the app serves
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the benchmark ---------------------------------------------------------------------------
@dataclass
class ReliabilityConfig:
    incidents: int = 500  # scenario 1: produced while the receiver is down (plus a lead-in)
    burst: int = 300  # scenario 2: incidents posted to the service
    kill_at: float = 0.4  # scenario 2: kill after this share of the burst is acknowledged
    clients: int = 8
    database: str | None = None  # default: SQLite files in the work dir
    workdir: Path | None = None
    drain_timeout_s: float = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


def _python() -> list[str]:
    return [sys.executable, "-m", "gridworker.bench.reliability"]


class _Proc:
    def __init__(self, args: list[str], log_file: Path, port: int) -> None:
        self.args, self.log_file, self.port = args, log_file, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> _Proc:
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(_python() + self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, timeout)
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _db_url(cfg: ReliabilityConfig, work: Path, name: str) -> str:
    if cfg.database is None:
        return f"sqlite:///{work / (name + '.db')}"
    # a database given by the user is emptied of gridworker's tables first
    import sqlalchemy as sa

    from gridworker.incidents.db import schema

    engine = sa.create_engine(cfg.database)
    schema().drop_all(engine)
    with engine.begin() as conn:  # and its schema version: the next open builds it anew
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return cfg.database


def _wait_for(cond: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return cond()


def scenario_receiver_down(cfg: ReliabilityConfig, work: Path, progress: Progress) -> dict[str, Any]:
    from gridworker.incidents import IncidentStore
    from gridworker.delivery import ForwardingConfig, RetryPolicy, WebhookDestination, build_forwarding
    from gridworker.cases.workorders import WorkOrders

    port = _free_port()
    rec_log = work / "receiver-down.jsonl"
    receiver = _Proc(["receiver", "--port", str(port), "--log", str(rec_log), "--secret", SECRET], work / "receiver-down.log", port).start()
    store = IncidentStore(_db_url(cfg, work, "receiver-down"))
    orders = WorkOrders(store.db)
    fcfg = ForwardingConfig(
        destinations=[WebhookDestination(name="receiver", url=f"http://127.0.0.1:{port}/hook", secret=SECRET, timeout_s=5, connect_timeout_s=2)],
        retry=RetryPolicy(base_s=0.2, cap_s=1.0, max_attempts=8),
        poll_interval_s=0.2,
    )
    disp = build_forwarding(fcfg, store.db, orders=orders)
    keys: list[str] = []

    def produce(n: int, offset: int) -> None:
        for i in range(n):
            inc = store.open(
                camera_id=f"cam-{(offset + i) % 16}", camera_name="bench", site="bench", zone_id="z", rule_id="r",
                type="illegal_parking", at=time.time(), count=1, summary="bench", details={}, snapshot=None,
            )
            order = orders.on_incident_opened(inc)
            assert order is not None
            keys.append(f"{inc.id}:{order.version}")

    t0 = time.monotonic()
    try:
        disp.start()
        lead = max(10, cfg.incidents // 10)
        progress(f"receiver down: {lead} incidents with the receiver up, then SIGKILL while they are delivered")
        produce(lead, 0)
        _wait_for(lambda: disp.outbox.counters().get("receiver", {}).get("delivered", 0) >= lead // 3, 30, 0.005)
        receiver.kill9()
        progress(f"receiver down: producing {cfg.incidents} incidents while it is down")
        produce(cfg.incidents, lead)
        time.sleep(3.0)  # several failed probes while down
        c = disp.outbox.counters().get("receiver", {})
        pending_while_down, dead_while_down = c.get("pending", 0), c.get("dead", 0)
        progress(f"receiver down: {pending_while_down} pending, {dead_while_down} dead; restarting the receiver")
        receiver.start()
        drained = disp.drain(cfg.drain_timeout_s)
        stats = _stats(port)
        dead_at_end = disp.outbox.counters().get("receiver", {}).get("dead", 0)
    finally:
        disp.stop()
        receiver.stop()
        store.close()
    produced = len(keys)
    got = set(stats["keys"])
    delivered = sum(1 for k in keys if k in got)
    return {
        "produced": produced,
        "delivered": delivered,
        "duplicates": stats["duplicates"],
        "lost": produced - delivered,
        "received": stats["received"],
        "bad_signatures": stats["bad_signatures"],
        "pending_while_down": pending_while_down,
        "dead": dead_while_down,
        "dead_at_end": dead_at_end,
        "drained": drained,
        "seconds": round(time.monotonic() - t0, 2),
    }


def scenario_kill9(cfg: ReliabilityConfig, work: Path, progress: Progress) -> dict[str, Any]:
    from gridworker.incidents import IncidentStore

    rport, sport = _free_port(), _free_port()
    receiver = _Proc(["receiver", "--port", str(rport), "--log", str(work / "kill9.jsonl"), "--secret", SECRET], work / "kill9-receiver.log", rport).start()
    url = _db_url(cfg, work, "kill9")
    service = _Proc(
        ["service", "--database", url, "--port", str(sport), "--webhook", f"http://127.0.0.1:{rport}/hook", "--secret", SECRET],
        work / "kill9-service.log", sport,
    ).start(60)
    acked: list[int] = []
    failed = 0
    lock = threading.Lock()
    killed = threading.Event()
    kill_after = max(1, int(cfg.burst * cfg.kill_at))

    def post(i: int) -> None:
        nonlocal failed
        data = json.dumps({"camera_id": f"cam-{i % 16}"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{sport}/bench/incidents", data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status == 201:
                    with lock:
                        acked.append(json.loads(r.read())["incident_id"])
                        n = len(acked)
                    if n >= kill_after and not killed.is_set():
                        killed.set()
                        service.kill9()
                    return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            pass  # cut by the kill: not acknowledged (the answer did not arrive whole)
        with lock:
            failed += 1

    t0 = time.monotonic()
    try:
        progress(f"kill -9: posting {cfg.burst} incidents with {cfg.clients} clients; SIGKILL after {kill_after} acknowledgements")
        half = cfg.burst // 2 + kill_after // 2
        first = max(half, kill_after + cfg.clients * 4)
        with ThreadPoolExecutor(cfg.clients) as pool:
            list(pool.map(post, range(min(first, cfg.burst))))
        acked_before = len(acked)
        progress(f"kill -9: {acked_before} acknowledged, {failed} refused by the dead service; restarting it")
        service.start(60)
        with ThreadPoolExecutor(cfg.clients) as pool:
            list(pool.map(post, range(min(first, cfg.burst), cfg.burst)))
        want = {f"{i}:1" for i in acked}
        ok = _wait_for(lambda: want <= set(_stats(rport)["keys"]), cfg.drain_timeout_s, 0.5)
        # every stored incident, acknowledged or not, should be delivered too
        store = IncidentStore(url)
        try:
            from gridworker.incidents import IncidentQuery

            stored_ids: set[int] = set()
            offset = 0
            while True:
                items, total = store.list(IncidentQuery(limit=500, offset=offset))
                stored_ids.update(i.id for i in items)
                offset += len(items)
                if not items or offset >= total:
                    break
        finally:
            store.close()
        all_keys = {f"{i}:1" for i in stored_ids}
        _wait_for(lambda: all_keys <= set(_stats(rport)["keys"]), 30, 0.5)
        stats = _stats(rport)
        reconciled = 0
        for line in (work / "kill9-service.log").read_text(errors="replace").splitlines():
            if line.startswith('{"reconciled"'):
                reconciled += json.loads(line)["reconciled"]
    finally:
        service.stop()
        receiver.stop()
    got = set(stats["keys"])
    acked_set = set(acked)
    not_stored = acked_set - stored_ids
    not_delivered = {i for i in acked_set if f"{i}:1" not in got}
    unacked_stored = stored_ids - acked_set
    return {
        "posted": cfg.burst,
        "acknowledged": len(acked_set),
        "acknowledged_before_kill": acked_before,
        "refused_or_cut": failed,
        "stored": len(stored_ids),
        "stored_unacknowledged": len(unacked_stored),
        "delivered": len(acked_set) - len(not_delivered),
        "delivered_unacknowledged": sum(1 for i in unacked_stored if f"{i}:1" in got),
        "duplicates": stats["duplicates"],
        "lost_after_kill": len(not_stored | not_delivered),
        "not_stored": len(not_stored),
        "work_orders_reconciled": reconciled,
        "drained": ok,
        "seconds": round(time.monotonic() - t0, 2),
    }


def run_reliability(cfg: ReliabilityConfig, progress: Progress = lambda m: None) -> dict[str, Any]:
    if cfg.incidents < 1 or cfg.burst < 2:
        raise ValueError("--incidents must be >= 1 and --burst >= 2")
    own = cfg.workdir is None
    work = Path(tempfile.mkdtemp(prefix="gw-reliability-")) if own else cfg.workdir
    assert work is not None
    work.mkdir(parents=True, exist_ok=True)
    s1 = scenario_receiver_down(cfg, work, progress)
    s2 = scenario_kill9(cfg, work, progress)
    return {
        "produced": s1["produced"] + s2["acknowledged"],
        "delivered": s1["delivered"] + s2["delivered"],
        "duplicates": s1["duplicates"] + s2["duplicates"],
        "lost": s1["lost"] + s2["lost_after_kill"],
        "lost_after_kill": s2["lost_after_kill"],
        "database": "sqlite" if cfg.database is None else cfg.database.split(":", 1)[0],
        "scenarios": {"receiver_down": s1, "kill9": s2},
        "workdir": str(work),
    }


def format_summary(r: dict[str, Any]) -> str:
    s1, s2 = r["scenarios"]["receiver_down"], r["scenarios"]["kill9"]
    return "\n".join([
        f"reliability ({r['database']}): produced {r['produced']}, delivered {r['delivered']}, duplicates {r['duplicates']} "
        f"(dropped by the receiver's de-duplication), lost {r['lost']}, lost after kill -9 {r['lost_after_kill']}",
        f"  receiver down: {s1['produced']} events ({s1['pending_while_down']} pending while down, {s1['dead']} dead), "
        f"{s1['delivered']} delivered, {s1['duplicates']} duplicates, {s1['lost']} lost, {s1['seconds']} s",
        f"  kill -9: {s2['acknowledged']} of {s2['posted']} acknowledged ({s2['acknowledged_before_kill']} before the kill), "
        f"{s2['stored']} stored ({s2['stored_unacknowledged']} unacknowledged, {s2['delivered_unacknowledged']} of them delivered), "
        f"{s2['delivered']} acknowledged delivered, {s2['duplicates']} duplicates, {s2['work_orders_reconciled']} work orders "
        f"reconciled at restart, {s2['lost_after_kill']} lost, {s2['seconds']} s",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gridworker.bench.reliability")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("receiver")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--log", type=Path, required=True)
    r.add_argument("--secret", default=SECRET)
    s = sub.add_parser("service")
    s.add_argument("--database", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--webhook", required=True)
    s.add_argument("--secret", default=SECRET)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "receiver":
        run_receiver(args.port, args.log, args.secret)
    else:
        run_service(args.database, args.port, args.webhook, args.secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
