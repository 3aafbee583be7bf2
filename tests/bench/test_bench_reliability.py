"""``gridworker bench reliability`` with a small N, end to end through the command line:
a real receiver process killed and restarted, a real service process killed with SIGKILL
mid-burst and restarted. Nothing may be lost; the figures must add up."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_reliability_small(tmp_path):
    out = tmp_path / "rel.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gridworker.cli", "bench", "reliability", "--incidents", "40", "--burst", "60",
         "--json", "--out", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    assert r == json.loads(out.read_text())
    for key in ("produced", "delivered", "duplicates", "lost", "lost_after_kill"):
        assert isinstance(r[key], int), key
    s1, s2 = r["scenarios"]["receiver_down"], r["scenarios"]["kill9"]
    # receiver down: everything produced while it was down waited, nothing died, all arrived
    assert s1["produced"] >= 40 + 10 and s1["pending_while_down"] >= 40 and s1["dead"] == 0 and s1["dead_at_end"] == 0
    assert s1["delivered"] == s1["produced"] and s1["lost"] == 0 and s1["bad_signatures"] == 0
    assert s1["received"] == s1["delivered"] + s1["duplicates"]
    # kill -9: the kill happened mid-burst (some refused, some acknowledged on each side of it)
    assert 0 < s2["acknowledged_before_kill"] < s2["acknowledged"] < s2["posted"]
    assert s2["refused_or_cut"] > 0 and s2["not_stored"] == 0
    assert s2["delivered"] == s2["acknowledged"] and s2["lost_after_kill"] == 0
    assert s2["delivered_unacknowledged"] == s2["stored_unacknowledged"]
    assert r["produced"] == s1["produced"] + s2["acknowledged"] and r["delivered"] == r["produced"]
    assert r["lost"] == 0 and r["lost_after_kill"] == 0
    assert "lost after kill -9 0" in proc.stderr
