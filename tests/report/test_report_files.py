"""The report owns only the files it wrote (issue 13): a user's file in ``figures/``, a ``report.md`` it
did not write and a link out of the folder are never removed, overwritten or followed."""

from __future__ import annotations

import json

import pytest

from cli_main import run_main as _cli
from nnstudy.errors import PathError
from nnstudy.report._files import MANIFEST

pytestmark = pytest.mark.slow  # the report's study trains on real MNIST once per session (seconds)

USER_PNG = b"\x89PNG\r\n\x1a\n a user's own figure"


def _one_line_refusal(code: int, err: str, *says: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for s in says:
        assert s in err, err


def test_a_users_file_in_figures_survives_nnstudy_report(studies, mnist_dir, tmp_path, capsys):
    out = tmp_path / "paper"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "fig1.png").write_bytes(USER_PNG)
    (out / "figures" / "fig2.svg").write_text("<svg/>")
    code, stdout, err = _cli(capsys, "report", str(studies("same-config").folder), "--out", str(out),
                             "--data-dir", str(mnist_dir))
    assert code == 0, err
    assert (out / "figures" / "fig1.png").read_bytes() == USER_PNG
    assert (out / "figures" / "fig2.svg").read_text() == "<svg/>"
    assert (out / "figures" / "scores.png").is_file() and (out / "report.md").is_file()
    assert f"{out / 'figures'}: left alone 2 file(s) the report did not write: fig1.png, fig2.svg" in stdout
    owned = json.loads((out / MANIFEST).read_text())
    assert "report.md" in owned and "figures/scores.png" in owned and "figures/fig1.png" not in owned


@pytest.mark.parametrize("name", ["report.md", "report.html", "figures/scores.png"])
def test_a_users_file_of_a_report_name_is_refused_unless_force(studies, mnist_dir, tmp_path, capsys, name):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / name).write_bytes(b"mine, written by hand")
    args = ("report", str(studies("same-config").folder), "--out", str(out), "--data-dir", str(mnist_dir))
    code, _, err = _cli(capsys, *args)
    _one_line_refusal(code, err, str(out / name), "not written by nnstudy's report", "--force")
    assert (out / name).read_bytes() == b"mine, written by hand"
    assert sorted(p.name for p in out.rglob("*")) == sorted(["figures", *name.split("/")[-1:]])  # nothing written
    code, stdout, err = _cli(capsys, *args, "--force")
    assert code == 0, err
    assert (out / name).read_bytes() != b"mine, written by hand"
    assert f"replaced (--force): {name}" in stdout


def test_a_symlinked_figures_folder_is_refused_even_with_force(studies, mnist_dir, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "scores.png").write_bytes(USER_PNG)
    (elsewhere / "old.svg").write_text("<svg/>")
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").symlink_to(elsewhere)
    for extra in ((), ("--force",)):
        code, _, err = _cli(capsys, "report", str(studies("same-config").folder), "--out", str(out),
                            "--data-dir", str(mnist_dir), *extra)
        _one_line_refusal(code, err, f"{out / 'figures'}: is a symbolic link")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["old.svg", "scores.png"]
    assert (elsewhere / "scores.png").read_bytes() == USER_PNG
    assert not (out / "report.md").exists() and not (out / MANIFEST).exists()


def test_a_link_in_place_of_report_md_is_replaced_never_written_through(reports, tmp_path):
    target = tmp_path / "notes.md"
    target.write_text("my notes")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").symlink_to(target)
    report = reports("same-config")
    with pytest.raises(PathError, match="report.md: exists and was not written"):
        report.write(out)
    report.write(out, force=True)
    assert target.read_text() == "my notes"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text().startswith("# same-config")


def test_only_the_reports_own_figures_are_removed_when_no_longer_drawn(reports, tmp_path):
    reports("batch-size-tuned").write(tmp_path)
    (tmp_path / "figures" / "isolation.svg").write_text("<svg>edited by the user</svg>")  # theirs now
    reports("batch-size-fixed").write(tmp_path)  # draws neither budget nor isolation
    assert not (tmp_path / "figures" / "budget.png").exists()  # the report's own: removed
    assert (tmp_path / "figures" / "isolation.svg").read_text() == "<svg>edited by the user</svg>"
    assert "isolation.svg" in " ".join(reports("batch-size-fixed").write_notes)


def test_a_manifest_cannot_claim_files_outside_the_report(reports, tmp_path):
    """A study folder received from someone else may carry any manifest: only the report's own names
    count, so it cannot aim a removal at ../ or at a user's file."""
    import hashlib

    victim = tmp_path / "victim.png"
    victim.write_bytes(USER_PNG)
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "mine.png").write_bytes(USER_PNG)
    digest = hashlib.sha256(USER_PNG).hexdigest()
    (out / MANIFEST).write_text(json.dumps({"../victim.png": [digest], "figures/../../victim.png": [digest],
                                            "figures/mine.png": "not-a-hash"}))
    reports("same-config").write(out)
    assert victim.read_bytes() == USER_PNG and (out / "figures" / "mine.png").read_bytes() == USER_PNG


def test_nnstudy_run_refuses_a_users_report_before_training(tmp_path, capsys, mnist_dir):
    study = tmp_path / "tiny.toml"
    study.write_text('[study]\nname = "tiny"\nseeds = 2\n\n[data]\nper_class = 20\n\n[base]\nepochs = 1\n\n'
                     '[scientific]\n"model.activation" = ["relu", "tanh"]\n')
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "report.html").write_text("<p>my page</p>")
    code, _, err = _cli(capsys, "run", str(study), "--dir", str(folder), "--data-dir", str(mnist_dir))
    _one_line_refusal(code, err, str(folder / "report.html"), "--force")
    assert sorted(p.name for p in folder.iterdir()) == ["report.html"]  # no study.db: nothing trained


@pytest.mark.parametrize("weights", [b"", bytes(range(256)) * 40], ids=["empty", "random bytes"])
def test_corrupt_weights_are_noted_and_the_report_carries_on(studies, mnist_dir, tmp_path, capsys, weights):
    import shutil

    folder = tmp_path / "study"
    shutil.copytree(studies("same-config").folder, folder)
    for pt in (folder / "runs").glob("*.pt"):
        pt.write_bytes(weights)
    code, stdout, err = _cli(capsys, "report", str(folder), "--data-dir", str(mnist_dir))
    assert code == 0, err
    md = (folder / "report.md").read_text()
    assert "the best run could not be evaluated on the test set" in md and "cannot read the weights of run" in md
    assert "corrupt, empty or not a weights file" in md
    assert not (folder / "figures" / "gallery.png").exists() and (folder / "figures" / "scores.png").exists()


def test_a_store_naming_weights_outside_runs_is_refused(studies, mnist_dir, tmp_path):
    """A study folder received from someone else: its database may name any path as a run's weights;
    only files in its runs/ are read."""
    import shutil
    import sqlite3

    from nnstudy.report import StudyReport
    from nnstudy.study import open_study

    folder = tmp_path / "study"
    shutil.copytree(studies("same-config").folder, folder)
    with sqlite3.connect(folder / "study.db") as db:
        n = db.execute("update trial_user_attributes set value_json = ? where key = 'weights' and value_json != 'null'",
                       (json.dumps("../../elsewhere.pt"),)).rowcount
    assert n > 0
    report = StudyReport(open_study(folder), data_dir=mnist_dir)
    assert "names weights outside runs/ ('../../elsewhere.pt')" in report.content.notes["gallery"]
