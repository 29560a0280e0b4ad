"""Checks on what the figures show, read from the probe's figure sidecars (``figures/<n>.json``).

The sandbox's matplotlib backend saves every figure as ``figures/<n>.png`` and describes it in
``figures/<n>.json`` (harness/probes/ARTIFACTS.md): per axes its titles and labels, its lines
(x, y), its scatters (mean, std, first points) and its images. A sidecar is the student's output:
``harness.artifacts`` reads it with a size cap, only from inside the artifacts folder, and validates
its shape; the accessors here still check every field's type before use.

Checks here: ``figure_kind`` (a scatter / 3-D scatter / image grid / line plot is shown),
``curves_fall`` (training curves go down) and ``overfitting_visible`` (train and test curves part).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Literal

from pydantic import Field

from harness.checks import CheckSpecLike, Partial, check, options
from harness.rubric import CheckParams, Count, Fraction, NoParams, PositiveNumber, Regex

if TYPE_CHECKING:  # the context imports torch: registering checks and validating a rubric must not
    from harness.checks.context import CheckContext

MAX_FIGURES = 100
"""Sidecars read at most (the artifacts reader lists at most as many PNGs)."""

Kind = Literal["scatter", "scatter3d", "images", "lines"]
"""What ``figure_kind`` can look for."""

_KIND_WORDS = {
    "scatter": "2-D scatter plot",
    "scatter3d": "3-D scatter plot",
    "images": "figure of images",
    "lines": "line plot",
}


# -- reading sidecars ----------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (null, text, NaN written as null by the probe)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _entries(record: Any, key: str) -> list[dict[str, Any]]:
    """The list of JSON objects at ``record[key]`` (anything malformed left out)."""
    value = record.get(key) if isinstance(record, dict) else None
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _numbers(value: Any) -> list[float | None]:
    return [_number(v) for v in value] if isinstance(value, list) else []


@dataclass(frozen=True)
class Line:
    """A plotted line: its legend label and its points (non-finite values dropped in pairs)."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    n: int
    """Points the line has (``x``/``y`` hold at most the probe's first 500)."""


@dataclass(frozen=True)
class Scatter:
    """One scatter collection: its label, dimensions, point count, per-axis mean and std."""

    label: str
    dims: int
    n: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Axes:
    """One axes of a figure, as the sidecar describes it."""

    projection: str
    title: str
    xlabel: str
    ylabel: str
    lines: tuple[Line, ...]
    scatters: tuple[Scatter, ...]
    n_images: int
    legend: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        """Titles, axis labels and legend labels joined, for title matching."""
        labels = [line.label for line in self.lines] + [s.label for s in self.scatters] + list(self.legend)
        return " | ".join(part for part in (self.title, self.xlabel, self.ylabel, *labels) if part)


@dataclass(frozen=True)
class Figure:
    """A figure the student's code showed: its number (``figures/<number>.png``), suptitle and axes."""

    number: int
    suptitle: str
    axes: tuple[Axes, ...]
    cell: int | None = None
    """The code cell whose run showed it (0-based; -1: a script); None when the run did not say."""

    @property
    def words(self) -> str:
        """Suptitle and every axes' titles and labels, for title matching."""
        return " | ".join(part for part in (self.suptitle, *(a.words for a in self.axes)) if part)

    def kinds(self) -> set[str]:
        """What the figure shows: any of ``scatter``, ``scatter3d``, ``images``, ``lines``."""
        found: set[str] = set()
        for axes in self.axes:
            for scatter in axes.scatters:
                found.add("scatter3d" if scatter.dims == 3 or axes.projection == "3d" else "scatter")
            if axes.n_images > 0:
                found.add("images")
            if any(line.n >= 2 for line in axes.lines):
                found.add("lines")
        return found

    def describe(self) -> str:
        """``figure 3 (line plot, 'Loss')``: for messages."""
        kinds = sorted(self.kinds())
        what = ", ".join(_KIND_WORDS[k] for k in kinds) if kinds else "nothing recognisable"
        title = self.suptitle or next((a.title for a in self.axes if a.title), "")
        return f"figure {self.number + 1} ({what}{f', {title!r}' if title else ''})"


def _line(entry: dict[str, Any]) -> Line:
    pairs = [(x, y) for x, y in zip(_numbers(entry.get("x")), _numbers(entry.get("y"))) if x is not None and y is not None]
    n = entry.get("n")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else len(pairs)
    return Line(_text(entry.get("label")), tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), count)


