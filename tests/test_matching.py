"""The matcher: which file of a submission serves which task, in which order, and why (no sandbox, no runs)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from harness.checks import known_checks
from harness.errors import HarnessError
from harness.matching import check_pins, name_numbers, parse_pins, plan_sources, read_code_file
from harness.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dl2025():
    return load_rubric(ROOT / "rubrics" / "dl2025-a2.yaml", known_checks=known_checks())


@pytest.fixture(scope="module")
def idl():
    return load_rubric(ROOT / "rubrics" / "idl-ex2.yaml", known_checks=known_checks())


def notebook(*cells: str) -> str:
    """A notebook's JSON: cells starting with ``#md`` are markdown, the rest code."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(c.removeprefix("#md").strip()) if c.startswith("#md") else nbformat.v4.new_code_cell(c)
        for c in cells
    ]
    return nbformat.writes(nb)


FF = notebook("import torch.nn as nn", "class Net(nn.Module):\n    pass", "model = Net()\ncriterion = nn.NLLLoss()")
CNN = notebook("class Net(nn.Module):\n    pass", "model = Net()\nloss_fn = nn.NLLLoss()")
AE = notebook("class Autoencoder(nn.Module):\n    pass", "model = Autoencoder()", "pca = PCA(2)")
VAE = notebook("class VAE(nn.Module):\n    pass", "def loss_function(recon, x, mu, logvar):\n    return 0",
               "def plot_generated_samples(model):\n    z = torch.randn(16, 2)")


def files_of(plan):
    return {t.task: t.file for t in plan.tasks}


# -- the brief's layouts -------------------------------------------------------------------------------------


def test_odd_names_in_sub_folders_are_found_by_content(dl2025) -> None:
    plan = plan_sources(dl2025, {
        "feedForwardMNIST_1.ipynb": FF,
        "cnn_final_v2.ipynb": CNN,
        "autoencoder_ff_2.ipynb": AE,
        "assignment_2/vae.ipynb": VAE,
    })
    assert files_of(plan) == {
        "ff": "feedForwardMNIST_1.ipynb",
        "cnn": "cnn_final_v2.ipynb",
        "ae": "autoencoder_ff_2.ipynb", "ae-runs": "autoencoder_ff_2.ipynb", "pca": "autoencoder_ff_2.ipynb",
        "latent-size": "autoencoder_ff_2.ipynb",
        "vae": "assignment_2/vae.ipynb", "vae-samples": "assignment_2/vae.ipynb",
    }
    # each file runs once, in the order of the first task it serves
    assert [(s.file, s.tasks) for s in plan.steps] == [
        ("feedForwardMNIST_1.ipynb", ("ff",)),
        ("cnn_final_v2.ipynb", ("cnn",)),
        ("autoencoder_ff_2.ipynb", ("ae", "ae-runs", "pca", "latent-size")),
        ("assignment_2/vae.ipynb", ("vae", "vae-samples")),
    ]
    assert plan.source("vae").reason == "assignment_2/vae.ipynb is named as the rubric asks (vae.ipynb)"
    assert plan.source("cnn").reason == "cnn_final_v2.ipynb was chosen by its content (its name says cnn)"
    assert plan.source("ff").reason.startswith("feedForwardMNIST_1.ipynb was chosen by its content (its name carries part")
    assert "its name says feedforward" in plan.source("ff").reason


def test_a_cnn_as_a_class_module_and_a_training_script(dl2025) -> None:
    plan = plan_sources(dl2025, {
        "part1_feedforward.ipynb": FF,
        "cnn.py": "import torch.nn as nn\n\nclass CNN(nn.Module):\n    def forward(self, x):\n        return x\n",
        "train.py": "from cnn import CNN\nimport torch\nmodel = CNN()\nfor epoch in range(4):\n    pass\n",
    })
    assert [(s.file, s.tasks, s.modules) for s in plan.steps] == [
        ("part1_feedforward.ipynb", ("ff",), ()),
        ("train.py", ("cnn",), ("cnn.py",)),
    ]
    cnn = plan.source("cnn")
    assert (cnn.file, cnn.run) == ("cnn.py", "train.py")
    assert cnn.reason == "cnn.py was chosen by its content (its name says cnn, it defines CNN); run through train.py, which imports it"
    assert plan.helpers == ("cnn.py",)  # never run on its own
    # Part 2 is absent: its tasks say so, naming what was there
    assert plan.source("vae").reason == (
        "vae.ipynb was not found in your submission (found: cnn.py, part1_feedforward.ipynb, train.py)"
    )
    assert not plan.source("ae").found and plan.step_of("ae") is None


