"""Backends and GPU slots: where submissions are graded, and which GPU a GPU job may use."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from harness.backends import GpuSlots, make_backend, with_gpu
from harness.engines.base import _gpu_environment
from harness.errors import HarnessError
from harness.events import Done, Loaded, ProgressEvent
from harness.models import Limits, SandboxResult
from harness.pipeline import grade_batch, prepare_setup
from tests.script_rubric import SCRIPT, cnn_script_rubric


GPU_RUBRIC = cnn_script_rubric("gpu-demo", budget="{wall_s: 60, device: gpu}")


class RecordsGpus:
    """A sandbox that runs nothing but notes, per run, the GPUs it was given and how many runs overlapped."""

    isolated = True
    warning = ""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.seen: list[str] = []

    def run(self, command, *, workspace, limits, mounts=(), env=None, cwd=None, stdin=None) -> SandboxResult:
        device = (env or {}).get("CUDA_VISIBLE_DEVICES", "<all>")
        with self.lock:
            self.seen.append(device)
            self.running[device] = self.running.get(device, 0) + 1
            self.peak[device] = max(self.peak.get(device, 0), self.running[device])
        time.sleep(0.2)  # long enough for the jobs to overlap
        with self.lock:
            self.running[device] -= 1
        return SandboxResult("ok", "exit code 0", 0, 0.2, 0.0, 0, "", "", True)


def _batch(folder: Path, students: int) -> Path:
    for index in range(students):
        (folder / f"s{index}").mkdir(parents=True)
        shutil.copy(SCRIPT, folder / f"s{index}" / "cnn_script.py")
    return folder


def test_slots_hand_out_each_gpu_to_one_job_at_a_time() -> None:
    slots = GpuSlots(["0", "1"])
    held = [slots.acquire(), slots.acquire()]
    assert sorted(held) == ["0", "1"]
    waiting: list[str] = []
    thread = threading.Thread(target=lambda: waiting.append(slots.acquire()))
    thread.start()
    time.sleep(0.1)
    assert waiting == []  # both GPUs are busy: the third job waits
    slots.release("1")
    thread.join(timeout=5)
    assert waiting == ["1"]


def test_several_jobs_may_share_a_gpu_when_asked() -> None:
    slots = GpuSlots(["3"], per_gpu=2)
    assert (slots.acquire(), slots.acquire(), slots.size) == ("3", "3", 2)


def test_a_gpu_rubric_on_a_machine_without_gpus_is_refused_plainly() -> None:
    with pytest.raises(HarnessError, match=r"the rubric has GPU tasks .* but this machine has no GPU visible"):
        GpuSlots([])


def test_a_run_sees_only_its_gpu_and_a_cpu_run_none() -> None:
    assert _gpu_environment(Limits()) == {"CUDA_VISIBLE_DEVICES": ""}
    assert _gpu_environment(Limits(gpu=True, gpu_devices=("1",))) == {"CUDA_VISIBLE_DEVICES": "1"}
    assert _gpu_environment(Limits(gpu=True)) == {}


def test_gpu_jobs_of_a_batch_share_the_slots(tmp_path: Path, small_data: Path) -> None:
    rubric = tmp_path / "gpu.yaml"
    rubric.write_text(GPU_RUBRIC, encoding="utf-8")
    sandbox = RecordsGpus()
    setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=sandbox, profile="fast")
    events: list[ProgressEvent] = []
    summary = grade_batch(_batch(tmp_path / "batch", 6), setup, jobs=4, gpu_slots=GpuSlots(["0", "1"]),
                          on_event=events.append)
    assert summary.graded == 6
    assert events[0] == Loaded(6)
    assert sorted(e.student for e in events if isinstance(e, Done) and not e.reused) == [f"s{i}" for i in range(6)]
    assert len(sandbox.seen) == 6 and set(sandbox.seen) == {"0", "1"}  # each run saw one GPU, both were used
    assert all(peak == 1 for peak in sandbox.peak.values()), sandbox.peak  # never two jobs on one GPU


def test_with_gpu_changes_only_the_jobs_limits(tmp_path: Path, small_data: Path) -> None:
    rubric = tmp_path / "gpu.yaml"
    rubric.write_text(GPU_RUBRIC, encoding="utf-8")
    setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=RecordsGpus(), profile="fast")
    job = with_gpu(setup, "2")
    assert job.limits.gpu_devices == ("2",) and setup.limits.gpu_devices == ()
    assert with_gpu(setup, None) is setup


def test_unknown_backends_and_a_ray_address_without_ray_are_usage_errors(tmp_path: Path, small_data: Path) -> None:
    rubric = tmp_path / "gpu.yaml"
    rubric.write_text(GPU_RUBRIC, encoding="utf-8")
    setup = prepare_setup(rubric, small_data, tmp_path / "out", sandbox=RecordsGpus(), profile="fast")
    with pytest.raises(HarnessError, match=r"^no backend 'dask'; known: threads, processes, ray$"):
        make_backend("dask", setup, 2)
    with pytest.raises(HarnessError, match=r"^--ray-address goes with --backend ray, not processes$"):
        make_backend("processes", setup, 2, address="10.0.0.1:6379")


def test_the_grade_command_names_the_known_backends(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    rubric = tmp_path / "gpu.yaml"
    rubric.write_text(GPU_RUBRIC, encoding="utf-8")
    result = CliRunner().invoke(app, ["grade", str(tmp_path), "--rubric", str(rubric), "--backend", "dask",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no backend 'dask'; known: threads, processes, ray" in " ".join(result.output.replace("│", " ").split())


def _machine(monkeypatch, cores: int, free_gib: float, quota: float | None = None) -> None:
    """Pretend this process sees ``cores`` CPU cores, may use ``quota`` of them (a container's CPU quota; None: no
    quota) and the machine has ``free_gib`` GiB of memory free."""
    import os
    from types import SimpleNamespace

    import psutil

    import harness.sandbox.cgroups

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=int(free_gib * 1024**3)))
    monkeypatch.setattr(harness.sandbox.cgroups, "cpu_quota_cores", lambda: quota)


@pytest.mark.parametrize(
    ("cores", "free_gib", "threads", "memory_gib", "jobs", "said"),
    [
        (2, 20.0, 1, 4, 2, "2 submissions at once (one per CPU core; --jobs N to choose)"),
        (16, 64.0, 1, 4, 16, "16 submissions at once (one per CPU core; --jobs N to choose)"),
        (8, 12.5, 1, 4, 3, "3 submissions at once (12.5 GiB of memory is free and each run may use up to 4 GiB; "
                           "8 CPU cores; --jobs N to choose)"),
        (8, 64.0, 4, 4, 2, "2 submissions at once (8 CPU cores, 4 torch threads per run; --jobs N to choose)"),
        (1, 20.0, 1, 4, 1, "1 submission at once (one per CPU core; --jobs N to choose)"),
        (4, 2.0, 1, 4, 1, "1 submission at once (2 GiB of memory is free and each run may use up to 4 GiB; "
                          "4 CPU cores; --jobs N to choose)"),
    ],
)
def test_without_jobs_a_batch_grades_one_submission_per_core_as_far_as_memory_goes(
    monkeypatch, cores, free_gib, threads, memory_gib, jobs, said
) -> None:
    from harness.backends import default_jobs

    _machine(monkeypatch, cores, free_gib)
    assert default_jobs(threads, memory_gib * 1024**3) == (jobs, said)


@pytest.mark.parametrize(
    ("quota", "jobs", "said"),
    [
        (2.0, 2, "2 submissions at once (one per CPU core: a CPU quota grants 2 of the 64; --jobs N to choose)"),
        (1.5, 1, "1 submission at once (one per CPU core: a CPU quota grants 1.5 of the 64; --jobs N to choose)"),
        (0.5, 1, "1 submission at once (one per CPU core: a CPU quota grants 0.5 of the 64; --jobs N to choose)"),
        (128.0, 64, "64 submissions at once (one per CPU core; --jobs N to choose)"),
    ],
)
def test_in_a_container_with_a_cpu_quota_a_batch_keeps_only_the_cores_it_may_use_busy(monkeypatch, quota, jobs, said):
    from harness.backends import default_jobs

    _machine(monkeypatch, 64, 1024.0, quota)
    assert default_jobs(1, 4 * 1024**3) == (jobs, said)
