"""Which file of a submission serves which task: a plan of what to run, in which order, and why.

Students do not name their files as the rubric does (``feedForwardMNIST_1.ipynb``, ``cnn_final_v2.ipynb``,
``assignment_2/vae.ipynb``, one ``Ex2Sol.ipynb`` for every question, ``trainers/q1.py`` driven by a
``main.py``). :func:`plan_sources` is a pure function from the rubric and the submission's files (their
paths and text; nothing is executed or imported) to a :class:`SourcePlan`:

- a file named as the rubric's ``source`` asks (case-insensitively, in any folder) serves that task;
- a TA's pin (``--pins``: ``student: {task-id: path}``) serves its task whatever else is there;
- otherwise every notebook and script is a candidate, scored by what it is: numbers in its name
  (``q3``, ``2.3``, ``_1``), words (``cnn``, ``ff``, ``autoencoder``, ``vae``, ``pca``), notebook
  headings (``## Question 3``), the names it defines (the task's preferred model names, the functions
  its probe calls, the names its checks look for), the loss the task asks for. The best file serves
  the task when it is clearly best; two equally good files, or none with enough evidence, leave the
  task undecided with a reason a TA can act on.

A script that only defines things (``models/encoder.py``, ``Classes.py``) is a helper: never run on its
own. A script imported by another that runs (``main.py`` doing ``import trainers.q1 as q1; q1.run()``,
``train.py`` importing ``cnn.py``) is run through its importer, which then serves its tasks; a file is
run once whatever number of tasks it serves, and the files run in the order of the first task each
serves (rubric order: q1 before q2, so later scripts can load earlier checkpoints).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

import yaml

from harness.errors import HarnessError
from harness.loading.common import CODE_SUFFIXES  # the files that can serve a task
from harness.rubric import Rubric, Task, did_you_mean
from harness.syntax import parse_or_none

MIN_EVIDENCE = 3
"""Score a file needs for a task before it is chosen by content (a word in its name, or a number, is 3-4)."""

GENERIC_NAMES = frozenset({"model", "net", "network", "m", "mdl"})
"""Model names every notebook uses: no evidence of which task a file is."""

_CONCEPTS: dict[str, tuple[str, ...]] = {
    "feedforward": ("feedforward", "ff", "fnn", "mlp"),
    "cnn": ("cnn", "convnet"),
    "autoencoder": ("autoencoder", "ae"),
    "vae": ("vae", "variational"),
    "pca": ("pca",),
    "classifier": ("classifier", "clf"),
    "decoder": ("decoder", "decoding"),
    "finetuning": ("finetun", "pretrain", "transfer"),
}
"""What a task is about, and how file names spell it. Aliases of five letters or more match anywhere in a
name (``feedForwardMNIST_1``); shorter ones must be a word of it (``autoencoder_ff_2``), or for three
letters begin one (``cnnmnist``)."""

_IGNORED_PREFIXES = frozenset({"v", "ver", "version", "ex", "exercise", "assignment", "hw", "sheet", "lab", "week", "a", "dim"})
"""Letters before a number in a file name that make it something other than a task number (``v2``, ``ex2``)."""

_HEADING_NUMBER = re.compile(r"(?:\b(?:question|task|problem|part|opgave|q)\s*\.?\s*)(\d+(?:\.\d+)*)", re.I)
_LEADING_NUMBER = re.compile(r"^\s*(?:#+|\*\*)?\s*(\d+(?:\.\d+)*)[\s.):]")
_NAME_NUMBER = re.compile(r"([a-z]*)[_\- ]?(\d+(?:[._]\d+)*)")


# -- what a file is ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeFile:
    """What the matcher knows of one notebook or script, read as text (never run)."""

    path: str
    """Relative POSIX path in the submission."""
    defined: frozenset[str] = frozenset()
    """Names it defines anywhere: classes, functions, assigned variables (locals of functions included)."""
    classes: frozenset[str] = frozenset()
    """Classes it defines."""
    functions: frozenset[str] = frozenset()
    """Functions it defines."""
    imports: tuple[str, ...] = ()
    """Dotted module names it imports (``trainers.q1``, ``cnn``), local or not."""
    headings: tuple[str, ...] = ()
    """Notebook markdown headings and ``# Question 3``-style comment lines."""
    code: str = ""
    """The code (a notebook's code cells joined)."""
    works: bool = True
    """True when running it does something: a notebook, or a script with a statement other than imports,
    definitions and plain assignments (a helper module that only defines classes and functions is False)."""

    @property
    def notebook(self) -> bool:
        """True for a Jupyter notebook."""
        return self.path.lower().endswith(".ipynb")


