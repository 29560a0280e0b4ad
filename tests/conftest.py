"""Fixtures shared across the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness  # noqa: F401  (first: it gives the host's numpy one BLAS thread before numpy is imported)


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    """Small synthetic MNIST (6,000 train / 1,000 test / 1,000 hidden), prepared once per session: the data folder.

    Tests may add calibration files to it (they are keyed by rubric, reference and profile) but
    must not change the prepared data.
    """
    from harness.data import prepare

    data = tmp_path_factory.getbasetemp() / "gradebench-small-data"
    if not (data / "manifest.json").is_file():
        prepare(data, source="synthetic", small=True, datasets=("mnist",), hidden_seed=1234)
    return data


@pytest.fixture(scope="session")
def small_mnist(small_data) -> Path:
    """The small data's public folder: what torchvision reads."""
    return small_data / "public"


@pytest.fixture(scope="session")
def small_all_data(tmp_path_factory) -> Path:
    """Small synthetic MNIST and FashionMNIST (6,000 / 1,000 / 1,000) and SIGNS, prepared once per session.

    The data the sample submissions of every assignment are graded on (as `make demo` does with
    the fast profile). Tests must not change the prepared data.
    """
    from harness.data import prepare

    data = tmp_path_factory.getbasetemp() / "gradebench-small-all-data"
    if not (data / "manifest.json").is_file():
        prepare(data, source="synthetic", small=True, hidden_seed=1234)
    return data


_GRADED_SAMPLES: dict[str, object] = {}
_SAMPLE_BATCHES: dict[str, Path] = {}

SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"

SHARED_BATCHES: dict[str, tuple[str | None, ...]] = {
    "dl2025-a2": (None, "bars", "hook", "match", "trace"),
    "idl-ex2": (None, "hook", "match"),
}
"""Per assignment, the generators whose samples are graded together in one batch (``None``: the assignment's own):
one calibration, one start-up and two busy workers for all of them, however many test files ask. An assignment
not named here has its own samples only."""


def own_samples(assignment: str, generator: str | None = None) -> tuple[str, ...]:
    """The sample folders of ``assignment`` that one generator writes: the assignment's own
    (``submissions/make_<assignment>_samples.py``), or ``make_<generator>_samples.py``'s.

    Other generators add folders beside the assignment's own (``make_match_samples.py``: ``dl2025-a2/odd_names``...),
    graded and asserted by their own tests. A generator's ``SAMPLES`` names folders of one assignment
    (``course_template``) or of several (``dl2025-a2/odd_names``); a generator without ``SAMPLES`` writes every
    folder of its own tree (``make_trace_samples.py``: ``submissions/trace/<assignment>/``).
    """
    import importlib.util
    import sys

    path = SUBMISSIONS / f"make_{(generator or assignment).replace('-', '_')}_samples.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(SUBMISSIONS))  # the generators import their shared pieces (notebook_samples.py...)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SUBMISSIONS))
    if not hasattr(module, "SAMPLES"):
        return tuple(sorted(p.name for p in sample_folder(assignment, generator).iterdir() if p.is_dir()))
    names = tuple(module.SAMPLES)
    if any("/" in name for name in names):
        return tuple(name.split("/", 1)[1] for name in names if name.startswith(f"{assignment}/"))
    return names


def sample_folder(assignment: str, generator: str | None = None) -> Path:
    """Where a generator's samples of ``assignment`` lie: beside the assignment's own, or in a tree of the
    generator's own (``submissions/trace/dl2025-a2``)."""
    own_tree = SUBMISSIONS / (generator or "") / assignment
    return own_tree if generator and own_tree.is_dir() else SUBMISSIONS / assignment


def _forgot_common(folder: Path) -> None:
    """idl-ex2's q1.py handed in without the common.py it imports (test_samples_match.py: it dies at its imports)."""
    import shutil

    folder.mkdir()
    shutil.copy(SUBMISSIONS / "idl-ex2" / "reference" / "q1.py", folder / "q1.py")


BUILT_SAMPLES = {("idl-ex2", "match"): {"forgot_common": _forgot_common}}
"""Hand-ins a test makes from other samples instead of a generator, by (assignment, generator): graded in the
shared batch with that generator's samples."""


def generator_samples(assignment: str, generator: str | None = None) -> tuple[str, ...]:
    """The students of ``assignment``'s shared batch that belong to ``generator``: its samples and built hand-ins."""
    return own_samples(assignment, generator) + tuple(BUILT_SAMPLES.get((assignment, generator), {}))


