"""Tests of the reference calibration, on small synthetic data with the fast profile."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness import calibrate as calibration
from harness.calibrate import PROFILES, TASKS, calibrate, default_output, read_calibration, summary_line
from harness.data import prepare
from harness.errors import DataError, HarnessError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small synthetic MNIST, FashionMNIST and SIGNS."""
    folder = tmp_path_factory.mktemp("calibration-data")
    prepare(folder, source="synthetic", small=True, seed=0, hidden_seed=7)
    return folder


@pytest.fixture(scope="module")
def fast_run(data_dir: Path) -> tuple[dict, list[str], list[set[str]]]:
    """One fast calibration: its result, its progress lines, and the task ids on disk at each line."""
    lines: list[str] = []
    on_disk: list[set[str]] = []

    def progress(line: str) -> None:
        lines.append(line)
        on_disk.append(set(json.loads(default_output(data_dir, "fast").read_text())["tasks"]))

    result = calibrate(data_dir, profile="fast", seed=0, threads=1, on_progress=progress)
    return result, lines, on_disk


def test_every_task_is_recorded_without_errors(fast_run):
    result, _, _ = fast_run
    assert list(result["tasks"]) == list(TASKS)
    errors = {task: entry["error"] for task, entry in result["tasks"].items() if "error" in entry}
    assert errors == {}


def test_the_json_is_written_after_every_task_and_reloads(fast_run, data_dir):
    result, lines, on_disk = fast_run
    assert len(lines) == len(TASKS)
    assert [len(ids) for ids in on_disk] == list(range(1, len(TASKS) + 1))  # one more task per progress line
    assert read_calibration(default_output(data_dir, "fast")) == result
    assert not list(default_output(data_dir, "fast").parent.glob("*.partial"))


def test_header_describes_version_machine_and_data(fast_run):
    result, _, _ = fast_run
    assert result["profile"] == "fast" and result["gradebench_version"]
    assert result["machine"]["threads"] == 1 and result["machine"]["torch"]
    assert result["data"]["mnist"]["source"] == "synthetic" and result["data"]["mnist"]["seed"] == 0
    assert result["data"]["mnist"]["counts"]["train"] == 6_000
    assert "hidden_seed" not in json.dumps(result["data"])  # the secret stays secret


def test_timings_and_epochs_are_consistent(fast_run):
    result, _, _ = fast_run
    for task, entry in result["tasks"].items():
        assert entry["train_seconds"] >= 0 and entry["wall_seconds"] >= entry["train_seconds"] - 0.01, task
        if entry["epochs"] and task != "mnist-autoencoder":
            assert entry["seconds_per_epoch"] == pytest.approx(entry["train_seconds"] / entry["epochs"], abs=2e-3)
    assert result["tasks"]["mnist-cnn"]["epochs"] == PROFILES["fast"].classifier_epochs
    assert result["tasks"]["idl-100-labels"]["epochs"] == PROFILES["fast"].few_labels_epochs


def test_classifier_metrics_are_in_range(fast_run):
    tasks = fast_run[0]["tasks"]
    for task in ("mnist-ff", "mnist-ff-logits", "mnist-cnn", "mnist-linear-mistake", "mnist-softmax-nll-mistake",
                 "idl-classifier", "idl-100-labels", "idl-frozen-transfer", "idl-finetune", "mle-signs-cnn"):
        m = tasks[task]["metrics"]
        for key in ("test_accuracy", "hidden_accuracy"):
            assert 0.0 <= m[key] <= 1.0, (task, key, m[key])
        assert all(0.0 <= a <= 1.0 for a in m["hidden_per_class_accuracy"]), task
    assert tasks["mnist-ff"]["parameters"] == 109_386
    assert tasks["mnist-cnn"]["metrics"]["parameters"] == 12_810
    assert len(tasks["mnist-cnn"]["metrics"]["hidden_per_class_accuracy"]) == 10
    assert len(tasks["mle-signs-cnn"]["metrics"]["hidden_per_class_accuracy"]) == 6
    assert tasks["mnist-cnn"]["metrics"]["test_accuracy"] > 0.5  # it learned something in the fast profile


def test_few_label_tasks_record_curves_and_the_frozen_encoder(fast_run):
    tasks = fast_run[0]["tasks"]
    epochs = PROFILES["fast"].few_labels_epochs
    scratch = tasks["idl-100-labels"]
    assert len(scratch["curves"]["train_accuracy"]) == len(scratch["curves"]["eval_accuracy"]) == epochs
    assert scratch["metrics"]["final_train_accuracy"] > scratch["metrics"]["test_accuracy"]  # over-fits 100 images
    assert tasks["idl-frozen-transfer"]["metrics"]["encoder_unchanged"] is True
    assert tasks["idl-classifier-decoder"]["metrics"]["encoder_unchanged"] is True
    assert "autoencoder_hidden_l1" in tasks["idl-classifier-decoder"]["metrics"]
    assert tasks["idl-frozen-transfer"]["parameters"] < tasks["idl-finetune"]["parameters"]  # only the head trains


