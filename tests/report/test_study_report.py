"""The report's answers on real studies (issue 4's "must show"), and what it writes."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from nnstudy.analysis import A_BETTER, UNDECIDED
from nnstudy.report import StudyReport

pytestmark = pytest.mark.slow  # each study trains on real MNIST (a few seconds)

FIGURES = ("curves", "scores", "isolation", "prob_better", "budget", "gallery", "confusion")


def test_mlp_beats_linear_with_p_interval_above_half(reports):
    report = reports("mlp-vs-linear")
    answer = report.findings[0]
    assert answer.kind == "answer"
    assert "mlp" in answer.numbers["best"] and "linear" in answer.numbers["runner_up"]
    assert answer.numbers["n_pairs"] == 5
    assert answer.numbers["decision"] == A_BETTER
    assert answer.numbers["p_low"] > 0.5, answer.sentence
    assert "it beats the runner-up linear" in answer.sentence
    assert answer.sentence in report.markdown()
    assert str(escape(answer.sentence)) in report.html()


def test_same_configuration_cannot_be_told_apart(reports):
    report = reports("same-config")
    answer = report.findings[0]
    assert answer.numbers["decision"] == UNDECIDED
    assert answer.numbers["p_low"] <= 0.5 <= answer.numbers["p_high"]
    assert "cannot be told apart" in answer.sentence
    assert [c.name for c in report.checks if c.severity == "warning"] == ["not_separable"]
    assert "| cannot be told apart |" in report.markdown()  # the pairwise table's verdict


@pytest.mark.parametrize(("study", "flagged"), [("batch-size-fixed", True), ("batch-size-tuned", False)])
def test_fixed_learning_rate_confound_is_flagged_only_when_the_rate_is_fixed(reports, study, flagged):
    report = reports(study)
    names = [c.name for c in report.checks]
    assert ("fixed_learning_rate" in names) is flagged
    text = report.markdown()
    assert ("compared at one fixed learning rate (0.05)" in text) is flagged
    assert any(f.kind == "check:fixed_learning_rate" for f in report.findings) is flagged


def test_gallery_is_the_best_runs_test_predictions(reports):
    report = reports("mlp-vs-linear")
    p = report.content.predictions
    assert p is not None and "mlp" in p.arm
    finals = report.content.results.query("arm == @p.arm and phase == 'final'")
    best = finals.sort_values(["val_accuracy", "seed"], ascending=[False, True]).iloc[0]
    assert (p.run, p.seed) == (best["run"], best["seed"])
    assert p.n == 10_000 and p.counts.sum() == 10_000
    # the stored test accuracy of that run, recomputed from its saved weights (the same up to a near-tie
    # flipped by another thread count's summation order)
    assert p.accuracy == pytest.approx(p.stored_accuracy, abs=1.5 / p.n)
    assert (p.wrong_predicted != p.wrong_true).all() and len(p.wrong_true) == 12


def test_write_gives_a_self_contained_page_markdown_and_every_figure(reports, tmp_path):
    report = reports("batch-size-tuned")
    path = report.write(tmp_path)
    assert path == tmp_path / "report.html"
    for name in FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (tmp_path / "figures" / f"{name}.svg").read_bytes()[:2000]
    page = path.read_text()
    sources = re.findall(r'<(?:img|script|link|iframe)\b[^>]*\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:") for s in sources), sources
    assert page.count("data:image/png;base64,") == len(FIGURES)
    md = (tmp_path / "report.md").read_text()
    for name in FIGURES:
        assert f"](figures/{name}.png)" in md
    for f in report.findings:  # the same findings in both documents
        assert str(escape(f.sentence)) in page
    # both slices in words: the tuned answer and the untuned one at the base learning rate
    [untuned] = [f for f in report.findings if f.kind == "slice"]
    assert untuned.sentence.startswith("Untuned, every arm at the base optimizer.lr = ")
    assert "Untuned, every arm at the base optimizer.lr = " in md and "mean difference" in md
    for section in ("findings", "checks", "figures", "arms", "pairwise", "chosen", "study-file", "run-specs",
                    "environment"):
        assert f'<section id="{section}">' in page
    assert report.content.study_text.strip() in md and "[nuisance]" in md
    assert md.count("```toml") == 1 + 2  # the study file and each arm's final RunSpec


def test_repr_html_is_the_page_body(reports):
    report = reports("batch-size-tuned")
    body = report._repr_html_()
    assert not body.lstrip().startswith("<!DOCTYPE") and "<html" not in body
    # the page's SVG links (data URIs) are left out of the body: a notebook keeps no copy of them
    page = re.sub(r' <a href="data:image/svg\+xml;base64,[^"]+" download="\w+\.svg">SVG</a>', "", report.html())
    assert body.strip() in page


def test_rewriting_removes_figures_the_new_report_does_not_draw(reports, tmp_path):
    reports("batch-size-tuned").write(tmp_path)
    assert (tmp_path / "figures" / "budget.png").exists()
    reports("batch-size-fixed").write(tmp_path)  # no tuning: no isolation plot, no budget curve
    assert not (tmp_path / "figures" / "budget.png").exists()
    assert not (tmp_path / "figures" / "isolation.svg").exists()
    assert (tmp_path / "figures" / "scores.png").exists()


def test_a_study_without_final_runs_yet_still_reports(study_files, mnist_dir, tmp_path):
    from nnstudy.study import load_study, open_study, run_study

    spec = load_study(study_files / "batch-size-tuned.toml", {"study.max_runs": 2})
    run_study(spec, tmp_path / "partial", workers=1, data_dir=mnist_dir, quiet=True)
    report = StudyReport(open_study(tmp_path / "partial"), data_dir=mnist_dir)
    assert report.findings[0].sentence.startswith("No final run has a val_accuracy yet")
    assert "no arm has a completed final run" in report.content.notes["gallery"]
    report.write(tmp_path / "out")
    assert "No final run has a val_accuracy yet" in (tmp_path / "out" / "report.md").read_text()


def test_stored_runs_outside_the_design_are_counted_and_left_out(studies, tmp_path):
    import shutil

    from nnstudy.study import open_study

    folder = tmp_path / "copy"
    shutil.copytree(studies("same-config").folder, folder)
    toml = folder / "study.toml"
    toml.write_text(toml.read_text().replace("seeds = 5", "seeds = 3"))  # seeds 3 and 4 leave the design
    report = StudyReport(open_study(folder), gallery=False)
    assert report.content.unplanned == 4 and len(report.content.results) == 6
    assert "4 other stored runs not in this design" in report.markdown()
