"""Fuzzing loading: malformed notebooks, file names, archives and folders never crash the harness.

Every input must end as a ``Submission`` or a ``LoadFailure`` (never an exception, never a grader fault), every
message must be writable into a UTF-8 report, nothing may be staged outside the staging folder, and whatever
loading accepted must be readable by what comes after it: the pipeline's ``_source_text``, the runner's
``nbformat.read`` and ``exec`` of the UTF-8 text, and loading's own validation of the staged copy.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import loading
from harness.loading import load_batch, load_submission
from harness.models import LoadFailure, Submission
from harness.pipeline import _source_text

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
"""600 inputs over the three tests below (a batch holds up to five, zips nest): under a minute on two cores."""

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # zips with duplicate entries, on purpose


def notebook_json(source: str = "x = 1") -> dict:
    """A valid nbformat-4 notebook with one code cell, as JSON data to be made malformed."""
    return json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source, id="c0")])))


# -------------------------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
"""Any small JSON value, to put where a notebook expects something else."""


MARKER = "@@replaced@@"


def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a": ' * depth + "1" + "}" * depth


@st.composite
def notebook_bytes(draw) -> bytes:
    """The bytes of a notebook that is valid, subtly broken or not a notebook at all."""
    notebook = notebook_json(draw(st.text(max_size=30)))
    damage = draw(st.sampled_from([
        "none", "field", "deep", "huge_int", "surrogate", "truncate", "encoding", "non_json", "empty", "flip",
    ]))
    if damage == "field":  # a field of the wrong type or shape anywhere a notebook has one
        where = draw(st.sampled_from(["nbformat", "nbformat_minor", "metadata", "cells", "cell", "source", "outputs",
                                      "execution_count", "cell_type", "id"]))
        value = draw(json_values)
        if where in ("nbformat", "nbformat_minor", "metadata", "cells"):
            notebook[where] = value
        elif where == "cell":
            notebook["cells"].append(value)
        else:
            notebook["cells"][0][where] = value
    # JSON that json.dumps cannot write (too deep, a huge integer, an escaped lone surrogate) replaces a marker.
    raw = ""
    if damage == "deep":
        raw = _nested(draw(st.integers(1, 3000)), draw(st.sampled_from(["list", "dict"])))
    elif damage == "huge_int":
        raw = "9" * draw(st.integers(1, 10_000))
    elif damage == "surrogate":
        raw = '"' + draw(st.sampled_from(["\\ud800", "x\\udfff", "\\udc80\\ud800", "\\ud83d\\ude00"])) + '"'
    if raw:
        where = draw(st.sampled_from(["nbformat", "metadata", "cells", "source", "execution_count", "key"]))
        if where in ("nbformat", "cells"):
            notebook[where] = MARKER
        elif where == "metadata":
            notebook["metadata"]["x"] = MARKER
        elif where == "key":
            notebook["metadata"][MARKER] = 1
        else:
            notebook["cells"][0][where] = MARKER
    text = json.dumps(notebook, ensure_ascii=draw(st.booleans())).replace(f'"{MARKER}"', raw or '"x"')
    data = text.encode("utf-8")
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
        data = (text + draw(st.sampled_from(["", "é", "æøå"]))).encode(codec, "replace")
    elif damage == "non_json":
        data = draw(st.binary(max_size=200))
    elif damage == "empty":
        data = draw(st.sampled_from([b"", b" ", b"\n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf{}"]))
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if draw(st.booleans()):
        data = codecs.BOM_UTF8 + data
    return data


python_bytes = st.one_of(
    st.binary(max_size=100),
    st.text(max_size=60).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b"\xef\xbb\xbfx = 1\n", b"x = '\xff'\n", b"\0\0", "é = 1\n".encode("cp1252")]),
)
"""Bytes of a .py file: text, binary, a BOM, Windows encodings."""

name_bytes = st.one_of(
    st.sampled_from([b"CNNMNIST", b"q1", b"caf\xe9", b"m\xfcller", b"\xff\xfe", b"a b", b"-x", b"__init__",
                     b"._hidden", b".DS_Store", b"__MACOSX", b"x" * 250, "日本".encode(), b"a\\b", b"\x7f"]),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")),
)
"""Raw file names, many of them not UTF-8."""

suffixes = st.sampled_from([b".ipynb", b".py", b".zip", b".IPYNB", b".txt", b""])


@st.composite
def file_name(draw) -> bytes:
    """A file name of at most 255 bytes."""
    return (draw(name_bytes) + draw(suffixes))[-255:]


@st.composite
def zip_archive(draw, depth: int = 0) -> bytes:
    """A zip with odd entries: climbing paths, absolute paths, deep paths, links, duplicates, non-UTF-8 names,
    nested zips, special files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for _ in range(draw(st.integers(0, 5))):
            kind = draw(st.sampled_from(["notebook", "python", "climb", "absolute", "deep", "link", "fifo", "dir",
                                         "zip", "raw_name", "backslash", "duplicate"]))
            name = draw(file_name()).decode("utf-8", "replace").replace("/", "_") or "x"
            content: bytes = draw(notebook_bytes()) if kind in ("notebook", "duplicate") else draw(python_bytes)
            if kind == "notebook":
                name = f"{draw(st.sampled_from(['', 'top/', 'a/b/']))}{name}.ipynb"
            elif kind == "climb":
                name = f"../{'../' * draw(st.integers(0, 3))}{name}"
            elif kind == "absolute":
                name = draw(st.sampled_from(["/etc/", "C:/", "C:\\\\"])) + name
            elif kind == "deep":
                name = "/".join(["d"] * draw(st.integers(20, 300))) + "/" + name + ".py"
            elif kind == "backslash":
                name = "..\\" + name
            elif kind == "duplicate":
                name = "CNNMNIST.ipynb"
            elif kind == "zip" and depth < 2:
                content = draw(zip_archive(depth=depth + 1))
                name += ".zip"
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            if kind == "link":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                content = draw(st.sampled_from([b"/etc/passwd", b"../..", b"loop"]))
            elif kind == "fifo":
                info.external_attr = (stat.S_IFIFO | 0o644) << 16
            elif kind == "dir":
                info = zipfile.ZipInfo(name + "/")
                info.external_attr = (stat.S_IFDIR | 0o755) << 16
                content = b""
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, content)
        if draw(st.booleans()):
            archive.writestr("CNNMNIST.ipynb", json.dumps(notebook_json()))
    data = buffer.getvalue()
    if draw(st.booleans()):  # a name that is not UTF-8, as old Windows zip tools write them
        data = data.replace(b"CNNMNIST.ipynb", b"CNNMNIS\xe9.ipynb")
    return data