def test_a_variable_named_like_a_probe_function_is_no_evidence(dl2025) -> None:
    """The course template's ``loss_function = nn.NLLLoss()`` does not make the feed-forward notebook the VAE's."""
    plan = plan_sources(dl2025, {"part1_ff.ipynb": notebook("loss_function = nn.NLLLoss()")})
    assert plan.source("vae").reason == "vae.ipynb was not found in your submission (found: part1_ff.ipynb)"
    assert plan.matched == ("ff",)


def test_one_notebook_answering_every_question(idl) -> None:
    sol = notebook(
        "#md # Exercise 2", "import torch",
        "#md ## Question 1: convolutional autoencoder", "autoencoder = AE()",
        "#md ## Question 2", "classifier = Classifier()\nloss = nn.CrossEntropyLoss()",
        "#md ## Question 3", "clf_autoencoder = 1",
        "#md ## Question 4", "clf_100 = 1",
        "#md ## Question 5", "finetuned_classifier = 1",
    )
    plan = plan_sources(idl, {"Ex2Sol.ipynb": sol})
    assert [(s.file, s.tasks) for s in plan.steps] == [
        ("Ex2Sol.ipynb", ("autoencoder", "classifier", "classifier-decoding", "few-labels", "fine-tuning")),
    ]
    assert plan.source("few-labels").reason.startswith("Ex2Sol.ipynb was chosen by its content (a heading says 'Question 4'")


def test_a_main_script_drives_trainers_and_helpers_are_not_run(idl) -> None:
    files = {
        "main.py": "".join(f"import trainers.q{i} as q{i}\n" for i in range(1, 6))
        + "ae = q1.run()\nclf = q2.run(ae)\nclf_ae = q3.run(clf)\nclf_100 = q4.run()\nfinetuned_classifier = q5.run(ae)\n",
        "models/encoder.py": "import torch.nn as nn\nclass Encoder(nn.Module):\n    pass\n",
        "models/__init__.py": "",
        "utils.py": "import torch\ndevice = torch.device('cpu')\ndef accuracy(model, loader):\n    return 0.0\n",
        **{f"trainers/q{i}.py": "from models.encoder import Encoder\nfrom utils import accuracy\n\ndef run(*args):\n    return Encoder()\n"
           for i in range(1, 6)},
    }
    plan = plan_sources(idl, files)
    [step] = plan.steps
    assert step.file == "main.py" and step.tasks == ("autoencoder", "classifier", "classifier-decoding", "few-labels", "fine-tuning")
    assert set(step.modules) == {f"trainers/q{i}.py" for i in range(1, 6)} | {"models/encoder.py", "utils.py"}
    q1 = plan.source("autoencoder")
    assert (q1.file, q1.run) == ("trainers/q1.py", "main.py")
    assert q1.reason == "trainers/q1.py is named as the rubric asks (q1.py); run through main.py, which imports it"
    assert "models/encoder.py" in plan.helpers and "utils.py" in plan.helpers and "main.py" not in plan.helpers
    # static checks read the task's own file first, then everything the run imports
    assert plan.static_files("classifier")[:2] == ("trainers/q2.py", "main.py")
    assert "utils.py" in plan.static_files("classifier")


def test_notebooks_per_question_and_one_for_two_questions(idl) -> None:
    plan = plan_sources(idl, {
        "ex2_q1.ipynb": notebook("autoencoder = 1"),
        "ex2_q2_and_q3.ipynb": notebook("classifier = 1", "clf_autoencoder = 1"),
        "ex2_q4.ipynb": notebook("clf_100 = 1"),
        "ex2_q5.ipynb": notebook("finetuned_classifier = 1"),
    })
    assert [(s.file, s.tasks) for s in plan.steps] == [
        ("ex2_q1.ipynb", ("autoencoder",)),
        ("ex2_q2_and_q3.ipynb", ("classifier", "classifier-decoding")),
        ("ex2_q4.ipynb", ("few-labels",)),
        ("ex2_q5.ipynb", ("fine-tuning",)),
    ]


