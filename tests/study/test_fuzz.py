"""A fuzz test of the study file (issue 13): thousands of generated and mutated study files, each
through the path ``nnstudy run`` takes from the file to its refusal (``load_study``: reading, TOML,
the schema, every arm's RunSpec at every bound, the models, the design's first round), in process and
without training. The only outcomes allowed: the study is accepted, or one ``SpecError`` line that
names the file; never another exception, never a file written. A sample of the refused files also goes
through ``nnstudy run`` in a subprocess, which must print that same line and exit 2.

Hypothesis runs with ``derandomize=True`` (a fixed seed: the same files every run) and
``NNSTUDY_FUZZ_EXAMPLES`` examples per test (default 1000, so 2000 in all); more: e.g.
``NNSTUDY_FUZZ_EXAMPLES=20000 python -m pytest tests/study/test_fuzz.py`` (docs/studies.md).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnstudy.errors import SpecError
from nnstudy.spec import dump_toml, load_toml
from nnstudy.study import load_study

REPO = Path(__file__).parents[2]
SHIPPED = sorted((REPO / "studies").rglob("*.toml"))
EXAMPLES = int(os.environ.get("NNSTUDY_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])

# -------------------------------------------------------------------------------------- values, keys

#: Numbers at and past every kind of edge: zero, negatives, fractions, huge, non-finite, booleans.
NUMBERS = st.one_of(
    st.sampled_from([0, 1, 2, -1, 3, 32, 100, 10**6, 2**63, -(2**63), 10**30, 0.0, 0.5, 0.999, 1.0, 1e-9, 1e300,
                     -0.1, float("inf"), float("-inf"), float("nan"), True, False]),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=True, allow_infinity=True),
)
TEXT = st.one_of(st.sampled_from(["", "mnist", "relu", "adam", "full", "grid", "tpe", "val_loss", "<script>", "a.b"]),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))  # no lone surrogates
SCALARS = st.one_of(NUMBERS, TEXT, st.booleans())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(TEXT, inner, max_size=2)), max_leaves=4)
#: RunSpec keys a study sets: real ones (every kind of value), and a few that are not.
RUN_KEYS = ["batch_size", "epochs", "max_loss", "train_eval", "precision", "model.kind", "model.hidden",
            "model.activation", "model.dropout", "model.batchnorm", "model.init", "model.channels", "model.kernel",
            "model.head", "model.width", "model.depth", "model.shape", "budget.params", "optimizer.name",
            "optimizer.lr", "optimizer.momentum", "optimizer.nesterov", "optimizer.weight_decay", "optimizer.beta2",
            "schedule.name", "schedule.gamma", "schedule.warmup_epochs", "schedule.min_lr", "early_stopping.patience",
            "optimizer.lrr", "model.hiden", "seed", "test", "threads", "data.limit", "nonsense"]


def _good_number(key: str) -> st.SearchStrategy:
    """Values that are often right for ``key``, so that files get past the first check."""
    if key in ("batch_size", "epochs", "model.kernel", "early_stopping.patience"):
        return st.integers(1, 64)
    if key in ("model.hidden", "model.channels", "model.head"):
        return st.lists(st.integers(1, 64), min_size=1, max_size=3)
    return st.floats(1e-4, 0.9)


def _science(key: str) -> st.SearchStrategy:
    return st.lists(st.one_of(_good_number(key), VALUES), min_size=1, max_size=3)


DISTRIBUTIONS = st.one_of(
    st.fixed_dictionaries({"log": st.lists(st.one_of(st.floats(1e-5, 1.0), NUMBERS), min_size=2, max_size=2)},
                          optional={"points": st.one_of(st.integers(-2, 6), NUMBERS)}),
    st.fixed_dictionaries({"uniform": st.lists(st.one_of(st.floats(0, 1), NUMBERS), min_size=2, max_size=2)},
                          optional={"points": st.integers(-2, 6)}),
    st.fixed_dictionaries({"int": st.lists(st.one_of(st.integers(1, 8), NUMBERS), min_size=2, max_size=2)}),
    st.fixed_dictionaries({"choice": st.lists(st.one_of(st.floats(1e-4, 1.0), VALUES), min_size=0, max_size=3)}),
    VALUES,
)


@st.composite
def generated(draw) -> dict[str, Any]:
    """A study file drawn from its schema: every table, each key often valid and often not."""
    pick = lambda good, bad: draw(st.one_of(good, bad) if draw(st.booleans()) else good)  # noqa: E731
    study: dict[str, Any] = {"name": pick(st.sampled_from(["fuzz", "a-b.c_1"]), TEXT)}
    for key, good in (("question", TEXT), ("metric", st.sampled_from(["val_accuracy", "val_loss", "train_loss"])),
                      ("seeds", st.integers(1, 3)), ("threads", st.integers(1, 2)), ("max_runs", st.integers(1, 9)),
                      ("max_minutes", st.floats(0.1, 9)), ("pack", st.booleans())):
        if draw(st.booleans()):
            study[key] = pick(good, VALUES)
    raw: dict[str, Any] = {"study": study}
    if draw(st.booleans()):
        raw["data"] = {k: pick(good, VALUES) for k, good in draw(st.lists(st.sampled_from([
            ("per_class", st.integers(1, 50)), ("validation", st.floats(0, 0.5)), ("limit", st.integers(1, 500)),
            ("dataset", st.sampled_from(["mnist", "kmnist", "cifar"])), ("normalize", st.sampled_from(["unit", "x"])),
            ("fraction", st.floats(0.01, 1)), ("split_seed", st.integers(0, 5))]),
            max_size=3, unique_by=lambda kv: kv[0]))}
    if draw(st.booleans()):
        raw["base"] = {k: pick(_good_number(k), VALUES) for k in draw(st.lists(st.sampled_from(RUN_KEYS), max_size=4,
                                                                                 unique=True))}
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(RUN_KEYS), min_size=0, max_size=2, unique=True))
        raw["scientific"] = {k: draw(_science(k)) if draw(st.booleans()) else draw(VALUES) for k in keys}
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(RUN_KEYS), min_size=0, max_size=2, unique=True))
        nuisance: dict[str, Any] = {k: draw(DISTRIBUTIONS) for k in keys}
        for key, good in (("trials", st.integers(1, 4)), ("sampler", st.sampled_from(["grid", "random", "qmc", "tpe"])),
                          ("parallel", st.integers(1, 4)), ("seed", st.integers(0, 2000)), ("slice", st.booleans()),
                          ("pruner", st.sampled_from(["none", "median", "asha"]))):
            if draw(st.booleans()):
                nuisance[key] = pick(good, VALUES)
        raw["nuisance"] = nuisance
    if draw(st.integers(0, 9)) == 0:
        raw[draw(TEXT)] = draw(VALUES)  # an unknown table
    return raw


# ------------------------------------------------------------------------------------------ mutations


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in ``tree`` (dict keys and list indexes)."""
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


