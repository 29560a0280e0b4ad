"""shared_weights: a frozen encoder stays put (BatchNorm statistics too); an initialising encoder is found and measured."""

from __future__ import annotations

import torch
from torch import nn

from harness.checks import run_check
from tests.checks.conftest import Spec
from tests.checks.fabricate import candidate, context, probe_record


def encoder() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 12))


def trained(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    enc = encoder()
    enc[1].running_mean += 0.5  # as after training
    return enc, nn.Sequential(nn.ReLU(), nn.Linear(12, 10))


def state(*parts: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v for i, part in enumerate(parts) for k, v in part.state_dict().items()}


def classifier_task(root, enc, head):
    model = candidate(root, "classifier", state(enc, head))
    return context(root, probe_record(models=[model]), task_id="clf", model="classifier")


def decoder_task(root, clf_ctx, enc, *, source_text: str = "", extra=(), chosen: str | None = "clf_decoder"):
    decoder = nn.Sequential(nn.Linear(12, 8 * 26 * 26), nn.ReLU())
    models = [candidate(root, "clf_decoder", state(enc, decoder)), *extra]
    return context(root, probe_record(models=models), task_id="clf-dec", model=chosen,
                   related={"clf": clf_ctx}, source_text=source_text)


FROZEN = Spec("shared_weights", params={"task": "clf", "mode": "frozen"}, points=2)


def test_a_frozen_encoder_passes_even_beside_a_reloaded_classifier(tmp_path) -> None:
    enc, head = trained(0)
    clf = classifier_task(tmp_path / "clf", enc, head)
    reloaded = candidate(tmp_path / "dec", "pretrained_classifier", state(enc, head))
    result = run_check(decoder_task(tmp_path / "dec", clf, enc, extra=[reloaded]), FROZEN)
    assert result.status == "passed", result.message
    assert result.details["model"] == "clf_decoder" and result.details["tensors"] == 8


def test_moved_weights_of_a_frozen_encoder_fail_and_name_trainable(tmp_path) -> None:
    enc, head = trained(0)
    clf = classifier_task(tmp_path / "clf", enc, head)
    moved = encoder()
    moved.load_state_dict(enc.state_dict())
    with torch.no_grad():
        moved[0].weight += 0.12
    result = run_check(decoder_task(tmp_path / "dec", clf, moved, source_text="encoder.trainable = False"), FROZEN)
    assert (result.status, result.score) == ("failed", 0.0)
    assert result.message == (
        "the encoder's weights changed (max change 0.12) although it should be frozen: `trainable = False` does "
        "nothing in PyTorch; set requires_grad_(False) on its parameters"
    )
    reloaded = candidate(tmp_path / "dec2", "pretrained_classifier", state(enc, head))  # untouched: not what was trained
    plain = run_check(decoder_task(tmp_path / "dec2", clf, moved, extra=[reloaded], chosen=None), FROZEN)
    assert plain.message.endswith("set requires_grad_(False) on its parameters and give the optimizer only the decoder's")


def test_moved_batchnorm_statistics_get_half_with_eval_advice(tmp_path) -> None:
    enc, head = trained(0)
    clf = classifier_task(tmp_path / "clf", enc, head)
    moved = encoder()
    moved.load_state_dict(enc.state_dict())
    moved[1].running_var += 0.031
    result = run_check(decoder_task(tmp_path / "dec", clf, moved), FROZEN)
    assert (result.status, result.score) == ("failed", 1.0)
    assert result.message == (
        "the encoder's BatchNorm running statistics changed during training (max change 0.031): "
        "call .eval() on the frozen encoder"
    )


def test_initialised_encoder_within_and_beyond_max_change(tmp_path) -> None:
    enc, decoder_head = trained(0)
    autoencoder = classifier_task(tmp_path / "ae", enc, decoder_head)  # an encoder followed by something else
    spec = Spec("shared_weights", params={"task": "clf", "mode": "initialised", "max_change": 0.5})
    tuned = encoder()
    tuned.load_state_dict(enc.state_dict())
    with torch.no_grad():
        for p in tuned.parameters():
            p.mul_(1.1)  # fine-tuning moved every weight by 10%
    assert run_check(decoder_task(tmp_path / "tuned", autoencoder, tuned), spec).status == "passed"
    fresh, _ = trained(1)  # a new random encoder: no relation to the trained one
    result = run_check(decoder_task(tmp_path / "fresh", autoencoder, fresh), spec)
    assert result.status == "failed"
    assert result.message.startswith("the encoder of `clf_decoder` does not start from the trained weights of task 'clf': it is ")
    assert result.message.endswith(
        "away from them (at most 50% expected after fine-tuning): load the trained encoder's state_dict before "
        "training, rather than starting from a fresh one"
    )


def test_no_model_holds_the_earlier_weights(tmp_path) -> None:
    enc, head = trained(0)
    clf = classifier_task(tmp_path / "clf", enc, head)
    other = candidate(tmp_path / "dec", "mlp", {"0.weight": torch.ones(5, 3), "0.bias": torch.ones(5)})
    ctx = context(tmp_path / "dec", probe_record(models=[other]), task_id="clf-dec", model="mlp", related={"clf": clf})
    result = run_check(ctx, FROZEN)
    assert result.message == (
        "none of the 1 models found after this task's code ran holds the weights of the model of task 'clf' (Classifier): "
        "build this task's model on that trained encoder (load its state_dict)"
    )