def read_code_file(path: str, text: str) -> CodeFile:
    """Parse one notebook (its JSON) or script (its source) into a :class:`CodeFile`; unreadable parts are skipped."""
    headings: list[str] = []
    if path.lower().endswith(".ipynb"):
        cells = _notebook_cells(text)
        chunks = [source for kind, source in cells if kind == "code"]
        for kind, source in cells:
            if kind == "markdown":
                lines = [line.strip() for line in source.splitlines() if line.strip()]
                headings += [line for line in lines if line.startswith(("#", "**"))] or lines[:1]
        code = "\n\n".join(chunks)
        trees = [parse_or_none(_without_magics(chunk)) for chunk in chunks]
        works = True
    else:
        code = text
        trees = [parse_or_none(text)]
        works = trees[0] is None or _does_work(trees[0])  # an unparsable script still runs (and fails: it is graded)
    headings += [line.strip() for line in code.splitlines() if line.strip().startswith("#") and _HEADING_NUMBER.search(line)]
    defined: set[str] = set()
    classes: set[str] = set()
    functions: set[str] = set()
    imports: list[str] = []
    for tree in trees:
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.add(node.name)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Import):
                imports += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imports.append(node.module)
                imports += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
            elif isinstance(node, ast.ImportFrom) and node.level:  # from . import q1 / from .models import AE
                base = node.module or ""
                imports += [f".{base}.{alias.name}".replace("..", ".") for alias in node.names] + ([f".{base}"] if base else [])
    defined |= classes | functions
    return CodeFile(
        path=path,
        defined=frozenset(defined),
        classes=frozenset(classes),
        functions=frozenset(functions),
        imports=tuple(dict.fromkeys(imports)),
        headings=tuple(headings),
        code=code,
        works=works,
    )


def _notebook_cells(text: str) -> list[tuple[str, str]]:
    """(cell type, source) of every cell of a notebook's JSON; none when it is not a readable notebook."""
    try:
        document = json.loads(text)
        cells = document.get("cells") or [c for w in document.get("worksheets", []) for c in w.get("cells", [])]
    except (ValueError, AttributeError, TypeError):
        return []
    found = []
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", cell.get("input", ""))
        source = "".join(source) if isinstance(source, list) else str(source)
        found.append((str(cell.get("cell_type", "")), source))
    return found


def _without_magics(code: str) -> str:
    """A cell with its IPython magics and shell lines blanked, so the rest parses."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())


def _does_work(tree: ast.Module) -> bool:
    """True when a module does something at import beyond defining: a call statement, a loop, an assignment
    from a call (``ae = q1.run()``), a ``__main__`` block."""
    return any(statement_works(node) for node in tree.body)


def statement_works(node: ast.stmt) -> bool:
    """True for a top-level statement that does work (see :func:`_does_work`); False for imports, definitions,
    docstrings and assignments of constants or of setup calls (``device = torch.device("cpu")``)."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return False
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return False  # a docstring
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        value = node.value
        return not (value is None or not any(isinstance(n, ast.Call) for n in ast.walk(value)) or _setup_call(value))
    return True


_SETUP_CALLS = re.compile(r"^(?:torch\.)?device$|^(?:torch\.)?manual_seed$|^Path$|^os\.path\.|^transforms\.|^nn\.|^torch\.cuda\.")


def _setup_call(value: ast.expr) -> bool:
    """True for an assignment a helper module makes without doing work (``device = torch.device(...)``)."""
    calls = [n for n in ast.walk(value) if isinstance(n, ast.Call)]
    return all(_SETUP_CALLS.search(ast.unparse(c.func)) for c in calls)


