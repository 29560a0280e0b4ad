"""Checks in a student's self-check from a bundle: the reference's description, never its code."""

from __future__ import annotations

from reference.classifiers import CNN
from reference.mistakes import CNNWithoutSecondPool

from harness.checks import run_check
from tests.checks.conftest import Spec, reference_layers

ALSO = Spec("architecture_matches", params={"also": ["reference.mistakes:CNNWithoutSecondPool"]})


def test_forward_consistent_says_it_is_not_available_in_the_self_check(make_context, digits) -> None:
    images, _ = digits
    ctx = make_context(CNN(), images=images, reference_code=False)  # a bundle: no reference network to rerun
    result = run_check(ctx, Spec("forward_consistent"))
    assert (result.status, result.score) == ("skipped", 0.0)
    assert result.message == (
        "not available in the self-check: recomputing your predictions from your weights needs the assignment's "
        "network, which only the course's grader has: it is checked when your submission is graded"
    )


def test_an_accepted_network_is_compared_with_the_layers_the_bundle_publishes(make_context) -> None:
    published = {"reference.mistakes:CNNWithoutSecondPool": reference_layers(CNNWithoutSecondPool())}
    ctx = make_context(CNNWithoutSecondPool(), reference=CNN(), reference_code=False, reference_accepted=published)
    ctx.reference_model = None  # what the pipeline gives from a bundle: the layers only
    result = run_check(ctx, ALSO)
    assert (result.status, result.details["matched"]) == ("passed", "reference.mistakes:CNNWithoutSecondPool")
    missing = make_context(CNNWithoutSecondPool(), reference=CNN(), reference_code=False, reference_accepted={})
    missing.reference_model = None
    result = run_check(missing, ALSO)
    assert result.status == "error"
    assert result.message == (
        "RuntimeError: the self-check bundle has no description of reference.mistakes:CNNWithoutSecondPool (task cnn)"
    )
