"""Where submissions are graded: threads of this process, worker processes, or a Ray cluster.

The driver (:func:`harness.pipeline.grade_batch`) loads the batch, stores, logs and renders; a backend
only runs :func:`harness.pipeline.grade_submission` on one submission with the batch's setup and hands
the report back. Every backend is driven the same way, from ``jobs`` driver threads each calling
:meth:`Backend.grade` and waiting for its report, so how many submissions are graded at once, which
GPU a job may use and what happens to a fault are decided in one place.

- ``threads``: in this process (the default; the student code runs in sandboxed child processes anyway,
  so the threads mostly wait).
- ``processes``: in ``jobs`` worker processes started fresh (spawn), each sent the setup once.
- ``ray``: as Ray tasks, on a local Ray instance or the cluster at ``address`` (``ray start --head`` on
  one machine, ``ray start --address HEAD:6379`` on the others). Each task asks for the setup's torch
  threads as CPUs and, when the rubric has a GPU task, one GPU. Submissions are staged and artifacts
  written under ``--out``, so on a cluster of several machines ``--out`` must be on a filesystem every
  node sees at the same path (NFS); reports, the results store and the log stay with the driver.

GPU jobs (a rubric task with ``budget: {device: gpu}``) take one GPU slot while they run: a slot is one
device id, offered ``per_gpu`` times, and the run sees only that device (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.models import ExecutionResult, GradeReport, Submission
    from harness.pipeline import GradingSetup

BackendName = Literal["threads", "processes", "ray"]
BACKENDS: tuple[str, ...] = ("threads", "processes", "ray")
"""The backends ``--backend`` accepts."""


def default_jobs(threads: int, memory_bytes: int) -> tuple[int, str]:
    """How many submissions to grade at once when the command line does not say: one per CPU core this process may
    use (its CPU affinity, within a cgroup CPU quota; a run takes ``threads`` of them), and no more than the free
    memory holds at each run's memory limit (``memory_bytes``). Returns the count and, for the person who ran the
    command, why."""
    import psutil

    from harness.sandbox.cgroups import cpu_quota_cores
    from harness.sandbox.supervise import format_bytes

    visible = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cpu_quota_cores()  # a container's --cpus: the cores it may see are not the cores it may use
    cores = min(visible, max(1, int(quota))) if quota else visible
    by_cores = max(1, cores // max(threads, 1))
    free = psutil.virtual_memory().available
    by_memory = max(1, free // max(memory_bytes, 1))
    jobs = min(by_cores, by_memory)
    count = f"{jobs} submission{'s' if jobs != 1 else ''} at once"
    cores_text = f"{cores} CPU core{'s' if cores != 1 else ''}"
    if by_memory < by_cores:
        limit = format_bytes(memory_bytes)
        why = f"{format_bytes(free)} of memory is free and each run may use up to {limit}; {cores_text}"
    elif threads > 1:
        why = f"{cores_text}, {threads} torch threads per run"
    else:
        why = "one per CPU core" + (f": a CPU quota grants {quota:g} of the {visible}" if cores < visible else "")
    return jobs, f"{count} ({why}; --jobs N to choose)"


def needs_gpu(setup: GradingSetup) -> bool:
    """Whether grading one submission under this rubric runs anything on a GPU."""
    return any(t.budget is not None and t.budget.device == "gpu" for t in setup.rubric.automatic_tasks)


def visible_gpus() -> tuple[str, ...]:
    """The GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set, else every GPU torch sees."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return tuple(d.strip() for d in given.split(",") if d.strip() and d.strip() != "-1")
    import torch

    return tuple(str(i) for i in range(torch.cuda.device_count()))


class GpuSlots:
    """GPU slots of the grading machine: a GPU job holds one device id while it runs.

    Each device is offered ``per_gpu`` times (small jobs can share a large GPU); a job waits for a free
    slot. Raises HarnessError when there is no device at all, since a GPU task cannot run then.
    """

    def __init__(self, devices: Sequence[str], per_gpu: int = 1) -> None:
        """Slots for ``devices`` (ids as CUDA_VISIBLE_DEVICES names them), each ``per_gpu`` times."""
        if not devices:
            raise HarnessError(
                "the rubric has GPU tasks (budget: {device: gpu}) but this machine has no GPU visible "
                "(CUDA_VISIBLE_DEVICES is empty or torch sees none); grade on a machine with one"
            )
        if per_gpu < 1:
            raise HarnessError(f"jobs per GPU must be at least 1, not {per_gpu}")
        self.devices = tuple(devices)
        self.per_gpu = per_gpu
        self._free = [d for _ in range(per_gpu) for d in self.devices]
        self._ready = threading.Condition()
        self.peak_in_use: dict[str, int] = dict.fromkeys(self.devices, 0)
        """Most jobs that held each device at once (for tests and the log)."""
        self._in_use: dict[str, int] = dict.fromkeys(self.devices, 0)

    @property
    def size(self) -> int:
        """How many GPU jobs can run at once."""
        return len(self.devices) * self.per_gpu

    def acquire(self) -> str:
        """Wait for a free slot; the device id it is on. The least used device is handed out first."""
        with self._ready:
            while not self._free:
                self._ready.wait()
            device = min(self._free, key=lambda d: (self._in_use[d], self.devices.index(d)))
            self._free.remove(device)
            self._in_use[device] += 1
            self.peak_in_use[device] = max(self.peak_in_use[device], self._in_use[device])
            return device

    def release(self, device: str) -> None:
        """Give a slot back."""
        with self._ready:
            self._in_use[device] -= 1
            self._free.append(device)
            self._ready.notify()