# -- the plan ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSource:
    """Where one automatic task's work is, and why that file (or why none)."""

    task: str
    """Rubric task id."""
    file: str | None
    """The file holding the task's work (None when none was found or the matcher could not decide)."""
    run: str | None
    """The file run for it: ``file`` itself, or the script that imports it (``main.py`` for ``trainers/q1.py``)."""
    reason: str
    """Why this file, or why none: shown in the report and the self-check."""
    candidates: tuple[str, ...] = ()
    """When undecided: the files it could not tell apart."""

    @property
    def found(self) -> bool:
        """True when a file serves the task."""
        return self.run is not None


@dataclass(frozen=True)
class RunStep:
    """One file run in the submission's workspace, serving one or more tasks."""

    file: str
    """Relative path of the notebook or script run."""
    tasks: tuple[str, ...]
    """Ids of the tasks it serves, in rubric order."""
    modules: tuple[str, ...] = ()
    """Files of the submission it imports (directly or not): they run inside it, never on their own."""


@dataclass(frozen=True)
class SourcePlan:
    """Which file serves which task, what runs in which order, and what is never run."""

    steps: tuple[RunStep, ...]
    """Files to run, in order (rubric order of the first task each serves)."""
    tasks: tuple[TaskSource, ...]
    """One entry per automatic task, in rubric order."""
    helpers: tuple[str, ...] = ()
    """Scripts that only define things (``models/encoder.py``, ``Classes.py``): never run on their own."""
    unused: tuple[str, ...] = ()
    """Notebooks and scripts that do work but serve no task (scratch files; modules a run file imports are in its step)."""
    code_files: tuple[str, ...] = ()
    """Every notebook and script of the submission."""

    def source(self, task_id: str) -> TaskSource:
        """The entry of ``task_id``."""
        for entry in self.tasks:
            if entry.task == task_id:
                return entry
        raise KeyError(f"the plan has no task {task_id!r}")

    def step_of(self, task_id: str) -> RunStep | None:
        """The run step serving ``task_id`` (None when none does)."""
        return next((s for s in self.steps if task_id in s.tasks), None)

    def static_files(self, task_id: str) -> tuple[str, ...]:
        """The files static checks of ``task_id`` read: its file, what its run file imports, and every helper
        module that is nobody's run file (a loss defined in ``functions_and_utils.py`` counts)."""
        entry = self.source(task_id)
        step = self.step_of(task_id)
        if entry.run is None or step is None:
            return ()
        files = [entry.file or entry.run, entry.run, *step.modules, *self.helpers]
        return tuple(dict.fromkeys(f for f in files if f))

    @property
    def matched(self) -> tuple[str, ...]:
        """Ids of the tasks a file serves."""
        return tuple(t.task for t in self.tasks if t.found)


def plan_sources(rubric: Rubric, files: Mapping[str, str], pins: Mapping[str, str] | None = None) -> SourcePlan:
    """The plan for a submission: ``files`` maps each relative path to its text (a notebook's JSON); files
    other than notebooks and scripts are ignored. ``pins`` maps task ids to files a TA chose (validated by
    :func:`check_pins`)."""
    code = {p: read_code_file(p, t) for p, t in sorted(files.items()) if p.lower().endswith(CODE_SUFFIXES)}
    ordered = sorted(code, key=lambda f: (len(PurePosixPath(f).parts), f.lower()))
    imports = {p: _local_imports(f, code) for p, f in code.items()}
    exact = {task.id: task.find_source(ordered) for task in rubric.automatic_tasks}
    named = {f for f in exact.values() if f}
    # a file imported by a file that runs is run by it (main.py runs trainers/q1.py); one named by the rubric that
    # works on its own (q1.py with its training at the top) still runs itself, even if q2.py imports it
    driver: dict[str, str] = {}
    for path in ordered:
        if not code[path].works:
            continue
        for module in _closure(path, imports):
            if module != path and (not code[module].works or module not in named) and module not in driver:
                driver[module] = path
    entries = [p for p in ordered if (code[p].works or p in named) and p not in driver]

    def runner(path: str) -> str:
        seen = {path}
        while path in driver and driver[path] not in seen:
            path = driver[path]
            seen.add(path)
        return path

    found = ", ".join(code) or "no notebooks or scripts"  # in the submission's order, as messages always said
    chosen: list[TaskSource] = []
    for task in rubric.automatic_tasks:
        pinned = (pins or {}).get(task.id)
        if pinned is not None:
            run = runner(pinned) if pinned in code else pinned
            via = f"; run through {run}, which imports it" if run != pinned else ""
            chosen.append(TaskSource(task.id, pinned, run, f"{pinned} was pinned to this task by a TA{via}"))
            continue
        if exact[task.id]:
            file = exact[task.id]
            run = runner(file)
            named_as = next(s for s in task.source if s.casefold() in (file.casefold(), PurePosixPath(file).name.casefold()))
            via = f"; run through {run}, which imports it" if run != file else ""
            chosen.append(TaskSource(task.id, file, run, f"{file} is named as the rubric asks ({named_as}){via}"))
            continue
        chosen.append(_by_content(task, code, entries, named, imports, found))
    return _finish(chosen, code, imports, ordered)


