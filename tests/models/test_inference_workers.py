"""Two inference workers of one ONNX Runtime thread each on 2 cores (the default since they were
measured to analyse 1.20x (SSD) and 1.31x (YOLOv8n) the live frames of one worker of two
threads): the cores a process may use (its affinity mask and its control group's CPU quota),
the workers and the threads each model run gets, what `gridworker check` says of them, and
the real session's thread count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from gridworker.cli import main
from gridworker.models.config import auto_inference_workers, cgroup_cpu_limit, session_threads, usable_cores
from gridworker.models.loader import resolve_model
from gridworker.models.manifest import load_manifest
from gridworker.models.onnx_session import create_session
from gridworker.settings import PipelineConfig, Settings
from tests.factories import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_workers_and_threads_follow_the_usable_cores() -> None:
    assert [auto_inference_workers(c) for c in (1, 2, 3, 16)] == [1, 2, 2, 2]
    assert [session_threads(None, 2, cores=c) for c in (1, 2, 3, 16)] == [1, 1, 1, 8]
    assert session_threads(None, 1, cores=4) == 4
    assert session_threads(3, 2, cores=2) == 3  # set: kept, whatever the cores
    assert PipelineConfig().inference_worker_count() == auto_inference_workers()
    assert PipelineConfig(inference_workers=3).inference_worker_count() == 3
    assert Settings().detector.threads is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or usable_cores() < 2, reason="needs Linux and 2 usable cores")
def test_a_process_pinned_to_one_core_runs_one_worker_of_one_thread() -> None:
    """The affinity mask (taskset, a container's cpuset), not the machine's core count, decides."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from gridworker.models.config import usable_cores, auto_inference_workers, session_threads;"
        "print(usable_cores(), auto_inference_workers(), session_threads(None, auto_inference_workers()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True).stdout
    assert out.split() == ["1", "1", "1"], out
    assert (os.cpu_count() or 1) >= 2  # the machine has more: the mask is what counted


def test_a_cgroup_cpu_quota_limits_the_cores(tmp_path: Path) -> None:
    """``docker run --cpus 2`` on a 64-core host is a CFS quota, not a cpuset: without reading it
    the defaults would be 2 workers of 32 threads each, throttled."""
    v2 = tmp_path / "v2"
    (v2 / "kubepods" / "pod1").mkdir(parents=True)
    membership = tmp_path / "cgroup"
    membership.write_text("0::/kubepods/pod1\n")
    (v2 / "kubepods" / "pod1" / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_limit(v2, membership) == 2.5
    (v2 / "kubepods" / "pod1" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2, membership) is None  # no quota
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    membership.write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1, membership) == 2.0
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(v1, membership) is None
    assert cgroup_cpu_limit(tmp_path / "absent", tmp_path / "absent-too") is None  # nothing readable: no limit
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "cpu.max").write_text("lots\n")
    assert cgroup_cpu_limit(tmp_path / "junk", tmp_path / "absent") is None  # unreadable: no limit, no error


def test_a_quota_on_a_parent_group_binds_its_children(tmp_path: Path) -> None:
    """Kubernetes sets a pod's limit on the pod's group and leaves the container's at ``max``:
    the smallest quota on the way up counts; a ``..`` in the membership line climbs nowhere."""
    v2 = tmp_path / "v2"
    (v2 / "kubepods" / "pod1" / "ctr").mkdir(parents=True)
    membership = tmp_path / "cgroup"
    membership.write_text("0::/kubepods/pod1/ctr\n")
    (v2 / "kubepods" / "pod1" / "ctr" / "cpu.max").write_text("max 100000\n")
    (v2 / "kubepods" / "pod1" / "cpu.max").write_text("150000 100000\n")
    (v2 / "kubepods" / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2, membership) == 1.5
    (v2 / "kubepods" / "pod1" / "ctr" / "cpu.max").write_text("100000 100000\n")  # the tighter one wins
    assert cgroup_cpu_limit(v2, membership) == 1.0
    (v2 / "kubepods" / "pod1" / "ctr" / "cpu.max").write_text("400000 100000\n")
    assert cgroup_cpu_limit(v2, membership) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "abc").mkdir(parents=True)
    membership.write_text("4:cpu,cpuacct:/docker/abc\n")
    (v1 / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu,cpuacct" / "docker" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu,cpuacct" / "docker" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1, membership) == 3.0
    outside = tmp_path / "cpu.max"
    outside.write_text("10000 100000\n")  # 0.1 CPU beside the root: never read
    membership.write_text("0::/../..\n")
    assert cgroup_cpu_limit(v2, membership) is None


def test_the_session_gets_the_threads_it_is_given() -> None:
    model_dir = resolve_model("ssd_mobilenet_v2_coco")
    model = model_dir / load_manifest(model_dir).model.file
    one, every = create_session(model, 1), create_session(model, None)
    assert isinstance(one, ort.InferenceSession) and isinstance(every, ort.InferenceSession)
    assert one.get_session_options().intra_op_num_threads == 1
    assert every.get_session_options().intra_op_num_threads == usable_cores()


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str) -> str:
    conf = tmp_path / "c.yaml"
    conf.write_text(f"server: {{host: 127.0.0.1, port: {free_port()}}}\ndatabase: {{url: 'sqlite:///{tmp_path / 'g.db'}'}}\n{body}")
    assert main(["check", "--config", str(conf)]) == 0
    return capsys.readouterr().out


def test_check_says_how_inference_is_shared_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cores = usable_cores()
    workers = 2 if cores >= 2 else 1
    out = _check(tmp_path, capsys, "")
    assert f"inference: {workers} worker(s), {max(1, cores // workers)} ONNX Runtime thread(s) each ({cores} usable core(s))" in out, out
    out = _check(tmp_path, capsys, "pipeline: {inference_workers: 3}\ndetector: {threads: 2}\n")
    assert f"inference: 3 worker(s), 2 ONNX Runtime thread(s) each ({cores} usable core(s))" in out, out
    out = _check(tmp_path, capsys, "detectors:\n  - {id: own, model: ssd_mobilenet_v2_coco, threads: 3}\n  - {id: other, model: ssd_mobilenet_v2_coco}\n")
    assert "    detectors[own]: 3 ONNX Runtime thread(s) each" in out, out
    assert f"    detectors[other]: {max(1, cores // workers)} ONNX Runtime thread(s) each" in out, out
    out = _check(tmp_path, capsys, "detector: {runtime: openvino, threads: 1}\ndetectors:\n  - {id: own, model: ssd_mobilenet_v2_coco, runtime: openvino}\n")
    assert f"inference: {workers} worker(s), 1 OpenVINO thread(s) each" in out and "    detectors[own]: " in out and out.count("OpenVINO") == 2, out
