"""Choose which of the probe's model candidates a task grades: by what it is, not what it is called.

Every instance is ranked by: whether it fits the task's spec (structural similarity to the
reference at least ``MIN_SIMILARITY``; every instance fits when there is no spec), whether it was
trained (trained, then unknown, then untrained: a fresh ``model`` built only to count parameters
never wins over a trained one that fits), how like the reference it is (structural layers, then
parameter count), and only then its name (a preferred name breaks ties) and the order found. A
model bound to no name (a function's local, kept by the construction tracker) competes like the
others. Failing an instance that fits a fixed architecture: a class the probe constructed,
for architecture checks only. The note says what was chosen, where it was built, whether it was
trained, and why, for messages and reports.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.architecture import similarity
from harness.contract import TRAINED_HOW

MIN_SIMILARITY = 0.5
"""Below this structural similarity a candidate is not taken as the student's version of the model."""

_TRAINED_RANK = {True: 2, None: 1, False: 0}


def _trained_text(candidate: dict[str, Any]) -> str:
    """``trained: an optimizer stepped it`` / ``not trained: ...``; empty when the probe did not say."""
    how = candidate.get("trained_how")
    if how not in TRAINED_HOW or how == "unknown":
        return ""
    return f"{'trained' if candidate.get('trained') else 'not trained'}: {TRAINED_HOW[how]}"


def _describe(candidate: dict[str, Any]) -> str:
    name, cls = candidate.get("name"), candidate.get("class_name")
    if candidate.get("origin") == "class":
        return f"the class {cls} (constructed without arguments; no trained instance was found)"
    trained = _trained_text(candidate)
    details = ", ".join(part for part in (f"an instance of {cls}" if name != cls else "", trained) if part)
    built = candidate.get("built_at") if isinstance(candidate.get("built_at"), dict) else {}
    where = ""
    if candidate.get("bound") is False and built:
        function, source = built.get("function"), built.get("file")
        if function in (None, "<module>"):
            where = f", built at top level in {source} (line {built.get('line')}) and no longer bound to a name"
        else:
            where = f", a local of {function}() in {source}"
    text = f"`{name}`{where}"
    return f"{text} ({details})" if details else text


def _passed_over(chosen: dict[str, Any], instances: Sequence[dict[str, Any]]) -> str:
    """``; `model` (not trained) was passed over`` for untrained instances of the chosen class that lost to it."""
    if chosen.get("trained") is not True:
        return ""
    scratch = [
        c for c in instances
        if c is not chosen and c.get("trained") is False and c.get("class_name") == chosen.get("class_name")
    ]
    if not scratch:
        return ""
    names = ", ".join(f"`{c.get('name')}`" for c in scratch[:3])
    return f"; {names} ({'an untrained copy' if len(scratch) == 1 else 'untrained copies'}) passed over"


def select_model(
    candidates: Sequence[dict[str, Any]],
    prefer: Sequence[str] = (),
    reference_layers: list[dict[str, Any]] | None = None,
    reference_parameters: int | None = None,
    require_similarity: bool = True,
) -> tuple[dict[str, Any] | None, str]:
    """Pick the candidate a task grades; returns it (or None) and a note saying why.

    With ``require_similarity`` (an architecture the assignment prescribes) a candidate less like the
    reference than ``MIN_SIMILARITY`` is never graded as the student's version of it, unless it is the
    only instance; without (students design their own network) the reference only ranks the candidates.
    """
    if not candidates:
        return None, "no PyTorch model (nn.Module) was found after running your code"
    instances = [c for c in candidates if c.get("origin") == "instance"]
    classes = [c for c in candidates if c.get("origin") == "class"]

    def named(candidate: dict[str, Any]) -> int:
        """How early a preferred name names it (0 when none does): names only break ties."""
        for index, name in enumerate(prefer):
            if name in (candidate.get("name"), candidate.get("class_name")):
                return len(prefer) - index
        return 0

    def closeness(candidate: dict[str, Any]) -> tuple[float, float]:
        score = similarity(candidate, reference_layers) if reference_layers else 0.0
        params = candidate.get("trainable_parameters") or 0
        nearness = 0.0
        if reference_parameters:
            nearness = -abs(params - reference_parameters) / max(reference_parameters, 1)
        return score, nearness

    def rank(pair: tuple[int, dict[str, Any]]) -> tuple[Any, ...]:
        position, candidate = pair
        score, nearness = closeness(candidate)
        fits = reference_layers is None or score >= MIN_SIMILARITY
        trained = _TRAINED_RANK.get(candidate.get("trained") if candidate.get("trained") in (True, False) else None)
        return fits, trained, score, nearness, named(candidate), -position

    for pool, kind in ((instances, "instance"), (classes, "class")):
        if not pool:
            continue
        best = max(enumerate(pool), key=rank)[1]
        similar = closeness(best)[0] >= MIN_SIMILARITY
        preferred = [c for c in pool if named(c)]
        if not similar and require_similarity and preferred and kind == "instance":
            # Nothing fits the spec: the rubric's own name still says which one the student meant.
            best = max(enumerate(preferred), key=rank)[1]
            return best, f"graded {_describe(best)}"
        if reference_layers is None or similar or not require_similarity or len(pool) == 1:
            why = f"graded {_describe(best)}"
            trained = [c for c in instances if c.get("trained") is not False]
            if named(best):
                pass  # the rubric's own name for it: nothing more to explain
            elif reference_layers is not None and len(pool) > 1:
                like = "the assignment's network" if require_similarity else "the reference network"
                why += f", the one of {len(pool)} {kind}s most like {like}"
            elif len(candidates) > 1 and kind == "instance" and len(trained) == 1 and best is trained[0]:
                why += ", the only trained model found"
            return best, why + (_passed_over(best, instances) if kind == "instance" else "")
    return None, "none of the models found looks like the assignment's network"