def test_dotted_task_numbers_in_file_names(dl2025) -> None:
    plan = plan_sources(dl2025, {
        "1.1.ipynb": FF, "1.3.ipynb": CNN, "2.1.py": "model = Autoencoder()\ntrain(model)\n",
        "2.3.ipynb": notebook("pca = 1"),
    })
    assert files_of(plan)["ff"] == "1.1.ipynb" and files_of(plan)["cnn"] == "1.3.ipynb"
    assert files_of(plan)["ae"] == "2.1.py" and files_of(plan)["pca"] == "2.3.ipynb"
    assert plan.source("pca").reason == "2.3.ipynb was chosen by its content (its name carries the number 2.3)"


def test_scripts_run_in_question_order_whatever_their_names_sort_as(idl) -> None:
    files = {f"question{i}.py": f"x = train({i})\n" for i in (5, 3, 1, 4, 2)}
    plan = plan_sources(idl, files)
    assert [s.file for s in plan.steps] == [f"question{i}.py" for i in range(1, 6)]


# -- exact names, pins, undecided ----------------------------------------------------------------------------


def test_an_exact_name_wins_over_content(dl2025) -> None:
    plan = plan_sources(dl2025, {"CNNMNIST.ipynb": CNN, "cnn_old.ipynb": CNN, "sub/cnnmnist.IPYNB": CNN})
    assert plan.source("cnn").file == "CNNMNIST.ipynb"
    assert [s.file for s in plan.steps] == ["CNNMNIST.ipynb"]
    assert plan.unused == ("cnn_old.ipynb", "sub/cnnmnist.IPYNB")


def test_a_file_the_rubric_names_for_one_task_serves_no_other_by_content(dl2025) -> None:
    """CNNMNIST.ipynb defining a loss_function does not become the VAE notebook: Part 2 is missing."""
    plan = plan_sources(dl2025, {"CNNMNIST.ipynb": notebook("def loss_function(a, b):\n    return 0"), "feedForwardMNIST.ipynb": FF})
    assert not plan.source("vae").found
    assert plan.source("vae").reason == "vae.ipynb was not found in your submission (found: CNNMNIST.ipynb, feedForwardMNIST.ipynb)"


def test_two_equally_good_files_are_left_for_a_ta(dl2025) -> None:
    plan = plan_sources(dl2025, {"cnn_a.ipynb": CNN, "cnn_b.ipynb": CNN, "feedForwardMNIST.ipynb": FF})
    cnn = plan.source("cnn")
    assert not cnn.found and cnn.candidates == ("cnn_a.ipynb", "cnn_b.ipynb")
    assert cnn.reason == "could not tell which of cnn_a.ipynb, cnn_b.ipynb is task cnn (1.3 CNN on MNIST); a TA can pin it"
    pinned = plan_sources(dl2025, {"cnn_a.ipynb": CNN, "cnn_b.ipynb": CNN}, pins={"cnn": "cnn_b.ipynb"})
    assert (pinned.source("cnn").file, pinned.source("cnn").reason) == ("cnn_b.ipynb", "cnn_b.ipynb was pinned to this task by a TA")
    assert [s.file for s in pinned.steps] == ["cnn_b.ipynb"]


def test_a_pin_overrides_an_exact_name(dl2025) -> None:
    plan = plan_sources(dl2025, {"CNNMNIST.ipynb": CNN, "final/cnn.ipynb": CNN}, pins={"cnn": "final/cnn.ipynb"})
    assert plan.source("cnn").run == "final/cnn.ipynb"


def test_weak_evidence_is_not_enough(dl2025) -> None:
    """A notebook that only uses the name ``model`` and an NLLLoss is no task's: nothing is guessed."""
    plan = plan_sources(dl2025, {"scratch.ipynb": notebook("model = Net()\nloss = nn.NLLLoss()")})
    assert plan.matched == () and plan.steps == ()
    assert plan.unused == ("scratch.ipynb",)


# -- what a file is ------------------------------------------------------------------------------------------