@pytest.fixture(scope="session")
def graded_samples(tmp_path_factory, small_all_data):
    """``graded_samples("idl-ex2")``: the assignment's own samples (:func:`own_samples`) graded once per session
    (fast profile, 2 workers); ``graded_samples("dl2025-a2", "bars")``: those ``make_bars_samples.py`` writes.

    Every generator of ``SHARED_BATCHES[assignment]`` is graded in the same batch, the first time any of them is
    asked for. Returns ``(setup, summary of the whole batch, reports of the generator's students by student)``;
    the reference submission calibrates the rubric first.
    """
    import os
    import shutil

    from harness.pipeline import grade_batch, prepare_setup
    from harness.sandbox import BubblewrapSandbox, make_sandbox

    root = Path(__file__).resolve().parents[1]

    def grade_all(assignment: str):
        if assignment not in _GRADED_SAMPLES:
            out = tmp_path_factory.mktemp(f"graded-{assignment}")
            # In CI the sandbox must be bubblewrap (a missing bwrap fails here); elsewhere the best available.
            sandbox = BubblewrapSandbox() if os.environ.get("CI") else make_sandbox()
            setup = prepare_setup(root / "rubrics" / f"{assignment}.yaml", small_all_data, out, sandbox=sandbox, profile="fast")
            batch = tmp_path_factory.mktemp(f"samples-{assignment}")
            for generator in SHARED_BATCHES.get(assignment, (None,)):
                for sample in own_samples(assignment, generator):
                    # copytree refuses an existing folder: two generators cannot hand in the same student
                    shutil.copytree(sample_folder(assignment, generator) / sample, batch / sample)
                for student, build in BUILT_SAMPLES.get((assignment, generator), {}).items():
                    build(batch / student)
            _SAMPLE_BATCHES[assignment] = batch
            summary = grade_batch(batch, setup, jobs=2, reference_dir=SUBMISSIONS / assignment / "reference")
            _GRADED_SAMPLES[assignment] = (setup, summary, {r.student: r for r in summary.reports})
        return _GRADED_SAMPLES[assignment]

    def grade(assignment: str, generator: str | None = None):
        setup, summary, reports = grade_all(assignment)
        if generator is not None:
            assert generator in SHARED_BATCHES.get(assignment, ()), f"{generator}'s samples of {assignment} are not graded"
        students = generator_samples(assignment, generator)
        return setup, summary, {student: reports[student] for student in students if student in reports}

    return grade


@pytest.fixture(scope="session")
def sample_batch(graded_samples):
    """``sample_batch("dl2025-a2")``: the folder :func:`graded_samples` graded (every generator's samples of it)."""

    def folder(assignment: str) -> Path:
        graded_samples(assignment)
        return _SAMPLE_BATCHES[assignment]

    return folder


# -- test tiers -------------------------------------------------------------------------------------------------

END_TO_END = frozenset({
    "test_broken.py",
    "test_calibrate.py",
    "test_calibrate_batch.py",
    "test_cli.py",
    "test_crash_safety.py",
    "test_hostile.py",
    "test_pipeline.py",
    "test_backends_e2e.py",
    "test_probe_extras.py",
    "test_rescoring.py",
    "test_samples_adl2024_a2.py",
    "test_samples_bars.py",
    "test_samples_dl2025_a2.py",
    "test_samples_figs.py",
    "test_samples_hook.py",
    "test_samples_idl_ex2.py",
    "test_samples_match.py",
    "test_samples_mle_sheet06.py",
    "test_samples_trace.py",
    "test_surrogate_names.py",
    "test_synthetic_data_behaves.py",
})
"""Test files that grade whole submissions or train the references on the synthetic data: the `e2e` tier
(with every test marked `slow`)."""


SHARED_BATCH_FILES = frozenset({
    "test_pipeline.py",
    "test_samples_bars.py",
    "test_samples_dl2025_a2.py",
    "test_samples_hook.py",
    "test_samples_idl_ex2.py",
    "test_samples_match.py",
    "test_samples_trace.py",
})
"""The test files that read the shared dl2025-a2 and idl-ex2 batches (:func:`graded_samples`): under pytest-xdist
they run in one worker, which grades each batch once (a session fixture is per worker)."""


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test of an end-to-end file `e2e` and every benchmark `bench`; the rest is the fast unit tier.

    Under pytest-xdist (``--dist loadgroup``), the tests of an end-to-end file stay in one worker, so that what its
    module fixtures grade is graded once, and the files of the shared batches stay together.
    """
    grouped = config.pluginmanager.hasplugin("xdist")
    for item in items:
        path = Path(str(item.fspath))
        if "benchmarks" in path.parts:
            item.add_marker(pytest.mark.bench)
        elif path.name in END_TO_END or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.e2e)
            if grouped:
                item.add_marker(pytest.mark.xdist_group("shared-batches" if path.name in SHARED_BATCH_FILES else path.name))
