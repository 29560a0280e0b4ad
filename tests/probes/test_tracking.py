"""The construction tracker and the probe on models that live only inside functions (in this process, no sandbox)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from harness.contract import ContractError, ProbeRecord
from harness.architecture import describe_layers
from harness.checks.select import select_model
from harness.probes import probe, tracking

CLASSES = """
import torch
from torch import nn


class AE(nn.Module):
    def __init__(self, latent=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 4), nn.ReLU(), nn.Linear(4, 8))

    def forward(self, x):
        return self.decoder(self.encoder(x))


def fit(model, steps=3, optimizer=True):
    opt = torch.optim.SGD(model.parameters(), lr=0.1) if optimizer else None
    for _ in range(steps):
        x = torch.randn(16, 8)
        loss = (model(x) - x).pow(2).mean()
        model.zero_grad()
        loss.backward()
        if opt is not None:
            opt.step()
        else:
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
"""


@pytest.fixture
def tracked(tmp_path):
    """Record constructions for one test (the student's files in ``tmp_path``); always restore nn.Module afterwards."""
    tracker = tracking.install(str(tmp_path))
    try:
        yield tracker
    finally:
        tracking.stop()


def run_student(tmp_path: Path, code: str, name: str = "q1.py") -> dict[str, Any]:
    """Run ``code`` as the student's script ``name`` (a real file, so its lines can be read back)."""
    path = tmp_path / name
    path.write_text(CLASSES + textwrap.dedent(code), encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that contains ``text``."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def probe_locals(tmp_path: Path, namespace: dict[str, Any], **extra: Any) -> dict[str, Any]:
    config = {"artifacts": str(tmp_path / "artifacts"), "datasets": ["mnist"], "input_shapes": [[8]],
              "workspace": str(tmp_path), "step_timeout_s": 20, **extra}
    return probe.run(config, namespace)


def by_name(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in record["models"]}


def test_a_model_that_only_lived_inside_a_function_is_found_with_its_site_and_training(tracked, tmp_path):
    namespace = run_student(tmp_path, """
        def run_q1():
            model = AE()
            fit(model)
            counter = AE()  # built only to count parameters
            print(sum(p.numel() for p in counter.parameters()))
            return 0.5

        if __name__ == "__main__":
            run_q1()
    """)
    record = probe_locals(tmp_path, namespace)
    ProbeRecord.from_json(record)
    models = by_name(record)
    assert set(models) == {"model", "counter", "AE"} - {"AE"}  # the class has instances: it is not constructed again
    model, counter = models["model"], models["counter"]
    assert (model["bound"], model["trained"], model["trained_how"]) == (False, True, "optimizer")
    line = line_of(tmp_path / "q1.py", "model = AE()")
    assert model["built_at"] == {"file": "q1.py", "line": line, "function": "run_q1",
                                 "label": f"AE() built in run_q1, q1.py line {line}"}
    assert model["trainable_parameters"] == 98 and model["output_shape"] == [2, 8]
    assert model["state_dict"] == "models/m0/state_dict.pt"  # trained first, and its weights are exported
    assert (counter["trained"], counter["trained_how"]) == (False, "never_used")

    chosen, note = select_model(record["models"], ("model",), describe_layers(namespace["AE"]()), 98)
    assert chosen is not None and chosen["id"] == model["id"]
    assert note == ("graded `model`, a local of run_q1() in q1.py (an instance of AE, trained: an optimizer "
                    "stepped it); `counter` (an untrained copy) passed over")


def test_training_is_known_by_changed_weights_loading_or_its_absence(tracked, tmp_path):
    namespace = run_student(tmp_path, """
        def experiments():
            manual = AE()
            fit(manual, optimizer=False)  # p -= lr * p.grad, no optimizer
            looked_at = AE()
            looked_at(torch.zeros(1, 8))  # a forward pass, weights unchanged
            restored = AE(latent=3)
            restored.load_state_dict(AE(latent=3).state_dict())

        experiments()
    """)
    models = by_name(probe_locals(tmp_path, namespace))
    assert (models["manual"]["trained"], models["manual"]["trained_how"]) == (True, "weights_changed")
    assert (models["looked_at"]["trained"], models["looked_at"]["trained_how"]) == (False, "unchanged")
    assert (models["restored"]["trained"], models["restored"]["trained_how"]) == (True, "loaded")
    # The throwaway AE(latent=3) built inline is a candidate of its own, untrained.
    assert models["AE()"]["trained"] is False
    assert tracking.TRAINED_HOW["weights_changed"] == "its weights changed after it was built"


def test_parts_of_a_model_and_losses_are_not_candidates_and_globals_keep_their_names(tracked, tmp_path):
    namespace = run_student(tmp_path, """
        def build():
            layers = [nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 8)]
            net = nn.Sequential(*layers)
            criterion = nn.MSELoss()
            fit(net)
            return 1

        build()
        cnn = AE()
        fit(cnn)
    """)
    record = probe_locals(tmp_path, namespace)
    models = by_name(record)
    assert set(models) == {"cnn", "net"}
    assert (models["cnn"]["bound"], models["cnn"]["trained_how"]) == (True, "optimizer")
    top, inside = line_of(tmp_path / "q1.py", "cnn = AE()"), line_of(tmp_path / "q1.py", "net = nn.Sequential")
    assert models["cnn"]["built_at"]["label"] == f"AE() built at top level, q1.py line {top}"
    assert (models["net"]["bound"], models["net"]["class_name"]) == (False, "Sequential")
    assert models["net"]["built_at"]["label"] == f"Sequential() built in build, q1.py line {inside}"


def test_a_local_named_like_a_global_gets_its_site_in_its_name(tracked, tmp_path):
    namespace = run_student(tmp_path, """
        def run_q2():
            model = AE()
            fit(model)

        run_q2()
        model = AE()
    """, name="q2.py")
    names = [m["name"] for m in probe_locals(tmp_path, namespace)["models"]]
    assert names == ["model", f"model in run_q2(), q2.py line {line_of(tmp_path / 'q2.py', 'model = AE()')}"]


def test_the_caps_release_untrained_models_first_and_the_probe_says_which(tracked, tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "MAX_KEPT", 3)
    namespace = run_student(tmp_path, """
        def sweep():
            for latent in (2, 3, 4):
                scratch = AE(latent)
            best = AE()
            fit(best)
            for latent in (5, 6):
                scratch = AE(latent)

        sweep()
    """)
    record = probe_locals(tmp_path, namespace)
    assert [(m["name"], m["trained"]) for m in record["models"]][0] == ("best", True), record["models"]
    dropped = [e for e in record["namespace_errors"] if "was not kept" in e]
    line = line_of(tmp_path / "q1.py", "scratch = AE(latent)")
    assert dropped == [
        f"AE() built in sweep, q1.py line {line} (untrained) was not kept for grading: more than 3 "
        "models or 512 MiB of weights were built",
    ] * 3
    assert all(m["trained"] is not True or m["name"] == "best" for m in record["models"])


def test_the_tracker_uses_the_torch_it_captured_and_stop_restores_torch(tracked, tmp_path):
    namespace = run_student(tmp_path, """
        def run():
            model = AE()
            fit(model, optimizer=False)
            torch.no_grad = None  # a student monkeypatching torch after training
            nn.Module.named_parameters = lambda self, *a, **k: iter(())

        run()
    """)
    try:
        tracker = tracking.stop()
        assert nn.Module.__init__ is tracking._MODULE_INIT
        [built] = [b for b in tracker.built if b.variable() == "model"]
        assert built.trained() == (True, "weights_changed")
    finally:
        torch.no_grad = tracking._NO_GRAD
        nn.Module.named_parameters = tracking._NAMED_PARAMETERS


def test_select_prefers_a_trained_model_that_fits_over_a_preferred_untrained_name():
    layers = [{"path": "0", "type": "Conv2d", "hyper": {"in_channels": 1, "out_channels": 16, "kernel_size": [3, 3]}},
              {"path": "1", "type": "Linear", "hyper": {"in_features": 800, "out_features": 10}}]
    fnn = [{"path": "0", "type": "Linear", "hyper": {"in_features": 784, "out_features": 10}}]
    candidates = [
        {"id": "m0", "name": "model", "origin": "instance", "class_name": "Net", "modules": layers,
         "trainable_parameters": 12_810, "trained": False, "trained_how": "never_used", "bound": True},
        {"id": "m1", "name": "tmp", "origin": "instance", "class_name": "Sequential", "modules": layers[:1],
         "trainable_parameters": 160, "trained": False, "trained_how": "unchanged", "bound": True},
        {"id": "m2", "name": "fnn", "origin": "instance", "class_name": "FNN", "modules": fnn,
         "trainable_parameters": 7_850, "trained": True, "trained_how": "optimizer", "bound": True},
        {"id": "m3", "name": "cnn", "origin": "instance", "class_name": "Net", "modules": layers,
         "trainable_parameters": 12_810, "trained": True, "trained_how": "optimizer", "bound": True},
    ]
    chosen, note = select_model(candidates, ("model", "Net"), layers, 12_810)
    assert chosen["id"] == "m3"
    assert note == ("graded `cnn` (an instance of Net, trained: an optimizer stepped it); `model` (an untrained "
                    "copy) passed over")
    # Without a trained one that fits, the preferred name still decides among equals.
    untrained = [dict(c, trained=False, trained_how="never_used") for c in candidates]
    chosen, note = select_model(untrained, ("model", "Net"), layers, 12_810)
    assert (chosen["id"], note) == ("m0", "graded `model` (an instance of Net, not trained: it was never called "
                                          "and no optimizer stepped it)")


def test_probe_json_with_an_unknown_training_record_is_refused():
    entry = {"id": "m0", "name": "model", "origin": "instance", "class_name": "AE", "modules": [],
             "layer_shapes": [], "trained": True, "trained_how": "magic"}
    record = {"format": 1, "models": [entry], "losses": [], "optimizers": [], "figures": [], "namespace_errors": []}
    with pytest.raises(ContractError, match=r"models\[0\]\.trained_how is 'magic', expected one of optimizer, "):
        ProbeRecord.from_json(record)
    entry.update(trained_how="optimizer", built_at={"file": "q1.py", "line": "14", "function": "f", "label": "x"})
    with pytest.raises(ContractError, match=r"models\[0\]\.built_at\.line is str, expected int"):
        ProbeRecord.from_json(record)


BOOTSTRAPPED = """
import json, sys
from harness.probes import bootstrap, probe
config = json.loads(sys.argv[1])
bootstrap.install(config)
exec(compile(open(sys.argv[2]).read(), sys.argv[2], "exec"), {"__name__": "__main__"})
record = probe.run(config, {"__name__": "__main__"})
print(json.dumps([[m["name"], m["trained"], m["built_at"]["label"]] for m in record["models"]]))
"""


def test_the_bootstrap_installs_the_tracker_before_the_students_code(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(CLASSES + "\ndef main():\n    ae = AE()\n    fit(ae)\n\n\nmain()\n", encoding="utf-8")
    config = {"artifacts": str(tmp_path / "artifacts"), "workspace": str(tmp_path), "input_shapes": [[8]],
              "threads": 1}
    done = subprocess.run([sys.executable, "-c", BOOTSTRAPPED, json.dumps(config), str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    line = line_of(script, "ae = AE()")
    assert json.loads(done.stdout.splitlines()[-1]) == [["ae", True, f"AE() built in main, main.py line {line}"]]


def test_a_model_rebound_at_top_level_is_described_by_where_it_was_built(tracked, tmp_path):
    namespace = run_student(tmp_path, """
        for seed in (1, 2):
            torch.manual_seed(seed)
            model = AE()
            fit(model)
        del model
    """, name="runs.py")
    record = probe_locals(tmp_path, namespace)
    first = record["models"][0]
    assert (first["name"], first["bound"], first["trained"]) == ("model", False, True)
    line = line_of(tmp_path / "runs.py", "model = AE()")
    _, note = select_model(record["models"], ("model",))
    assert note == (f"graded `model`, built at top level in runs.py (line {line}) and no longer bound to a name "
                    "(an instance of AE, trained: an optimizer stepped it)")


NESTED = """
class Head(nn.Module):
    def __init__(self, encoder, classes=10):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(2, classes)

    def forward(self, x):
        return self.fc(self.encoder(x))


class Encoder(nn.Module):
    def __init__(self, latent=2):
        super().__init__()
        self.fc = nn.Linear(8, latent)

    def forward(self, x):
        return self.fc(x)
"""


def test_a_module_passed_to_a_constructor_is_recorded_as_its_own_construction(tracked, tmp_path):
    """``Head(Encoder(2))``: the encoder's construction (class and arguments) is the argument's record, nested; so
    are torch.nn's own classes, a part another model built (``Head(ae.encoder)``) and a ``copy.deepcopy`` of a
    recorded encoder (built the same way)."""
    namespace = run_student(tmp_path, NESTED + """
import copy
head = Head(Encoder(latent=2), classes=3)
sequential = Head(nn.Sequential(nn.Linear(8, 2)))
copied = Head(copy.deepcopy(head.encoder))
ae = AE()
part = Head(ae.encoder)
""")
    record = probe_locals(tmp_path, namespace)
    ProbeRecord.from_json(record)  # the nested records are the contract's
    models = by_name(record)
    encoder = {"__gradebench_module__": {"class_name": "Encoder", "library": None, "args": [2], "kwargs": {}}}
    assert models["head"]["constructor"] == {"args": [encoder, 3], "kwargs": {}}
    assert models["copied"]["constructor"] == {"args": [encoder, 10], "kwargs": {}}
    linear = {"class_name": "Linear", "library": "torch.nn", "args": [8, 2, True, None, None], "kwargs": {}}
    sequential = {"class_name": "Sequential", "library": "torch.nn",
                  "args": [{"__gradebench_module__": linear}], "kwargs": {}}
    assert models["sequential"]["constructor"] == {"args": [{"__gradebench_module__": sequential}, 10], "kwargs": {}}
    layers = models["part"]["constructor"]["args"][0]["__gradebench_module__"]["args"]  # AE's nn.Sequential(...)
    assert [layer["__gradebench_module__"]["class_name"] for layer in layers] == ["Linear", "ReLU", "Linear"]
    tracking.stop()
    assert "__deepcopy__" not in vars(nn.Module)  # stop() gives copy.deepcopy back its own way


def test_a_module_built_by_something_untracked_stays_unrecordable(tracked, tmp_path):
    """A part built with an argument that is no plain value, a module loaded whole, a dict forged to look like a
    construction, and constructions nested deeper than the cap: none can be built again, so none is recorded."""
    namespace = run_student(tmp_path, NESTED + """
import io
ae = AE()
fit(ae)
class OnDevice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2, device=torch.device("cpu"))  # a torch.device: no plain value

inner = Head(OnDevice().fc)
buffer = io.BytesIO()
torch.save(nn.Linear(8, 2), buffer)  # unpickled: no constructor runs
buffer.seek(0)
loaded = Head(torch.load(buffer, weights_only=False))
class Configured(Encoder):
    def __init__(self, config):
        super().__init__()

forged = Configured({"__gradebench_module__": {"class_name": "Encoder", "library": None, "args": [], "kwargs": {}}})
deep = Head(nn.Sequential(nn.Sequential(nn.Sequential(nn.Linear(8, 2)))))
""")
    models = by_name(probe_locals(tmp_path, namespace))
    for name in ("inner", "loaded", "forged", "deep"):
        assert "constructor" not in models[name], name
