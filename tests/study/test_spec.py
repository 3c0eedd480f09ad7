"""Study files: every mistake is one line naming the file and the key, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from studyfiles import GRID, TINY, TUNED

from nnstudy.cli import main
from nnstudy.errors import SpecError
from nnstudy.study import load_study
from nnstudy.study.design import plan_arms

STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.toml"))

#: (id, study text, what the one line must name)
BAD = [
    ("malformed-toml", TINY + "\n[scientific\nx = 1\n", "malformed TOML"),
    ("unknown-table", TINY + "\n[extra]\na = 1\n", "extra: unknown table"),
    ("unknown-study-key", TINY.replace('name = "tiny"', 'name = "tiny"\nnmae = 2'), "study.nmae"),
    ("unknown-base-key", TINY + "dropuot = 0.1\n", "base.dropuot"),
    ("dotted-path-no-field", TINY + '\n[scientific]\n"optimizer.learning_rate" = [0.1]\n',
     'scientific."optimizer.learning_rate"'),
    ("field-of-another-model-kind", TINY + '\n[scientific]\n"model.channels" = [[8]]\n', 'scientific."model.channels"'),
    ("empty-list", TINY + "\n[scientific]\nbatch_size = []\n", "scientific.batch_size"),
    ("bad-value-in-list", TINY + '\n[scientific]\n"optimizer.lr" = [0.1, -1]\n', 'scientific."optimizer.lr"'),
    ("log-range-nonpositive", TINY + '\n[nuisance]\n"optimizer.lr" = { log = [0, 1] }\ntrials = 2\n',
     'nuisance."optimizer.lr"'),
    ("range-reversed", TINY + '\n[nuisance]\n"optimizer.lr" = { uniform = [0.5, 0.1] }\ntrials = 2\n',
     'nuisance."optimizer.lr"'),
    ("range-bound-invalid-for-field",
     TINY + '\n[nuisance]\n"optimizer.momentum" = { uniform = [0.5, 1.0] }\ntrials = 2\n',
     'nuisance."optimizer.momentum"'),
    ("not-a-search-space", TINY + '\n[nuisance]\n"optimizer.lr" = 0.1\ntrials = 2\n', 'nuisance."optimizer.lr"'),
    ("no-trials", TINY + '\n[nuisance]\n"optimizer.lr" = { log = [0.01, 1] }\n', "nuisance.trials"),
    ("grid-without-points", TINY + '\n[nuisance]\n"optimizer.lr" = { log = [0.01, 1] }\nsampler = "grid"\n',
     'nuisance."optimizer.lr"'),
    ("seeds-0", TINY.replace("seeds = 2", "seeds = 0"), "study.seeds"),
    ("tuning-seed-is-a-final-seed", TINY + '\n[nuisance]\n"optimizer.lr" = { log = [0.01, 1] }\ntrials = 2\nseed = 1\n',
     "nuisance.seed"),
    ("reserved-key", TINY + "\n[scientific]\nseed = [1, 2]\n", "scientific.seed"),
    ("same-key-scientific-and-nuisance",
     TINY + '\n[scientific]\n"optimizer.lr" = [0.1]\n[nuisance]\n"optimizer.lr" = { log = [0.01, 1] }\ntrials = 2\n',
     'nuisance."optimizer.lr"'),
    ("duplicate-arms", TINY + '\n[scientific]\n"model.dropout" = [0, 0.0]\n', 'scientific."model.dropout"'),
    ("model-too-deep-for-28x28",
     TINY + '\n[scientific]\nmodel = [{ kind = "cnn", channels = [4, 4, 4, 4, 4, 4], padding = 0 }]\n',
     "scientific.model"),
    ("val-metric-without-split", TINY.replace("validation = 0.01", "validation = 0"), "study.metric"),
    ("bad-name", TINY.replace('name = "tiny"', 'name = "../up"'), "study.name"),
    ("pack-not-a-boolean", TINY.replace('name = "tiny"', 'name = "tiny"\npack = "yes"'), "study.pack"),
    ("labels-beside-two-lists", TINY + '\n[scientific]\nbatch_size = [32, 64]\nepochs = [1, 2]\nlabels = ["a", "b"]\n',
     "scientific.labels"),
    ("labels-too-few", TINY + '\n[scientific]\nbatch_size = [32, 64]\nlabels = ["small"]\n', "scientific.labels"),
    ("labels-twice-the-same", TINY + '\n[scientific]\nbatch_size = [32, 64]\nlabels = ["b", "b"]\n',
     "scientific.labels"),
    ("value-name-not-text", TINY + '\n[scientific]\nmodel = [{ kind = "linear", name = 3 }, { kind = "mlp" }]\n',
     "scientific.model"),
]


@pytest.mark.parametrize("text,key", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_study_file_is_one_line_naming_file_and_key(study_file, text, key):
    path = study_file(text)
    with pytest.raises(SpecError) as e:
        load_study(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and key in msg and "\n" not in msg, msg


@pytest.mark.parametrize("text,key", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_study_file_on_the_command_line_exits_2_and_writes_nothing(study_file, tmp_path, capsys, text, key):
    path, folder = study_file(text), tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["run", str(path), "--dir", str(folder)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2
    assert len(err.splitlines()) == 1 and str(path) in err and key in err, err
    assert not folder.exists() and not list(tmp_path.rglob("*.db"))


@pytest.mark.parametrize("text,line", [
    (TINY.replace('name = "tiny"', 'name = "tiny"\nseeeds = 3'),
     "study.seeeds = 3: unknown key; did you mean study.seeds?"),
    (TINY + "\n[sceintific]\nbatch_size = [32]\n", "sceintific: unknown table; did you mean scientific?"),
    (TINY + '\n[scientific]\n"optimizer.momentun" = [0.9]\n', "did you mean optimizer.momentum?"),
])
def test_an_unknown_key_says_which_known_key_it_is_close_to(study_file, text, line):
    with pytest.raises(SpecError) as e:
        load_study(study_file(text))
    assert line in str(e.value), str(e.value)


def test_set_overrides_any_key(study_file):
    spec = load_study(study_file(TUNED), [("base.epochs", 3), ("scientific.optimizer.momentum", [0.0, 0.9]),
                                          ("nuisance.trials", 5), ("study.seeds", 4)])
    assert spec.base["epochs"] == 3 and spec.trials == 5 and spec.study.seeds == 4
    assert [a.label for a in spec.arms()][-1] == "model.activation=tanh, optimizer.momentum=0.9"
    assert "with --set" in spec.source


def test_a_bad_override_names_the_file_the_override_and_the_key(study_file):
    with pytest.raises(SpecError, match=r"study\.toml with --set study\.seeds=0: study\.seeds = 0"):
        load_study(study_file(GRID), [("study.seeds", 0)])


def test_arm_labels_follow_file_order_and_read_as_key_value():
    spec_text = TINY + '\n[scientific]\nbatch_size = [32, 64]\n"model.hidden" = [8, [8, 8]]\n'
    path = Path(__file__).parent / "_labels.toml"  # not a fixture: tmp paths would make labels unstable
    try:
        path.write_text(spec_text)
        labels = [a.label for a in load_study(path).arms()]
    finally:
        path.unlink()
    assert labels == ["batch_size=32, model.hidden=8", "batch_size=32, model.hidden=[8, 8]",
                      "batch_size=64, model.hidden=8", "batch_size=64, model.hidden=[8, 8]"]


def test_arms_are_named_by_the_file_or_by_what_differs(study_file):
    """Names read in every table, figure and sentence; the labels (the store's key) stay as they were,
    so naming an arm changes no run."""
    models = '[{ kind = "linear" }, { kind = "mlp", hidden = [100] }, { kind = "mlp", hidden = [300] }]'
    derived = load_study(study_file(TINY + f"\n[scientific]\nmodel = {models}\n"))
    assert [a.name for a in derived.arms()] == ["linear", "mlp [100]", "mlp [300]"]
    labels = [a.label for a in derived.arms()]
    assert labels[0] == "model={kind=linear}"
    two = load_study(study_file(TINY + '\n[scientific]\nbatch_size = [32, 64]\n"model.activation" = ["relu", "tanh"]'))
    assert [a.name for a in two.arms()][:2] == ["batch_size=32, model.activation=relu",
                                                 "batch_size=32, model.activation=tanh"]
    given = load_study(study_file(TINY + f'\n[scientific]\nmodel = {models}\nlabels = ["softmax", "narrow", "wide"]\n'))
    assert [a.name for a in given.arms()] == ["softmax", "narrow", "wide"]
    assert [a.label for a in given.arms()] == labels
    assert [r.identity for p in plan_arms(given, {}.get) for r in p.planned] == [
        r.identity for p in plan_arms(derived, {}.get) for r in p.planned]
    inline = models.replace('{ kind = "linear" }', '{ kind = "linear", name = "softmax regression" }')
    named = load_study(study_file(TINY + f"\n[scientific]\nmodel = {inline}\n"))
    assert [a.name for a in named.arms()] == ["softmax regression", "mlp [100]", "mlp [300]"]
    assert [a.label for a in named.arms()] == labels  # the name is no RunSpec key


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_example_study_validates_and_expands(path):
    spec = load_study(path)
    assert spec.study.question and spec.name == path.stem
    plans = plan_arms(spec, {}.get)
    sliced = spec.study.seeds if spec.nuisance is not None and spec.nuisance.slice else 0
    assert sum(p.nominal for p in plans) == len(spec.arms()) * (spec.trials + spec.study.seeds + sliced)
    first = [r for p in plans for r in p.planned]
    if spec.nuisance is None:  # a grid: every run is decided, and final
        assert len(first) == len(spec.arms()) * spec.study.seeds and all(r.spec.test for r in first)
    else:  # the first tuning round of every arm
        assert len(first) == len(spec.arms()) * min(spec.nuisance.parallel, spec.trials)
        assert not any(r.spec.test for r in first) and {r.spec.seed for r in first} == {spec.nuisance.seed}


def test_example_studies_include_the_issue_list():
    names = {p.stem for p in STUDIES}
    assert {"quickstart", "batch-size", "learning-rate", "activation", "width", "weight-decay", "dropout"} <= names