def test_helper_modules_are_told_from_scripts() -> None:
    assert not read_code_file("Classes.py", "import torch.nn as nn\nclass AE(nn.Module):\n    pass\n").works
    assert not read_code_file("u.py", '"""Helpers."""\nimport torch\nDEVICE = torch.device("cpu")\nN = 3\n').works
    assert read_code_file("t.py", "from cnn import CNN\nmodel = CNN()\ntrain(model)\n").works
    assert read_code_file("m.py", "import q1\nae = q1.run()\n").works
    assert read_code_file("g.py", "def run():\n    pass\n\nif __name__ == '__main__':\n    run()\n").works
    assert read_code_file("bad.py", "def broken(:\n").works  # it runs (and fails): graded, never silently skipped


def test_notebook_headings_and_magics() -> None:
    nb = notebook("#md ## Question 2\nSome text", "%matplotlib inline\nclass Classifier(nn.Module):\n    pass", "!pip install tqdm")
    file = read_code_file("a.ipynb", nb)
    assert file.headings == ("## Question 2",)
    assert "Classifier" in file.classes


@pytest.mark.parametrize(("stem", "numbers"), [
    ("q3", {"3"}), ("ex2_q3", {"3"}), ("2.2", {"2.2"}), ("feedForwardMNIST_1", {"1"}), ("cnn_final_v2", set()),
    ("Ex2Sol", set()), ("ex2_q2_and_q3", {"2", "3"}), ("question4", {"4"}), ("assignment_2", set()),
])
def test_numbers_in_file_names(stem, numbers) -> None:
    assert name_numbers(stem) == numbers


# -- pin files -----------------------------------------------------------------------------------------------


def test_pins_are_validated_with_clear_errors(dl2025) -> None:
    pins = parse_pins("alice:\n  cnn: final/cnn.ipynb\n", dl2025, "pins.yaml")
    assert pins.of("alice") == {"cnn": "final/cnn.ipynb"} and pins.of("bob") == {}
    with pytest.raises(HarnessError, match=r"pins.yaml: student 'alice': 'cnnn' is not an automatic task of dl2025-a2 \(did you mean 'cnn'\?\)"):
        parse_pins("alice: {cnnn: a.ipynb}", dl2025, "pins.yaml")
    with pytest.raises(HarnessError, match=r"'ff-description' is not an automatic task"):
        parse_pins("alice: {ff-description: a.ipynb}", dl2025, "pins.yaml")
    with pytest.raises(HarnessError, match="pins.yaml: student 'alice': expected {task-id: path}"):
        parse_pins("alice: final/cnn.ipynb", dl2025, "pins.yaml")
    with pytest.raises(HarnessError, match=r"pins.yaml: no student 'alcie' in this batch \(did you mean 'alice'\?\)"):
        check_pins(parse_pins("alcie: {cnn: a.ipynb}", dl2025, "pins.yaml"), {"alice": ["a.ipynb"]})
    with pytest.raises(HarnessError, match=r"student 'alice', task cnn: no file 'b.ipynb' in the submission; it holds a.ipynb, q.py"):
        check_pins(parse_pins("alice: {cnn: b.ipynb}", dl2025, "pins.yaml"), {"alice": ["a.ipynb", "q.py", "data.csv"]})
    with pytest.raises(HarnessError, match=r"'data.csv' is not a notebook or script"):
        check_pins(parse_pins("alice: {cnn: data.csv}", dl2025, "pins.yaml"), {"alice": ["a.ipynb", "data.csv"]})
    check_pins(pins, {"alice": ["final/cnn.ipynb"]})  # all fine: no error


def test_static_checks_read_the_whole_package(idl) -> None:
    """A loss defined in functions_and_utils.py counts for the notebook that imports it, and for one that does not
    (``%run`` it, or exec it): helper modules are read by every task's static checks."""
    utils = "import torch.nn.functional as F\n\ndef ae_loss(recon, x):\n    return F.l1_loss(recon, x)\n"
    imported = plan_sources(idl, {"ex2_q1.ipynb": notebook("from functions_and_utils import *", "autoencoder = AE()"),
                                  "functions_and_utils.py": utils})
    assert imported.static_files("autoencoder") == ("ex2_q1.ipynb", "functions_and_utils.py")
    ran = plan_sources(idl, {"ex2_q1.ipynb": notebook("%run functions_and_utils.py", "autoencoder = AE()"),
                             "functions_and_utils.py": utils})
    assert ran.static_files("autoencoder") == ("ex2_q1.ipynb", "functions_and_utils.py")
    assert [s.file for s in ran.steps] == ["ex2_q1.ipynb"]  # the helper itself is never run on its own