@st.composite
def batch_entries(draw) -> list[tuple[str, bytes, bytes | str]]:
    """A batch folder's contents: (kind, raw name, content or link target) per entry."""
    entries = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["notebook", "python", "zip", "folder", "link", "loop", "lms"]))
        name = draw(file_name())
        if kind == "notebook":
            entries.append((kind, name + b".ipynb", draw(notebook_bytes())))
        elif kind == "python":
            entries.append((kind, name + b".py", draw(python_bytes)))
        elif kind == "zip":
            entries.append((kind, name + b".zip", draw(zip_archive())))
        elif kind == "lms":
            late = draw(st.sampled_from([b"", b"LATE_"]))
            lms = b"smith_" + late + b"123_%d_" % draw(st.integers(1, 99)) + draw(st.sampled_from([
                b"CNNMNIST.ipynb", b"CNNMNIST-1.ipynb", b"caf\xe9.ipynb", b"hand-in.zip"]))
            content = draw(zip_archive()) if lms.endswith(b".zip") else draw(notebook_bytes())
            entries.append((kind, lms, content))
        elif kind == "folder":
            entries.append((kind, name, draw(notebook_bytes())))
        else:
            entries.append((kind, name, draw(st.sampled_from([b"/etc", b"..", b"nowhere", b"."]))))
    return entries


# ---------------------------------------------------------------------------------------- what must hold


def _write(path: bytes, data: bytes) -> None:
    with open(path, "wb") as stream:
        stream.write(data)


