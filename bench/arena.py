"""Does ONNX Runtime's CPU memory arena grow under gridworker's mix of batch sizes?

``python -m gridworker.bench.arena --seconds 180`` runs the embedded detector in two
processes side by side, one with ONNX Runtime's CPU arena (the default) and one without
(``enable_cpu_mem_arena`` and ``enable_mem_pattern`` off), each on batches of 1-8 blank
images in a seeded random order, and prints each process's RSS over time and its median
inference time per image. It answers the soak's question (docs/benchmarks.md, *Staying
flat*): are RSS steps the arena growing for new batch shapes?
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

import numpy as np

__all__ = ["main", "measure"]


def measure(arena: bool, seconds: float, threads: int = 1) -> dict[str, object]:
    """One process's run: RSS (MB) every 20 inferences, median ms per image."""
    import onnxruntime as ort
    import psutil

    from gridworker.models.config import DEFAULT_MODEL
    from gridworker.models.loader import resolve_model

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not arena:
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
    session = ort.InferenceSession(str(resolve_model(DEFAULT_MODEL) / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in spec.shape]
    dtype = np.uint8 if "uint8" in spec.type else np.float32
    proc, rnd = psutil.Process(), random.Random(2)
    t0, runs, per_image, rss = time.monotonic(), 0, [], []
    while time.monotonic() - t0 < seconds:
        batch = rnd.randint(1, 8)
        x = np.zeros([batch, *shape[1:]], dtype)
        t = time.perf_counter()
        session.run(None, {spec.name: x})
        per_image.append((time.perf_counter() - t) / batch)
        runs += 1
        if runs % 20 == 0:
            rss.append((round(time.monotonic() - t0, 1), round(proc.memory_info().rss / 2**20, 1)))
    rss.append((round(time.monotonic() - t0, 1), round(proc.memory_info().rss / 2**20, 1)))
    per_image.sort()
    return {"arena": arena, "runs": runs, "ms_per_image": round(1000 * per_image[len(per_image) // 2], 2), "rss_mb": rss}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gridworker.bench.arena", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child == "on", args.seconds)))
        return 0
    children = {
        mode: subprocess.Popen([sys.executable, "-m", "gridworker.bench.arena", "--seconds", str(args.seconds), "--child", mode], stdout=subprocess.PIPE, text=True)
        for mode in ("on", "off")
    }
    for mode, child in children.items():
        out, _ = child.communicate()
        r = json.loads(out)
        rss = r["rss_mb"]
        warm = [m for t, m in rss if t >= min(30.0, args.seconds / 3)] or [m for _, m in rss]
        print(
            f"arena {mode:3s}: {r['runs']} runs, {r['ms_per_image']} ms/image; RSS {rss[0][1]} MB at {rss[0][0]} s, "
            f"{min(warm)}-{max(warm)} MB after warm-up, {rss[-1][1]} MB at the end"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