def _scatter(entry: dict[str, Any]) -> Scatter | None:
    dims, n = entry.get("dims"), entry.get("n")
    mean, std = _numbers(entry.get("mean")), _numbers(entry.get("std"))
    if dims not in (2, 3) or not isinstance(n, int) or isinstance(n, bool) or n < 0:
        return None
    if len(mean) != dims or len(std) != dims or None in mean or None in std:
        return Scatter(_text(entry.get("label")), dims, n, (), ())  # shown, but without usable statistics
    return Scatter(_text(entry.get("label")), dims, n, tuple(mean), tuple(std))  # type: ignore[arg-type]


def _axes(entry: dict[str, Any]) -> Axes:
    n_images = entry.get("n_images")
    if not isinstance(n_images, int) or isinstance(n_images, bool):
        n_images = len(_entries(entry, "images"))
    scatters = tuple(s for s in (_scatter(e) for e in _entries(entry, "scatters")) if s is not None)
    return Axes(
        projection="3d" if entry.get("projection") == "3d" else "2d",
        title=_text(entry.get("title")),
        xlabel=_text(entry.get("xlabel")),
        ylabel=_text(entry.get("ylabel")),
        lines=tuple(_line(e) for e in _entries(entry, "lines")),
        scatters=scatters,
        n_images=max(0, n_images),
        legend=tuple(_text(t) for t in entry.get("legend", []) if isinstance(t, str)) if isinstance(entry.get("legend"), list) else (),
    )


def _figure_numbers(ctx: CheckContext) -> list[int]:
    """Numbers of the figures the run left (PNGs the probe listed, or descriptions found), in order."""
    numbers: set[int] = set()
    for relative in ctx.probe.figures if ctx.probe else ():
        found = re.fullmatch(r"figures/(\d{1,6})\.png", relative)
        if found:
            numbers.add(int(found.group(1)))
    folder = ctx.artifacts_dir / "figures" if ctx.artifacts_dir is not None else None
    if folder is not None and folder.is_dir() and not folder.is_symlink():
        for path in folder.iterdir():
            if path.suffix in (".json", ".png") and path.stem.isdigit() and len(path.stem) <= 6:
                numbers.add(int(path.stem))
    return sorted(numbers)[:MAX_FIGURES]


def read_figures(ctx: CheckContext) -> tuple[list[Figure], int]:
    """The figures with a readable sidecar, and how many figures the run left in all."""
    numbers = _figure_numbers(ctx)
    if not numbers:
        return [], 0
    artifacts = ctx.artifacts()
    figures = []
    for number in numbers:
        record = artifacts.figure_info(f"figures/{number}.png")
        if record is not None:
            axes = tuple(_axes(a) for a in _entries(record, "axes"))
            figures.append(Figure(number, _text(record.get("suptitle")), axes, artifacts.figure_cell(f"figures/{number}.png")))
    return figures, len(numbers)


def all_lines(figures: Iterable[Figure]) -> list[tuple[Figure, Axes, Line]]:
    """Every line of every figure, with the figure and axes it is in."""
    return [(figure, axes, line) for figure in figures for axes in figure.axes for line in axes.lines]


def _pattern(value: str | None) -> re.Pattern[str] | None:
    """A params pattern (validated when the rubric loaded), compiled case-insensitively."""
    return re.compile(value, re.IGNORECASE) if value is not None else None


def _no_figures_reason(total: int) -> str:
    if total == 0:
        return "your code showed no figures (call plt.show() after each plot)"
    return (
        f"your code left {total} figure{'s' if total != 1 else ''}, but none carries plot data the grader can read "
        "(figures shown only as images, e.g. with IPython.display, cannot be checked: draw them with matplotlib)"
    )


# -- figure_kind ---------------------------------------------------------------------------------------------


class FigureKindOptions(CheckParams):
    """The ``params`` of ``figure_kind``: ``{kind: scatter, count: 1, title: 'pca'}``."""

    kind: Kind
    """What the figure must show: scatter, scatter3d, images or lines."""
    count: Count = 1
    """How many such figures the code must show (default 1); fewer earn found / count of the points."""
    title: Regex | None = None
    """A regular expression (case-insensitive) the figure's titles, axis labels or legend must match."""
    exclude_title: Regex | None = None
    """A regular expression (case-insensitive): figures whose words match it do not count."""