def _build_batch(folder: bytes, entries: list[tuple[str, bytes, bytes | str]]) -> None:
    """Write a batch folder from ``batch_entries`` (later entries of the same name are dropped)."""
    for kind, name, content in entries:
        path = os.path.join(folder, name)
        if os.path.lexists(path) or len(name) > 255:
            continue
        if kind == "folder":
            os.mkdir(path)
            _write(os.path.join(path, b"CNNMNIST.ipynb"), content)
            _write(os.path.join(path, b"notes-\xff.py"), b"x = 1\n")
            os.symlink(b"loop", os.path.join(path, b"loop"))
            os.symlink(b"b", os.path.join(path, b"a"))
            os.symlink(b"a", os.path.join(path, b"b"))
            os.symlink(b"/etc/passwd", os.path.join(path, b"passwd.py"))
            os.symlink(b"CNNMNIST.ipynb", os.path.join(path, b"copy.ipynb"))
        elif kind == "link":
            os.symlink(content, path)
        elif kind == "loop":
            os.symlink(name, path)
        else:
            _write(path, content)


def _check(results: list[Submission | LoadFailure], staging: Path) -> None:
    """Everything loading returned is a verdict a person can read, and what it staged is safe to read on."""
    for result in results:
        assert isinstance(result, (Submission, LoadFailure)), result
        messages = [result.student] + ([result.reason] if isinstance(result, LoadFailure) else list(result.warnings))
        for message in messages:
            message.encode("utf-8")  # reports, the gradebook and the log are UTF-8: no surrogates may reach them
        if isinstance(result, LoadFailure):
            assert not result.reason.startswith(loading.GRADER_FAULT), result.reason
            assert result.reason
            continue
        root = result.root
        assert os.path.commonpath([root.resolve(), staging.resolve()]) == str(staging.resolve())
        assert any(f.lower().endswith(loading.CODE_SUFFIXES) for f in result.files), result.files
        for rel in result.files:
            path = root / rel
            assert not path.is_symlink() and path.is_file(), rel
            if not rel.lower().endswith(loading.CODE_SUFFIXES):
                continue
            data = path.read_bytes()
            assert not data.startswith(codecs.BOM_UTF8), rel
            if rel.lower().endswith(".ipynb"):
                assert loading.notebook_problem(data, rel) is None
                if rel.endswith(".ipynb"):
                    nbformat.read(path, as_version=4)  # what the runner does
                _source_text(path)
                json.dumps(nbformat.read(path, as_version=4), ensure_ascii=False).encode("utf-8")
            else:
                assert loading.python_problem(data, rel) is None
                path.read_text(encoding="utf-8")  # what the runner does before exec
                _source_text(path)


@FUZZ
@given(data=notebook_bytes(), name=file_name(), as_py=st.booleans())
def test_any_single_file_ends_as_a_submission_or_a_failure(data: bytes, name: bytes, as_py: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(os.fsencode(tmp), name[:240] + (b".py" if as_py else b".ipynb"))
        _write(path, data)
        staging = Path(tmp) / "staging"
        _check([load_submission(Path(os.fsdecode(path)), staging)], staging)


@FUZZ
@given(data=zip_archive())
def test_any_zip_ends_as_a_submission_or_a_failure(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hand-in.zip"
        path.write_bytes(data)
        staging = Path(tmp) / "staging"
        _check([load_submission(path, staging)], staging)
        outside = {p.name for p in Path(tmp).iterdir()}
        assert outside <= {"hand-in.zip", "staging"}, outside


@FUZZ
@given(entries=batch_entries())
def test_any_batch_folder_or_zip_ends_with_a_verdict_per_student(entries) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        batch = os.path.join(os.fsencode(tmp), b"batch")
        os.mkdir(batch)
        _build_batch(batch, entries)
        staging = Path(tmp) / "staging"
        results = load_batch(Path(os.fsdecode(batch)), staging)
        _check(results, staging)
        assert len({r.student for r in results}) == len(results)
        # The same batch as a bulk zip (links and unreadable names as a zip tool stores them).
        bulk = Path(tmp) / "bulk.zip"
        with zipfile.ZipFile(bulk, "w") as archive:
            for directory, _, names in os.walk(batch):
                for name in names:
                    full = os.path.join(directory, name)
                    info = zipfile.ZipInfo(os.path.relpath(full, batch).decode("utf-8", "replace"))
                    if os.path.islink(full):
                        info.external_attr = (stat.S_IFLNK | 0o777) << 16
                        archive.writestr(info, os.readlink(full))
                    else:
                        archive.writestr(info, Path(os.fsdecode(full)).read_bytes())
        from_zip = load_batch(bulk, Path(tmp) / "bulk-staging")
        _check(from_zip, Path(tmp) / "bulk-staging")
        assert len({r.student for r in from_zip}) == len(from_zip)
