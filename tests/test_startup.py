"""What a grading command imports before its first sandboxed run starts.

Importing torch takes seconds (pandas, matplotlib and scipy one or more each); the host needs none of them to
validate a rubric, read the hidden data and start the first run, so none of them is imported until then
(:data:`harness.pipeline.HOST_MODULES` are imported in the background while the first runs start). Each case
runs in a fresh interpreter: this test process has imported torch long ago.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.rubric import spec_signature

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "matplotlib", "scipy", "sklearn", "reference.classifiers")


def _imported_by(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _cnn_rubric(path: Path) -> Path:
    """dl2025-a2's CNN task alone (a model spec, parameter count, feature width, accuracy checks...)."""
    document = yaml.safe_load((ROOT / "rubrics" / "dl2025-a2.yaml").read_text(encoding="utf-8"))
    document["tasks"] = [task for task in document["tasks"] if task["id"] == "cnn"]
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_the_command_line_and_a_rubric_load_without_torch_or_pandas(tmp_path: Path, small_data: Path) -> None:
    rubric = _cnn_rubric(tmp_path / "cnn.yaml")
    imported = _imported_by(
        "import harness.cli, harness.pipeline\n"
        "from harness.checks import known_checks\n"
        "from harness.data import load_split\n"
        "from harness.rubric import load_rubric\n"
        f"rubric = load_rubric({str(rubric)!r}, known_checks=known_checks())\n"
        "assert rubric.task('cnn').model.spec == 'reference.classifiers:CNN'\n"
        f"load_split(__import__('pathlib').Path({str(small_data)!r}), 'mnist', 'hidden')\n"
    )
    assert imported == [], f"imported before the first sandboxed run: {', '.join(imported)}"


@pytest.mark.parametrize("rubric", sorted(p.name for p in (ROOT / "rubrics").glob("*.yaml")))
def test_every_full_rubric_loads_without_torch(rubric: str) -> None:
    # free sizes, fixed inputs and loss names are validated at load from what is written, not by importing torch
    imported = _imported_by(
        "from harness.checks import known_checks\n"
        "from harness.rubric import load_rubric\n"
        f"rubric = load_rubric({str(ROOT / 'rubrics' / rubric)!r}, known_checks=known_checks())\n"
        "assert rubric.tasks\n"
    )
    assert imported == [], f"imported while loading {rubric}: {', '.join(imported)}"


def test_the_rubric_knows_the_fixed_inputs_the_probe_builds() -> None:
    from harness.contract import FIXED_INPUT_KINDS
    from harness.probes.fixed_inputs import KINDS

    assert sorted(FIXED_INPUT_KINDS) == sorted(KINDS)


def test_the_loss_names_read_from_source_are_torch_nn_s_loss_classes() -> None:
    import torch

    from harness.checks.reconstruction import torch_loss_names

    assert torch_loss_names() == tuple(sorted(n for n, v in vars(torch.nn).items()
                                              if n.endswith("Loss") and isinstance(v, type)))


def test_preparing_a_grading_setup_imports_none_of_them(tmp_path: Path, small_data: Path) -> None:
    rubric = _cnn_rubric(tmp_path / "cnn.yaml")
    imported = _imported_by(
        "from pathlib import Path\n"
        "from harness.pipeline import prepare_setup\n"
        f"setup = prepare_setup(Path({str(rubric)!r}), Path({str(small_data)!r}), Path({str(tmp_path / 'out')!r}),"
        " profile='fast')\n"
        "assert 'mnist' in setup.hidden\n"
    )
    assert imported == [], f"imported while preparing the setup: {', '.join(imported)}"


def test_the_grading_calibration_imports_no_reference_code() -> None:
    # a student's install (a bundle's self-check) has no reference/; training the references is harness.calibrate
    probe = ("import sys\nimport harness.calibration, harness.cli, gradebench.host\n"
             "print(sorted(m for m in sys.modules if m == 'reference' or m.startswith('reference.')))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert _imported_by("import harness.calibration") == []


def test_the_host_modules_warm_up_in_the_background() -> None:
    imported = _imported_by(
        "from harness.pipeline import HOST_MODULES, warm_host\n"
        "assert 'torch' not in sys.modules\n"
        "warm_host(HOST_MODULES, wait_s=0).join()\n"
    )
    assert imported == ["torch", "pandas", "matplotlib"]


def test_the_host_modules_wait_for_the_first_sandboxed_launch(tmp_path: Path) -> None:
    # torch's import beside the host's own start of the first run delayed that run by 0.4 s
    probe = (
        "import sys, threading, time\n"
        "from harness.pipeline import HOST_MODULES, warm_host\n"
        "from harness.sandbox import make_sandbox\n"
        "from harness.models import Limits\n"
        "from pathlib import Path\n"
        "thread = warm_host(HOST_MODULES, wait_s=60)\n"
        "time.sleep(1.0)\n"
        "print('before the launch:', 'torch' in sys.modules)\n"
        f"done = make_sandbox('plain').run(['true'], workspace=Path({str(tmp_path)!r}), limits=Limits(wall_s=20))\n"
        "assert done.verdict == 'ok', done\n"
        "thread.join(120)\n"
        "print('after the launch:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["before the launch: False", "after the launch: True"]


def test_the_host_modules_are_imported_anyway_when_nothing_is_launched() -> None:
    # a batch whose results are all reused starts no run: its pages still need pandas and matplotlib
    imported = _imported_by(
        "import threading\n"
        "from harness.pipeline import REPORT_MODULES, warm_host\n"
        "warm_host(REPORT_MODULES, after=threading.Event(), wait_s=0.2).join(60)\n"
    )
    assert imported == ["pandas", "matplotlib"]


@pytest.mark.parametrize("spec", ["reference.classifiers:CNN", "reference.autoencoders:Autoencoder",
                                  "reference.autoencoders:FashionConvAE", "reference.classifiers:FeedForwardLogits"])
def test_a_model_spec_is_read_from_source_as_importing_it_reads_it(spec: str) -> None:
    from harness.rubric import _resolve_spec

    def plain(signature: inspect.Signature) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in signature.parameters.values()]

    assert plain(spec_signature(spec)) == plain(inspect.signature(_resolve_spec(spec)))
    assert _imported_by(f"from harness.rubric import spec_signature\nspec_signature({spec!r})") == []


@pytest.mark.parametrize(("spec", "reason"), [
    ("reference.classifiers:CNNN", "module 'reference.classifiers' has no class 'CNNN'; it defines: CNN, "),
    ("reference.clasifiers:CNN", "cannot import module 'reference.clasifiers' (No module named 'reference.clasifiers')"),
    ("reference.classifiers.CNN", "'reference.classifiers.CNN' is not of the form 'module:Class'"),
])
def test_a_wrong_model_spec_is_refused_without_importing_the_reference(spec: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        spec_signature(spec)
    assert reason in str(caught.value)