def _by_content(task: Task, code: Mapping[str, CodeFile], entries: list[str], named: set[str],
                imports: Mapping[str, tuple[str, ...]], found: str) -> TaskSource:
    """The file chosen for ``task`` by what the files are (each run file scored by its best own or imported
    file), or the reason none could be."""
    wanted = " or ".join(task.source)
    scored: list[tuple[int, str, str, list[str]]] = []  # (score, run file, task file, evidence)
    for entry in entries:
        if entry in named:
            continue  # a file the rubric names for another task is that task's
        best = (0, entry, [])
        for path in _closure(entry, imports):
            score, evidence = score_file(task, code[path])
            if score > best[0]:
                best = (score, path, evidence)
        if best[0] > 0:
            scored.append((best[0], entry, best[1], best[2]))
    scored.sort(key=lambda s: -s[0])
    if not scored or scored[0][0] < MIN_EVIDENCE:
        return TaskSource(task.id, None, None, f"{wanted} was not found in your submission (found: {found})")
    tied = [s for s in scored if s[0] == scored[0][0]]
    if len({s[1] for s in tied}) > 1:
        names = sorted({s[2] for s in tied})
        return TaskSource(
            task.id, None, None,
            f"could not tell which of {', '.join(names)} is task {task.id} ({task.title}); a TA can pin it",
            candidates=tuple(names),
        )
    score, run, file, evidence = scored[0]
    via = f"; run through {run}, which imports it" if run != file else ""
    return TaskSource(task.id, file, run, f"{file} was chosen by its content ({', '.join(evidence[:3])}){via}")


def _finish(chosen: list[TaskSource], code: Mapping[str, CodeFile],
            imports: Mapping[str, tuple[str, ...]], ordered: list[str]) -> SourcePlan:
    """Group the tasks by run file into steps ordered by their first task; everything else is a helper."""
    runs: dict[str, list[str]] = {}
    for entry in chosen:
        if entry.run is not None:
            runs.setdefault(entry.run, []).append(entry.task)
    steps = tuple(
        RunStep(run, tuple(tasks), tuple(m for m in _closure(run, imports) if m != run))
        for run, tasks in runs.items()  # insertion order: rubric order of each run file's first task
    )
    inside = set(runs) | {m for s in steps for m in s.modules}
    helpers = tuple(p for p in ordered if not code[p].works and p not in runs)
    unused = tuple(p for p in ordered if code[p].works and p not in inside)
    return SourcePlan(steps, tuple(chosen), helpers, unused, tuple(ordered))


# -- evidence ------------------------------------------------------------------------------------------------


def task_numbers(task: Task) -> set[str]:
    """The task's numbers: the title's leading one (``2.3 PCA baseline``) and those of its source names (``q3.py``)."""
    numbers = set()
    lead = re.match(r"\s*(\d+(?:\.\d+)*)\b", task.title)
    if lead:
        numbers.add(lead.group(1))
    for name in task.source:
        numbers |= name_numbers(PurePosixPath(name).stem)
    return numbers


def name_numbers(stem: str) -> set[str]:
    """Task numbers a file name carries: ``q3`` and ``ex2_q3`` -> 3, ``2.2`` -> 2.2, ``feedForwardMNIST_1`` -> 1;
    ``v2``, ``ex2`` and ``assignment_2`` carry none."""
    numbers = set()
    for match in _NAME_NUMBER.finditer(stem.lower()):
        prefix, number = match.groups()
        if prefix in _IGNORED_PREFIXES:
            continue
        numbers.add(number.replace("_", "."))
    return numbers