def test_reconstruction_metrics_are_in_range(fast_run):
    tasks = fast_run[0]["tasks"]
    latents = [str(k) for k in PROFILES["fast"].autoencoder_latents]
    ae = tasks["mnist-autoencoder"]["metrics"]["hidden_mse"]
    pca = tasks["mnist-pca"]["metrics"]["hidden_mse"]
    assert list(ae) == list(pca) == latents
    assert all(0.0 < v < 0.25 for v in (*ae.values(), *pca.values()))
    assert [pca[k] for k in latents] == sorted((pca[k] for k in latents), reverse=True)  # more components, less error
    for task in ("idl-conv-autoencoder", "idl-classifier-decoder"):
        m = tasks[task]["metrics"]
        assert 0.0 < m["hidden_l1"] < 1.0 and 0.0 < m["hidden_mse"] < 1.0, task
    vae = tasks["mnist-vae"]["metrics"]
    assert vae["test_loss"] == pytest.approx(vae["test_bce"] + vae["test_kl"], rel=1e-6)
    assert 0 < vae["test_bce"] < 784 * math.log(2) * 1.5 and vae["test_kl"] >= 0
    assert 0.0 < tasks["mle-fashion-conv-ae"]["metrics"]["hidden_mse"] < 4.0  # [-1, 1] scale
    pca_ae = tasks["mle-pca-ae"]["metrics"]
    assert len(pca_ae["principal_angles_deg"]) == 10
    assert all(0.0 <= a <= 90.0 for a in pca_ae["principal_angles_deg"])
    assert pca_ae["pca_hidden_mse"] < pca_ae["hidden_mse"] * 1.05


def test_progress_lines_are_readable(fast_run):
    _, lines, _ = fast_run
    cnn = next(line for line in lines if line.startswith("mnist-cnn:"))
    assert "% test accuracy in" in cnn and cnn.endswith(" s")


def test_a_failing_task_is_recorded_and_the_others_still_run(data_dir, tmp_path, monkeypatch):
    def explode(ctx):
        raise RuntimeError("out of memory, pretend")

    monkeypatch.setitem(TASKS, "mnist-ff-logits", explode)
    out = tmp_path / "partial.json"
    lines: list[str] = []
    result = calibrate(
        data_dir, profile="fast", out=out, threads=1, tasks=["mnist-ff", "mnist-ff-logits", "mnist-pca"],
        on_progress=lines.append,
    )
    assert result["tasks"]["mnist-ff-logits"] == {"error": "RuntimeError: out of memory, pretend",
                                                  "wall_seconds": result["tasks"]["mnist-ff-logits"]["wall_seconds"]}
    assert "test_accuracy" in result["tasks"]["mnist-ff"]["metrics"]
    assert "hidden_mse" in result["tasks"]["mnist-pca"]["metrics"]
    assert json.loads(out.read_text())["tasks"]["mnist-ff-logits"]["error"].startswith("RuntimeError")
    assert "mnist-ff-logits: failed: RuntimeError: out of memory, pretend" in lines


def test_a_failed_shared_model_fails_the_tasks_that_need_it(data_dir, tmp_path, monkeypatch):
    calls = []

    def broken(ctx):
        calls.append(1)
        raise ValueError("diverged")

    monkeypatch.setattr(calibration, "_train_conv_autoencoder", broken)
    result = calibrate(
        data_dir, profile="fast", out=tmp_path / "c.json", threads=1,
        tasks=["idl-conv-autoencoder", "idl-frozen-transfer", "idl-finetune"],
    )
    for task in ("idl-conv-autoencoder", "idl-frozen-transfer", "idl-finetune"):
        error = result["tasks"][task]["error"]
        assert "idl-conv-autoencoder, which could not be trained: ValueError: diverged" in error
    assert len(calls) == 1  # tried once, not once per dependent task


def test_unknown_profile_or_task_and_missing_data_are_harness_errors(data_dir, tmp_path):
    with pytest.raises(HarnessError, match="unknown calibration profile 'slow'; known: fast, full"):
        calibrate(data_dir, profile="slow")
    with pytest.raises(HarnessError, match="unknown calibration task"):
        calibrate(data_dir, profile="fast", tasks=["mnist-gan"])
    with pytest.raises(DataError, match="gradebench data prepare"):
        calibrate(tmp_path / "empty", profile="fast")
    with pytest.raises(HarnessError, match="run `gradebench calibrate` first"):
        read_calibration(tmp_path / "none.json")


def test_summary_line_for_each_kind_of_record():
    assert summary_line("t", {"error": "ValueError: x"}) == "t: failed: ValueError: x"
    assert summary_line("t", {"metrics": {"test_accuracy": 0.978}, "train_seconds": 12.34}) == (
        "t: 97.8% test accuracy in 12.3 s"
    )
    assert "MSE 0.0500 (latent 2) to 0.0100 (latent 20)" in summary_line(
        "t", {"metrics": {"hidden_mse": {"2": 0.05, "20": 0.01}}, "train_seconds": 1.0}
    )


def test_the_mnist_classifiers_are_trained_with_the_course_templates_recipe(fast_run) -> None:
    """Bars relative to the reference are measured against what the template reaches, not Adam's result."""
    result, _, _ = fast_run
    for task in ("mnist-ff", "mnist-cnn"):
        record = result["tasks"][task]
        assert {k: record["settings"][k] for k in ("optimizer", "lr", "momentum", "batch_size", "normalisation")} == {
            "optimizer": "sgd", "lr": 0.002, "momentum": 0.9, "batch_size": 64, "normalisation": "symmetric"}
        assert record["epochs"] == 4
    assert result["profile_settings"]["classifier_epochs"] == 4