def _misspell(draw, key: str) -> str:
    if len(key) < 2:
        return key + "x"
    i = draw(st.integers(0, len(key) - 2))
    return draw(st.sampled_from([key[:i] + key[i + 1:], key[:i] + key[i + 1] + key[i] + key[i + 2:],
                                 key.upper(), key + "s", key.replace("_", "-") if "_" in key else key + "_"]))


@st.composite
def mutated(draw) -> tuple[Path, bytes]:
    """A shipped study file with one to three mutations of its tables, or of its bytes."""
    path = draw(st.sampled_from(SHIPPED))
    text = path.read_bytes()
    if draw(st.integers(0, 3)) == 0:  # odd bytes
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(text)))
            odd = [b"\xff", b"\x00", b"\xef\xbb\xbf", b"\r", b"\\", b'"', b"[", b"\xc3"]
            junk = draw(st.one_of(st.binary(min_size=1, max_size=4), st.sampled_from(odd)))
            text = text[:i] + junk + text[i + draw(st.integers(0, 3)):]
        return path, text
    raw = load_toml(path)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(raw)
        where = draw(st.sampled_from(paths))
        parent = raw
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        value = parent[last]
        how = draw(st.sampled_from(["value", "number", "delete", "unknown", "misspell", "duplicate", "wrap", "string"]))
        if how == "value":
            parent[last] = draw(VALUES)
        elif how == "number":
            parent[last] = draw(NUMBERS)
        elif how == "delete" and isinstance(parent, dict):
            del parent[last]
        elif how == "unknown" and isinstance(parent, dict):
            parent[draw(TEXT) or "extra"] = draw(VALUES)
        elif how == "misspell" and isinstance(parent, dict):
            parent[_misspell(draw, str(last))] = parent.pop(last)
        elif how == "duplicate" and isinstance(value, list) and value:
            value.append(copy.deepcopy(draw(st.sampled_from(value))))
        elif how == "duplicate" and isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[last] = [value, value, float(value)]
        elif how == "wrap":
            parent[last] = [value]
        elif how == "string" and not isinstance(value, (dict, list)):
            parent[last] = str(value)
    return path, dump_toml(raw).encode() if raw else b""


