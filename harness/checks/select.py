"""Choose which of the probe's model candidates a task grades: by what it is, not what it is called.

Order: a trained instance with a preferred name; else the trained instance most like the
reference (structural layers, then parameter count); else, for architecture checks only, a
class the probe constructed. The note says what was chosen and why, for messages and reports.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.architecture import similarity

MIN_SIMILARITY = 0.5
"""Below this structural similarity a candidate is not taken as the student's version of the model."""


def _describe(candidate: dict[str, Any]) -> str:
    name, cls = candidate.get("name"), candidate.get("class_name")
    if candidate.get("origin") == "class":
        return f"the class {cls} (constructed without arguments; no trained instance was found)"
    return f"`{name}` (an instance of {cls})" if name != cls else f"`{name}`"


def select_model(
    candidates: Sequence[dict[str, Any]],
    prefer: Sequence[str] = (),
    reference_layers: list[dict[str, Any]] | None = None,
    reference_parameters: int | None = None,
    require_similarity: bool = True,
) -> tuple[dict[str, Any] | None, str]:
    """Pick the candidate a task grades; returns it (or None) and a note saying why.

    With ``require_similarity`` (an architecture the assignment prescribes) a candidate less like the
    reference than ``MIN_SIMILARITY`` is never graded as the student's version of it; without (students
    design their own network) the reference only ranks the candidates.
    """
    if not candidates:
        return None, "no PyTorch model (nn.Module) was found after running your code"
    instances = [c for c in candidates if c.get("origin") == "instance"]
    classes = [c for c in candidates if c.get("origin") == "class"]

    for name in prefer:
        for candidate in instances:
            if name in (candidate.get("name"), candidate.get("class_name")):
                return candidate, f"graded {_describe(candidate)}"

    def closeness(candidate: dict[str, Any]) -> tuple[float, float]:
        score = similarity(candidate.get("modules", []), reference_layers) if reference_layers else 0.0
        params = candidate.get("trainable_parameters") or 0
        nearness = 0.0
        if reference_parameters:
            nearness = -abs(params - reference_parameters) / max(reference_parameters, 1)
        return score, nearness

    for pool, kind in ((instances, "instance"), (classes, "class")):
        if not pool:
            continue
        best = max(pool, key=closeness)
        similar = closeness(best)[0] >= MIN_SIMILARITY
        if reference_layers is None or similar or not require_similarity or len(pool) == 1:
            others = len(candidates) - 1
            why = f"graded {_describe(best)}"
            if reference_layers is not None and len(pool) > 1:
                like = "the assignment's network" if require_similarity else "the reference network"
                why += f", the one of {len(pool)} {kind}s most like {like}"
            elif others and kind == "instance" and len(instances) == 1:
                why += ", the only trained model found"
            return best, why
    return None, "none of the models found looks like the assignment's network"