class FigureKindParams(CheckParams):
    """What ``figure_kind`` reads: its ``params``."""

    params: FigureKindOptions
    """Options: ``kind`` (required), ``count``, ``title``, ``exclude_title``."""


@check("figure_kind", params=FigureKindParams)
def check_figure_kind(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the code shows ``count`` figures of a kind (scatter, 3-D scatter, images, lines), optionally titled.

    params: ``kind`` (scatter | scatter3d | images | lines), ``count`` (default 1), ``title`` (regex,
    case-insensitive, searched in the suptitle, axes titles, axis labels and legend labels),
    ``exclude_title`` (regex: figures matching it do not count). Partial credit: found / count.
    """
    given = options(spec, FigureKindOptions)
    kind, count = given.kind, given.count
    title, exclude = _pattern(given.title), _pattern(given.exclude_title)
    figures, total = read_figures(ctx)
    if not figures:
        raise AssertionError(_no_figures_reason(total))
    matching = [
        f for f in figures
        if kind in f.kinds()
        and (title is None or title.search(f.words))
        and (exclude is None or not exclude.search(f.words))
    ]
    ctx.details.update(measured=len(matching), expected=count, figures=[f.describe() for f in figures])
    if len(matching) >= count:
        return
    wanted = _KIND_WORDS[kind] + ("s" if count != 1 else "")
    titled = f" titled like /{title.pattern}/" if title is not None else ""
    seen = "; ".join(f.describe() for f in figures[:8]) + (f"; and {len(figures) - 8} more" if len(figures) > 8 else "")
    message = f"the task asks for {count} {wanted}{titled}; your code showed {len(matching)} (figures seen: {seen})"
    if title is not None and any(kind in f.kinds() for f in figures):
        message += ": give the plot a title or labels that say what it shows (plt.title(...))"
    if matching:
        raise Partial(len(matching) / count, message)
    raise AssertionError(message)


# -- curves_fall ---------------------------------------------------------------------------------------------


def falling(y: tuple[float, ...], min_falling_steps: float = 0.5) -> tuple[bool, str]:
    """Whether a curve falls: it ends below where it starts and at least ``min_falling_steps`` of its steps go down.

    Long curves (per-batch losses) are first averaged into 20 bins, so batch noise does not count as rising.
    """
    if len(y) < 2:
        return False, "has fewer than 2 points"
    values = list(y)
    if len(values) > 40:
        size = len(values) / 20
        values = [sum(values[int(i * size):int((i + 1) * size)]) / len(values[int(i * size):int((i + 1) * size)]) for i in range(20)]
    steps = [b - a for a, b in zip(values, values[1:])]
    down = sum(1 for s in steps if s < 0) / len(steps)
    if values[-1] >= values[0]:
        return False, f"does not fall ({values[0]:.4g} at the start, {values[-1]:.4g} at the end)"
    if down < min_falling_steps:
        return False, f"goes down in only {down:.0%} of its steps"
    return True, f"falls from {values[0]:.4g} to {values[-1]:.4g}"


class CurvesFallOptions(CheckParams):
    """The ``params`` of ``curves_fall``: ``{count: 2, min_points: 5}``."""

    count: Count = 2
    """How many falling curves one figure must hold (default 2: training and test loss)."""
    min_points: Annotated[int, Field(strict=True, ge=2)] = 5
    """Points a line needs to count as a curve (default 5)."""
    title: Regex | None = None
    """A regular expression (case-insensitive) the figure's titles, axis labels or legend must match."""
    min_falling_steps: Fraction = 0.5
    """The share of a curve's steps that must go down, in (0, 1] (default 0.5)."""


class CurvesFallParams(CheckParams):
    """What ``curves_fall`` reads: its ``params`` (all optional)."""

    params: CurvesFallOptions = CurvesFallOptions()
    """Options: ``count``, ``min_points``, ``title``, ``min_falling_steps``."""


@check("curves_fall", params=CurvesFallParams)
def check_curves_fall(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that one figure holds ``count`` curves of at least ``min_points`` points, every one of them falling.

    params: ``count`` (default 2: training and test loss), ``min_points`` (default 5), ``title``
    (optional regex the figure's words must match), ``min_falling_steps`` (fraction of steps that must
    go down, default 0.5; curves longer than 40 points are averaged into 20 bins first).
    """
    given = options(spec, CurvesFallOptions)
    count, min_points, share = given.count, given.min_points, given.min_falling_steps
    title = _pattern(given.title)
    figures, total = read_figures(ctx)
    if not figures:
        raise AssertionError(_no_figures_reason(total))
    best: tuple[int, Figure | None, list[str]] = (-1, None, [])
    for figure in figures:
        if title is not None and not title.search(figure.words):
            continue
        curves = [line for axes in figure.axes for line in axes.lines if line.n >= min_points and len(line.y) >= 2]
        verdicts = [(line, *falling(line.y, share)) for line in curves]
        good = sum(1 for _, ok, _ in verdicts if ok)
        if len(curves) >= count and good == len(curves):
            ctx.details.update(measured=good, figure=figure.number + 1)
            return
        notes = [f"{_name(line)} {how}" for line, ok, how in verdicts]
        if (good, len(curves)) > (best[0], len(best[2])):
            best = (good, figure, notes)
    ctx.details.update(measured=max(best[0], 0))
    if best[1] is None or not best[2]:
        raise AssertionError(
            f"no figure shows {count} curves of at least {min_points} points (e.g. training and test loss per epoch)"
        )
    where = f"in {best[1].describe()}: " + "; ".join(best[2][:6])
    raise AssertionError(f"the task asks for one figure with {count} falling curves of at least {min_points} points; {where}")


def _name(line: Line) -> str:
    return f"the curve {line.label!r}" if line.label else "an unlabelled curve"


# -- overfitting_visible -------------------------------------------------------------------------------------

_TRAIN = re.compile(r"\btrain", re.IGNORECASE)
_TEST = re.compile(r"\btest|\bval", re.IGNORECASE)
_ACCURACY = re.compile(r"acc", re.IGNORECASE)
_ERROR = re.compile(r"err", re.IGNORECASE)
_LOSS = re.compile(r"loss", re.IGNORECASE)


def _role(line: Line) -> str | None:
    if _TRAIN.search(line.label) and not _TEST.search(line.label):
        return "train"
    if _TEST.search(line.label) and not _TRAIN.search(line.label):
        return "test"
    return None


def _quantity(line: Line, axes: Axes, figure: Figure) -> str:
    """``accuracy``, ``error`` (an error rate), ``loss``: from the label, then the axes, then the trend."""
    for words in (line.label, f"{axes.ylabel} {axes.title}", figure.suptitle):
        if _ACCURACY.search(words):
            return "accuracy"
        if _LOSS.search(words):
            return "loss"
        if _ERROR.search(words):
            return "error"
    return "accuracy" if line.y and line.y[-1] > line.y[0] else "loss"


def _as_fraction(values: tuple[float, ...]) -> tuple[float, ...]:
    """Accuracies or error rates in percent (any value above 1.5) as fractions."""
    return tuple(v / 100 for v in values) if values and max(values) > 1.5 else values


def _overfits(quantity: str, train: Line, test: Line, min_gap: float, min_rise: float) -> tuple[bool, str]:
    """Whether a train/test pair shows overfitting, and what it shows, in words."""
    if quantity == "accuracy":
        tr, te = _as_fraction(train.y)[-1], _as_fraction(test.y)[-1]
        return tr - te >= min_gap, f"train accuracy ends at {tr:.3f} and test accuracy at {te:.3f} (gap {tr - te:.3f})"
    if quantity == "error" and max(train.y + test.y) <= 100:
        tr, te = _as_fraction(train.y)[-1], _as_fraction(test.y)[-1]
        if te - tr >= min_gap:
            return True, f"train error ends at {tr:.3f} and test error at {te:.3f} (gap {te - tr:.3f})"
    lowest = min(range(len(test.y)), key=test.y.__getitem__)
    rises = test.y[-1] >= test.y[lowest] * (1 + min_rise) and lowest < len(test.y) - 1
    train_falls = len(train.y) == len(test.y) and train.y[-1] < train.y[lowest]
    if rises and train_falls:
        return True, (
            f"test {quantity} is lowest ({test.y[lowest]:.4g}) at point {lowest + 1} and ends at {test.y[-1]:.4g} "
            f"while train {quantity} keeps falling to {train.y[-1]:.4g}"
        )
    return False, f"test {quantity} ends at {test.y[-1]:.4g} (its lowest is {test.y[lowest]:.4g}), train {quantity} at {train.y[-1]:.4g}"


class OverfittingOptions(CheckParams):
    """The ``params`` of ``overfitting_visible``: ``{min_gap: 0.1, min_rise: 0.05}``."""

    min_gap: Fraction = 0.1
    """How far train accuracy must end above test accuracy (or test error above train error), in (0, 1]."""
    min_rise: PositiveNumber = 0.05
    """How far the test loss must end above its minimum, relative (default 0.05: 5%)."""


class OverfittingParams(CheckParams):
    """What ``overfitting_visible`` reads: its ``params`` (all optional)."""

    params: OverfittingOptions = OverfittingOptions()
    """Options: ``min_gap``, ``min_rise``."""


@check("overfitting_visible", params=OverfittingParams)
def check_overfitting_visible(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that curves labelled train and test (or val) show overfitting.

    Overfitting shows when, at the end, train accuracy exceeds test accuracy (or the test error rate
    exceeds the train error rate) by at least ``min_gap`` (default 0.1; percentages are read as
    fractions), or when the test loss ends at least ``min_rise`` (default 0.05, relative) above its
    minimum while the train loss keeps falling. Pairs are taken within an axes first, then within a figure.
    """
    given = options(spec, OverfittingOptions)
    min_gap, min_rise = given.min_gap, given.min_rise
    figures, total = read_figures(ctx)
    if not figures:
        raise AssertionError(_no_figures_reason(total))
    seen: list[str] = []
    for figure in figures:
        labelled = [
            (axes, line, _role(line), _quantity(line, axes, figure))
            for axes in figure.axes for line in axes.lines if len(line.y) >= 2
        ]
        trains = [entry for entry in labelled if entry[2] == "train"]
        tests = [entry for entry in labelled if entry[2] == "test"]
        for axes, train, _, quantity in trains:
            partners = sorted(
                (entry for entry in tests if entry[3] == quantity), key=lambda entry: entry[0] is not axes
            )
            for _, test, _, _ in partners[:1]:
                shows, how = _overfits(quantity, train, test, min_gap, min_rise)
                if shows:
                    ctx.details.update(figure=figure.number + 1, how=how)
                    return
                seen.append(f"{figure.describe()}: {how}")
    if not seen:
        raise AssertionError(
            "no figure has curves labelled train and test (or validation): plot both with labels "
            "(plt.plot(..., label='train'), plt.plot(..., label='test')) and call plt.legend()"
        )
    raise AssertionError(
        f"your train and test curves do not show overfitting (train accuracy at least {min_gap:g} above test "
        f"accuracy, or a test loss rising {min_rise:.0%} above its minimum while the train loss falls): "
        + "; ".join(seen[:4])
        + ": train for more epochs and plot train and test curves over the whole training"
    )


# -- plotted_accuracy ----------------------------------------------------------------------------------------


def _says_accuracy(line: Line, axes: Axes, figure: Figure) -> bool:
    """The line is an accuracy by its own words (label, axis label, titles), not by its trend."""
    return any(_ACCURACY.search(words) for words in (line.label, f"{axes.ylabel} {axes.title}", figure.suptitle))


@check("plotted_accuracy", params=NoParams)
def check_plotted_accuracy(ctx: CheckContext, spec: CheckSpecLike) -> None:
    """Check that the plotted accuracy curves are accuracies: within 0..1, or 0..100 percent.

    An accuracy computed as correct predictions over the number of BATCHES (a common slip) reads
    far above 100; the host measures the model's accuracy itself, so only the student's own curve
    shows the slip. A line counts as an accuracy when its label, its axis label or a title says so.
    """
    figures, total = read_figures(ctx)
    if not figures:
        raise AssertionError(_no_figures_reason(total))
    curves = [(f, a, l) for f, a, l in all_lines(figures) if l.y and _says_accuracy(l, a, f)]
    ctx.details.update(curves=len(curves))
    assert curves, (
        "no plotted accuracy curve was found: plot the accuracy per epoch and label it "
        "(plt.plot(..., label='test accuracy') or plt.ylabel('accuracy'))"
    )
    worst = max(curves, key=lambda c: max(abs(v) for v in c[2].y))
    figure, _, line = worst
    highest, lowest = max(line.y), min(min(c[2].y) for c in curves)
    ctx.details["measured"] = highest
    assert lowest >= 0, f"your plotted accuracy goes below 0 ({lowest:.3g}) in {figure.describe()}: an accuracy is a fraction of examples"
    assert highest <= 100 + 1e-6, (
        f"your plotted accuracy {_name(line)} in {figure.describe()} reaches {highest:.4g}, above 100%: divide the "
        "number of correct predictions by the number of examples (len(loader.dataset)), not by the number of batches"
    )
