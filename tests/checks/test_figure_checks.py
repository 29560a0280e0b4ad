"""Figure checks read from the figure descriptions: kind and title, falling curves, visible overfitting."""

from __future__ import annotations

import json

import numpy as np

from harness.checks import run_check
from tests.checks.conftest import Spec
from tests.checks.fabricate import axes, context, figure, line, probe_record, scatter

POINTS = np.random.default_rng(0).normal(size=(500, 2))


def figures_context(root, *figures_axes, suptitles=None):
    """A run that showed one figure per entry of ``figures_axes`` (each a list of axes)."""
    paths = [figure(root, n, *parts, suptitle=(suptitles or {}).get(n, "")) for n, parts in enumerate(figures_axes)]
    return context(root, probe_record(figures=paths))


def test_figure_kind_with_title_and_exclusion(tmp_path) -> None:
    ctx = figures_context(
        tmp_path,
        [axes(title="Autoencoder latent space", scatters=[scatter("", POINTS)])],
        [axes(title="PCA encoding", scatters=[scatter(str(c), POINTS[c::10]) for c in range(10)])],
        [axes(images=1)] * 20,
    )
    assert run_check(ctx, Spec("figure_kind", params={"kind": "scatter", "title": "pca"})).status == "passed"
    assert run_check(ctx, Spec("figure_kind", params={"kind": "images"})).status == "passed"
    excluded = run_check(ctx, Spec("figure_kind", params={"kind": "scatter", "count": 2, "exclude_title": "pca"}))
    assert (excluded.status, excluded.score) == ("failed", 0.5)
    assert excluded.message.startswith("the task asks for 2 2-D scatter plots; your code showed 1 (figures seen: figure 1")
    missing = run_check(ctx, Spec("figure_kind", params={"kind": "scatter3d"}))
    assert missing.message == (
        "the task asks for 1 3-D scatter plot; your code showed 0 (figures seen: "
        "figure 1 (2-D scatter plot, 'Autoencoder latent space'); figure 2 (2-D scatter plot, 'PCA encoding'); "
        "figure 3 (figure of images))"
    )


def test_figure_kind_with_a_3d_scatter_and_a_title_that_does_not_match(tmp_path) -> None:
    points = np.random.default_rng(1).normal(size=(100, 3))
    ctx = figures_context(tmp_path, [axes(title="latent space", projection="3d", scatters=[scatter("", points)])])
    assert run_check(ctx, Spec("figure_kind", params={"kind": "scatter3d"})).status == "passed"
    result = run_check(ctx, Spec("figure_kind", params={"kind": "scatter3d", "title": "vae"}))
    assert result.message.endswith("give the plot a title or labels that say what it shows (plt.title(...))")


def test_figures_without_descriptions_are_named_as_such(tmp_path) -> None:
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    ctx = context(tmp_path, probe_record(figures=["figures/0.png"]))
    result = run_check(ctx, Spec("figure_kind", params={"kind": "lines"}))
    assert result.message.startswith("your code left 1 figure, but none carries plot data the grader can read")
    none = run_check(context(tmp_path / "empty", probe_record()), Spec("figure_kind", params={"kind": "lines"}))
    assert none.message == "your code showed no figures (call plt.show() after each plot)"


def test_a_malformed_description_is_ignored(tmp_path) -> None:
    figure(tmp_path, 0, axes(lines=[line("train", [3, 2, 1])]))
    (tmp_path / "figures" / "0.json").write_text(json.dumps({"format": 1, "suptitle": 3, "axes": "lots"}))
    ctx = context(tmp_path, probe_record(figures=["figures/0.png"]))
    assert run_check(ctx, Spec("figure_kind", params={"kind": "lines"})).message.startswith("your code left 1 figure, but none")