# ---------------------------------------------------------------------------------------------- check

@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(raw=st.dictionaries(TEXT, st.one_of(SCALARS.filter(lambda v: v == v), st.dictionaries(TEXT, TEXT, max_size=3)),
                           max_size=4))
def test_what_nnstudy_writes_as_toml_reads_back_the_same(raw):
    """study.toml (and a run's spec.toml) is written by ``dump_toml``: any key or string a study can
    hold must read back as written (JSON's surrogate-pair escapes, a raw DEL, or a split at U+2028
    made files that nnstudy could not read again)."""
    from nnstudy.spec import parse_toml

    assert parse_toml(dump_toml({"t": raw}), "study.toml") == {"t": raw}


REFUSED: list[tuple[bytes, str]] = []  # (file, its one line), for the subprocess sample


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _outcome(folder: Path, content: bytes) -> str | None:
    """Load ``content`` as ``folder/study.toml`` the CLI's way; None if accepted, else its one line."""
    path = folder / "study.toml"
    path.write_bytes(content)
    cwd = os.getcwd()
    os.chdir(folder)  # a study folder would be runs/<name> here: none may appear
    try:
        load_study(path)
        line = None
    except SpecError as e:
        line = str(e)
        assert "\n" not in line and line.startswith(f"{path}: "), line
    finally:
        os.chdir(cwd)
    assert [p.name for p in folder.iterdir()] == ["study.toml"], list(folder.iterdir())
    if line is not None and len(REFUSED) < 400:
        REFUSED.append((content, line))
    return line


@FUZZ
@given(raw=generated())
def test_generated_study_files_are_accepted_or_one_line(folder, raw):
    _outcome(folder, dump_toml(raw).encode())


@FUZZ
@given(case=mutated())
def test_mutated_shipped_study_files_are_accepted_or_one_line(folder, case):
    _outcome(folder, case[1])


def test_a_sample_of_refusals_through_nnstudy_run_is_the_same_line_and_exit_2(folder, tmp_path, mnist_dir):
    """Four of the refusals of the two above, spread over the kinds of line, as a user meets them (four:
    each is a process): a subprocess, exit 2, that line on stderr alone, no study folder. The two run
    first in file order; where they ran in another process (pytest-xdist), they run here first."""
    if len(REFUSED) < 4:
        test_generated_study_files_are_accepted_or_one_line(folder)
        test_mutated_shipped_study_files_are_accepted_or_one_line(folder)
    assert len(REFUSED) >= 4
    by_kind: dict[str, tuple[bytes, str]] = {}
    for content, line in REFUSED:  # one per kind of message (the text after the file and key)
        by_kind.setdefault(line.split(": ")[-1][:20], (content, line))
    sample = list(by_kind.values())[:: max(1, len(by_kind) // 4)][:4]
    env = {**os.environ, "NNSTUDY_DATA": str(mnist_dir), "NNSTUDY_MIRRORS": "http://127.0.0.1:9/", "NNSTUDY_NPM": ""}
    procs = []
    for i, (content, line) in enumerate(sample):
        case = tmp_path / f"case{i}"
        case.mkdir()
        (case / "study.toml").write_bytes(content)
        procs.append((case, line, subprocess.Popen(
            [sys.executable, "-m", "nnstudy", "run", "study.toml", "--dir", "out", "--quiet"], cwd=case, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for case, line, p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 2, (line, out, err)
        assert err == f"error: {line.replace(str(folder / 'study.toml'), 'study.toml')}\n", (line, err)
        assert sorted(x.name for x in case.iterdir()) == ["study.toml"]