def concepts_in(text: str) -> set[str]:
    """The concepts (:data:`_CONCEPTS`) a name or title spells."""
    squashed = re.sub(r"[^a-z0-9]", "", text.lower())
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[a-z]+", re.sub(r"\d", " ", text))]
    found = set()
    for concept, aliases in _CONCEPTS.items():
        for alias in aliases:
            if len(alias) >= 5 and alias in squashed:
                found.add(concept)
            elif alias in words or (len(alias) == 3 and any(w.startswith(alias) for w in words)):
                found.add(concept)
    return found


def task_concepts(task: Task) -> set[str]:
    """What a task is about, from its title, its source names and its reference class."""
    texts = [task.title, *(PurePosixPath(s).stem for s in task.source)]
    if task.model is not None and task.model.spec:
        texts.append(task.model.spec.rsplit(":", 1)[-1])
    return set().union(*(concepts_in(t) for t in texts))


def _task_names(task: Task) -> tuple[set[str], set[str], set[str]]:
    """(specific model names, functions it calls or looks for, values its probe records)."""
    models = {n for n in (task.model.prefer if task.model else ()) if n.lower() not in GENERIC_NAMES}
    if task.model is not None and task.model.spec:
        models.add(task.model.spec.rsplit(":", 1)[-1])
    functions: set[str] = set()
    values: set[str] = set()
    if task.probe is not None:
        values |= set(task.probe.values)
        for call in task.probe.calls:
            functions |= set(call.names)
    for spec in task.checks:
        if spec.check == "defines":
            functions |= set(spec.params.get("names", ()))
    return models, functions, values


def _loss_names(task: Task) -> set[str]:
    return {spec.equals for spec in task.checks if spec.check in ("loss_used", "loss_choice") and isinstance(spec.equals, str)}


def score_file(task: Task, file: CodeFile) -> tuple[int, list[str]]:
    """How much ``file`` looks like ``task``, and the evidence, as a TA reads it (``its name says 'cnn'``)."""
    score, evidence = 0, []
    stem = PurePosixPath(file.path).stem
    numbers = task_numbers(task)
    carried = name_numbers(stem)
    if carried & numbers:
        score += 4
        evidence.append(f"its name carries the number {sorted(carried & numbers)[0]}")
    elif any("." in n and n.split(".")[0] in carried for n in numbers):
        score += 1
        evidence.append(f"its name carries part number {sorted(carried)[0]}")
    concepts = task_concepts(task)
    in_name = concepts_in(stem) & concepts
    if in_name:
        score += 3 * len(in_name)
        evidence.append(f"its name says {' and '.join(sorted(in_name))}")
    for heading in file.headings:
        said = set(_HEADING_NUMBER.findall(heading)) | set(_LEADING_NUMBER.findall(heading))
        if said & numbers:
            score += 4
            said_text = heading.lstrip("#* ").rstrip("* ")
            evidence.append(f"a heading says {said_text if len(said_text) <= 60 else said_text[:57] + '...'!r}")
            break
    models, functions, values = _task_names(task)
    lowered = {n.lower() for n in file.defined}
    has_models = sorted(n for n in models if n.lower() in lowered)
    if has_models:
        score += min(4, 2 * len(has_models))
        evidence.append(f"it defines {', '.join(has_models[:2])}")
    has_functions = sorted(functions & (file.functions | file.classes))  # a variable loss_function = nn.NLLLoss() is no def
    if has_functions:
        score += 3
        evidence.append(f"it defines {has_functions[0]}")
    if values & file.defined and score:
        score += 1  # a value name (z) alone proves little; it only adds to other evidence
    losses = [loss for loss in _loss_names(task) if re.search(rf"\b{loss}\b|\b{_snake(loss)}\b", file.code)]
    if losses and score:
        score += 1
        evidence.append(f"it uses {losses[0]}")
    return score, evidence