def with_gpu(setup: GradingSetup, device: str | None) -> GradingSetup:
    """The setup of one job: its runs may use only ``device`` (none: the setup as it is)."""
    if device is None:
        return setup
    return replace(setup, limits=replace(setup.limits, gpu_devices=(device,)))


class Backend:
    """Runs :func:`harness.pipeline.grade_submission` somewhere; :meth:`grade` blocks until the report is back."""

    name: str = ""

    def grade(self, submission: Submission, gpu: str | None, reuse: Mapping[str, ExecutionResult]) -> GradeReport:
        """Grade one submission (on GPU ``gpu`` when given, reusing the earlier runs ``reuse`` where they still
        hold: see :func:`harness.pipeline.grade_submission`); its exceptions are raised here."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend started (worker processes, the Ray connection)."""

    @property
    def assigns_gpus(self) -> bool:
        """True when the backend picks GPUs itself (Ray); the driver's slots are then not used."""
        return False


class ThreadBackend(Backend):
    """Grades in the driver's threads."""

    name = "threads"

    def __init__(self, setup: GradingSetup) -> None:
        self.setup = setup

    def grade(self, submission: Submission, gpu: str | None, reuse: Mapping[str, ExecutionResult]) -> GradeReport:
        from harness.pipeline import grade_submission

        return grade_submission(submission, with_gpu(self.setup, gpu), reuse)


_WORKER_SETUP: GradingSetup | None = None
"""The setup a worker process was started with (processes backend)."""


def _start_worker(setup: GradingSetup) -> None:
    """Initialiser of a worker process: keep the setup it is sent once."""
    global _WORKER_SETUP
    _WORKER_SETUP = setup


def _grade_in_worker(submission: Submission, gpu: str | None, reuse: Mapping[str, ExecutionResult]) -> GradeReport:
    """Grade one submission in a worker process with the setup it was started with."""
    from harness.pipeline import grade_submission

    assert _WORKER_SETUP is not None, "worker process started without a setup"
    return grade_submission(submission, with_gpu(_WORKER_SETUP, gpu), reuse)


class ProcessBackend(Backend):
    """Grades in ``jobs`` fresh worker processes (spawned, so no thread or lock of the driver is inherited)."""

    name = "processes"

    def __init__(self, setup: GradingSetup, jobs: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(setup,),
        )

    def grade(self, submission: Submission, gpu: str | None, reuse: Mapping[str, ExecutionResult]) -> GradeReport:
        return self.pool.submit(_grade_in_worker, submission, gpu, reuse).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _grade_on_ray(
    setup: GradingSetup, submission: Submission, wants_gpu: bool, reuse: Mapping[str, ExecutionResult]
) -> GradeReport:
    """A Ray task: grade one submission; Ray chose the GPU (if any) and says which in ``ray.get_gpu_ids()``."""
    import ray

    from harness.pipeline import grade_submission

    gpu = None
    if wants_gpu:
        ids = ray.get_gpu_ids()
        gpu = str(ids[0]) if ids else None
    return grade_submission(submission, with_gpu(setup, gpu), reuse)


class RayBackend(Backend):
    """Grades as Ray tasks on a local Ray instance or the cluster at ``address``."""

    name = "ray"

    def __init__(self, setup: GradingSetup, jobs: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise HarnessError("the ray backend needs Ray: pip install 'ray>=2.9'") from None
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            options: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            if address is None:
                options["num_cpus"] = max(jobs, 1) * max(setup.threads, 1)
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise HarnessError(f"could not start or reach {where}: {error}") from None
        self.wants_gpu = needs_gpu(setup)
        self.task = ray.remote(_grade_on_ray).options(
            num_cpus=max(setup.threads, 1), num_gpus=1 if self.wants_gpu else 0, max_retries=0,
        )
        self.setup_ref = ray.put(setup)

    @property
    def assigns_gpus(self) -> bool:
        return True

    def grade(self, submission: Submission, gpu: str | None, reuse: Mapping[str, ExecutionResult]) -> GradeReport:
        try:
            return self.ray.get(self.task.remote(self.setup_ref, submission, self.wants_gpu, reuse))
        except self.ray.exceptions.RayTaskError as error:  # the task's own exception, re-raised as itself
            raise error.as_instanceof_cause() from None

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


def make_backend(name: str, setup: GradingSetup, jobs: int, *, address: str | None = None) -> Backend:
    """The backend called ``name`` for ``jobs`` submissions at once; HarnessError for an unknown one."""
    if address is not None and name != "ray":
        raise HarnessError(f"--ray-address goes with --backend ray, not {name}")
    if name == "threads":
        return ThreadBackend(setup)
    if name == "processes":
        return ProcessBackend(setup, jobs)
    if name == "ray":
        return RayBackend(setup, jobs, address)
    raise HarnessError(f"no backend {name!r}; known: {', '.join(BACKENDS)}")