def test_curves_fall(tmp_path) -> None:
    falling = figures_context(tmp_path / "a", [axes(lines=[line("train", [1.0, 0.6, 0.4, 0.3, 0.25]),
                                                           line("test", [1.1, 0.7, 0.5, 0.45, 0.44])])])
    assert run_check(falling, Spec("curves_fall", params={"count": 2, "min_points": 5})).status == "passed"
    noisy = list(1 / np.arange(1, 301) + np.random.default_rng(0).normal(scale=0.02, size=300))
    batches = figures_context(tmp_path / "b", [axes(lines=[line("train", noisy), line("test", noisy[::-1][:300])])])
    result = run_check(batches, Spec("curves_fall", params={"count": 2, "min_points": 5}))
    assert result.status == "failed"
    assert result.message.startswith(
        "the task asks for one figure with 2 falling curves of at least 5 points; in figure 1 (line plot): "
        "the curve 'train' falls from"
    )
    assert "; the curve 'test' does not fall (" in result.message
    short = figures_context(tmp_path / "c", [axes(lines=[line("train", [1, 0.5, 0.2])])])
    assert run_check(short, Spec("curves_fall", params={"count": 2})).message == (
        "no figure shows 2 curves of at least 5 points (e.g. training and test loss per epoch)"
    )


def test_overfitting_visible_from_accuracies_and_losses(tmp_path) -> None:
    accuracy = figures_context(tmp_path / "a", [axes(ylabel="accuracy", lines=[line("train", [50, 80, 95, 100]),
                                                                               line("test", [45, 60, 66, 67])])])
    assert run_check(accuracy, Spec("overfitting_visible", params={"min_gap": 0.1})).status == "passed"
    loss = figures_context(tmp_path / "b", [axes(lines=[line("train loss", [2.0, 1.0, 0.5, 0.2, 0.1]),
                                                        line("val loss", [2.1, 1.4, 1.2, 1.3, 1.5])])])
    assert run_check(loss, Spec("overfitting_visible")).status == "passed"
    close = figures_context(tmp_path / "c", [axes(ylabel="accuracy", lines=[line("train", [0.5, 0.8, 0.92]),
                                                                            line("test", [0.5, 0.79, 0.9])])])
    result = run_check(close, Spec("overfitting_visible", params={"min_gap": 0.1}))
    assert result.status == "failed"
    assert result.message.startswith("your train and test curves do not show overfitting")
    assert "figure 1 (line plot): train accuracy ends at 0.920 and test accuracy at 0.900 (gap 0.020)" in result.message
    unlabelled = figures_context(tmp_path / "d", [axes(lines=[line("", [1, 0.5, 0.2]), line("", [1, 0.6, 0.5])])])
    assert run_check(unlabelled, Spec("overfitting_visible")).message.startswith(
        "no figure has curves labelled train and test (or validation)"
    )


def test_plotted_accuracy_in_fractions_or_percent_passes(tmp_path) -> None:
    fractions = figures_context(tmp_path / "a", [axes(ylabel="accuracy", lines=[line("train", [0.5, 0.9]), line("test", [0.4, 0.8])])])
    assert run_check(fractions, Spec("plotted_accuracy")).status == "passed"
    percent = figures_context(tmp_path / "b", [axes(lines=[line("test accuracy (%)", [40.0, 80.0, 100.0])])])
    assert run_check(percent, Spec("plotted_accuracy")).status == "passed"


def test_accuracy_divided_by_the_number_of_batches_is_named(tmp_path) -> None:
    per_batch = figures_context(tmp_path, [axes(title="Accuracy", lines=[line("train", [12.0, 58.0]), line("test", [500.0, 904.0])])])
    result = run_check(per_batch, Spec("plotted_accuracy"))
    assert result.status == "failed"
    assert result.message == (
        "your plotted accuracy the curve 'test' in figure 1 (line plot, 'Accuracy') reaches 904, above 100%: divide the "
        "number of correct predictions by the number of examples (len(loader.dataset)), not by the number of batches"
    )


def test_plotted_accuracy_missing_says_how_to_label_it(tmp_path) -> None:
    losses = figures_context(tmp_path, [axes(title="Loss", lines=[line("train", [2.0, 1.0])])])
    assert run_check(losses, Spec("plotted_accuracy")).message == (
        "no plotted accuracy curve was found: plot the accuracy per epoch and label it "
        "(plt.plot(..., label='test accuracy') or plt.ylabel('accuracy'))"
    )