def _snake(loss: str) -> str:
    """The functional form of a loss class name: ``CrossEntropyLoss`` -> ``cross_entropy``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", loss.removesuffix("Loss")).lower() or loss


# -- imports -------------------------------------------------------------------------------------------------


def _local_imports(file: CodeFile, code: Mapping[str, CodeFile]) -> tuple[str, ...]:
    """Files of the submission ``file`` imports: resolved from its own folder and from the submission root."""
    folder = PurePosixPath(file.path).parent
    lowered = {p.lower(): p for p in code}
    found: list[str] = []
    for name in file.imports:
        relative = name.startswith(".")
        parts = [p for p in name.split(".") if p]
        bases = [folder] if relative else [folder, PurePosixPath(".")]
        for base in bases:
            for end in range(len(parts), 0, -1):
                stem = base.joinpath(*parts[:end])
                for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
                    key = str(PurePosixPath(candidate)).lower()
                    if key in lowered and lowered[key] != file.path:
                        found.append(lowered[key])
                        break
                else:
                    continue
                break
    return tuple(dict.fromkeys(found))


def _closure(path: str, imports: Mapping[str, tuple[str, ...]]) -> list[str]:
    """``path`` and every submission file it imports, directly or not (depth first, each once)."""
    seen: list[str] = []
    stack = [path]
    while stack:
        current = stack.pop(0)
        if current in seen:
            continue
        seen.append(current)
        stack.extend(imports.get(current, ()))
    return seen


# -- pins ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pins:
    """A TA's per-student choices of files for tasks (``--pins pins.yaml``: ``student: {task-id: path}``)."""

    by_student: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Student -> task id -> relative path of the file that serves the task."""
    path: str = ""
    """The file they were read from (for messages)."""

    def of(self, student: str) -> Mapping[str, str]:
        """The pins of one student (none when the file names no such student)."""
        return self.by_student.get(student, {})


def parse_pins(text: str, rubric: Rubric, name: str = "pins") -> Pins:
    """Read a pin file's YAML: every student maps task ids (automatic tasks of ``rubric``) to paths.
    HarnessError with the file, the student and what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise HarnessError(f"{name}: not valid YAML ({error})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HarnessError(f"{name}: expected a mapping of students to {{task-id: path}}, got {type(data).__name__}")
    tasks = [t.id for t in rubric.automatic_tasks]
    pins: dict[str, dict[str, str]] = {}
    for student, chosen in data.items():
        if not isinstance(chosen, dict) or not chosen:
            raise HarnessError(f"{name}: student {student!r}: expected {{task-id: path}}, e.g. {{{tasks[0]}: q1.py}}")
        pins[str(student)] = {}
        for task_id, path in chosen.items():
            if task_id not in tasks:
                raise HarnessError(
                    f"{name}: student {student!r}: {task_id!r} is not an automatic task of {rubric.assignment}"
                    f"{did_you_mean(str(task_id), tasks)}; "
                    f"tasks: {', '.join(tasks)}"
                )
            if not isinstance(path, str) or not path.strip():
                raise HarnessError(f"{name}: student {student!r}, task {task_id}: give the file's path in the submission")
            pins[str(student)][str(task_id)] = PurePosixPath(path.strip().replace("\\", "/")).as_posix()
    return Pins(pins, name)


def read_pins(path: Path, rubric: Rubric) -> Pins:
    """:func:`parse_pins` of the file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise HarnessError(f"{path}: the pins file cannot be read ({error.strerror or error})") from None
    return parse_pins(text, rubric, str(path))


def check_pins(pins: Pins, submissions: Mapping[str, Iterable[str]]) -> None:
    """Refuse pins for a student not in ``submissions`` (student -> files) or a file the student's submission
    does not hold; HarnessError naming the closest student or the student's notebooks and scripts."""
    for student, chosen in pins.by_student.items():
        if student not in submissions:
            raise HarnessError(f"{pins.path}: no student {student!r} in this batch"
                               f"{did_you_mean(student, sorted(submissions))}")
        files = list(submissions[student])
        code = [f for f in files if f.lower().endswith(CODE_SUFFIXES)]
        for task_id, path in chosen.items():
            if path not in files:
                listed = ", ".join(code) or "no notebooks or scripts"
                raise HarnessError(
                    f"{pins.path}: student {student!r}, task {task_id}: no file {path!r} in the submission; it holds {listed}"
                )
            if not path.lower().endswith(CODE_SUFFIXES):
                raise HarnessError(f"{pins.path}: student {student!r}, task {task_id}: {path!r} is not a notebook or script")
