"""Turning a report's content into documents: one view (``view``) rendered by two jinja2 templates.

``templates/report.html.j2`` gives a self-contained page (figures as base64 PNG data URIs, CSS and a
few lines of table-sorting JavaScript inline, no request leaves the page); with ``standalone=False``
it gives the same body alone, for Jupyter. ``templates/report.md.j2`` gives the same sections in
Markdown, linking the PNG files under ``figures/``. Both read the same ``view`` dict, so the two
documents cannot drift apart.

Tables are ``Table``s of ``Cell``s: the text a person reads and the value the HTML sorts by.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from nnstudy.analysis import A_BETTER, B_BETTER, VERDICT_RULE
from nnstudy.analysis import formatting as fmt
from nnstudy.report.content import Content

__all__ = ["Cell", "Figure", "Table", "html", "markdown", "view"]


@dataclass(frozen=True)
class Cell:
    """A table cell: ``text`` as shown, with an optional ``detail`` (an interval) under it in HTML and
    after it in Markdown; ``sort`` the number it sorts by (None: its text; NaN: a missing number,
    sorted last)."""

    text: str
    sort: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Table:
    """A sortable table: ``id`` (HTML id), column names, rows of cells, and an optional caption."""

    id: str
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A rendered figure: PNG and SVG bytes with its title and caption."""

    name: str
    title: str
    caption: str
    png: bytes
    svg: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def svg_data_uri(self) -> str:
        """The SVG inside the page, so its link works wherever the one file goes (mailed, moved)."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode("ascii")


def _num(x: Any) -> float:
    """``x`` as a finite float, else NaN (a missing number)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _missing(x: Any) -> bool:
    return math.isnan(_num(x))


def _mean_cell(row: pd.Series, metric: str) -> Cell:
    """``83.25% [81.05%, 85.45%]``, sorted by the mean."""
    mean, low, high = row.get(f"{metric}_mean"), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if _missing(mean):
        return Cell(fmt.NA, math.nan)
    detail = "" if _missing(low) else fmt.interval(low, high, metric)
    return Cell(fmt.value(mean, metric), float(mean), detail)


def _shown_metrics(c: Content) -> list[str]:
    """The study metric, then the test metrics (the figures have the rest)."""
    wanted = [c.ctx.metric, c.test_metric, "test_accuracy", "test_loss"]
    return [x for x in dict.fromkeys(wanted) if f"{x}_mean" in c.summary.columns]


def _value_cell(v: Any) -> Cell:
    """A hyperparameter value: numbers sort as numbers, anything else by its text; missing: a dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return Cell("—", math.nan)
    return Cell(fmt.num(v), None if _missing(v) else float(v))


def arm_table(c: Content) -> Table:
    """One row per arm, in rank order (arms without a completed final run last)."""
    metrics = _shown_metrics(c)
    rank = {arm: i + 1 for i, (arm, _) in enumerate(c.ranked)}
    keys = list(c.chosen.columns) if not c.chosen.empty else []
    columns = ["rank", "arm", "final runs", "diverged", "failed"]
    for i, m in enumerate(metrics):
        columns += [f"{m} (95% CI)", f"{m} std"] if i == 0 else [f"{m} (95% CI)"]
    columns += [*keys, "params", "seconds per run"]
    finals = c.results[c.results["phase"] == "final"] if len(c.results) else c.results
    rows = []
    order = sorted(c.summary.index, key=lambda a: rank.get(a, len(rank) + 1 + c.arms.index(a)))
    for arm in order:
        s = c.summary.loc[arm]
        mine = finals[finals["arm"] == arm]
        n, runs, diverged, failed = (int(s[k]) for k in ("n", "runs", "diverged", "failed"))
        cells = [Cell(str(rank[arm]) if arm in rank else "—", rank.get(arm, math.nan)), Cell(arm),
                 Cell(f"{n} of {runs}", n), Cell(str(diverged), diverged), Cell(str(failed), failed)]
        for i, m in enumerate(metrics):
            cells.append(_mean_cell(s, m))
            if i == 0:
                std = s.get(f"{m}_std")
                cells.append(Cell(fmt.NA if _missing(std) else fmt.bare(std, m) + fmt.unit(m), _num(std)))
        for k in keys:
            v = c.chosen.loc[arm, k] if arm in c.chosen.index else math.nan
            cells.append(_value_cell(v))
        params = pd.to_numeric(mine["params"], errors="coerce").dropna()
        cells.append(Cell(f"{int(params.iloc[0]):,}", float(params.iloc[0])) if len(params) else Cell("—", math.nan))
        secs = pd.to_numeric(mine["seconds"], errors="coerce").dropna()
        cells.append(Cell(f"{secs.mean():.2f}", float(secs.mean())) if len(secs) else Cell("—", math.nan))
        rows.append(cells)
    caption = ("Final runs of each arm: mean with its 95% t-interval over seeds; accuracies in percent, "
               "standard deviations in points. Click a header to sort.")
    return Table("arms", columns, rows, caption)


def pairwise_table(c: Content) -> Table:
    """Each pair of ranked arms once, the higher-ranked as A."""
    m = c.ctx.metric
    columns = ["A", "B", "seed pairs", "P(A beats B) (95% CI)", "mean A − B (95% CI)", "verdict"]
    rank = {arm: i for i, (arm, _) in enumerate(c.ranked)}
    rows = []
    if not c.pairs.empty:
        pairs = c.pairs[c.pairs["a"].isin(rank) & c.pairs["b"].isin(rank)]
        pairs = pairs[[rank[a] < rank[b] for a, b in zip(pairs["a"], pairs["b"], strict=True)]]
        for r in pairs.sort_values(["a", "b"], key=lambda s: s.map(rank)).itertuples(index=False):
            verdict = {A_BETTER: f"{r.a} better", B_BETTER: f"{r.b} better"}.get(r.decision, r.decision)
            rows.append([
                Cell(r.a), Cell(r.b), Cell(str(int(r.n_pairs)), int(r.n_pairs)),
                Cell(fmt.prob(r.p), _num(r.p), fmt.prob_evidence(r.p, r.p_low, r.p_high, int(r.n_pairs), "A")
                     .removeprefix(fmt.prob(r.p)).strip(" ()") if fmt.degenerate(r.p_low, r.p_high, int(r.n_pairs))
                     else fmt.prob_interval(r.p_low, r.p_high)),
                Cell(fmt.diff(r.diff, m), _num(r.diff), fmt.interval(r.diff_low, r.diff_high, m, as_diff=True)),
                Cell(verdict),
            ])
    caption = (f"P(A beats B): the share of seed pairs in which A's {m} is better (ties count half), with a 95% "
               f"percentile bootstrap interval over pairs (where every pair agrees, the count instead). "
               f"{VERDICT_RULE}.")
    if len(rows) > 1:
        caption += (f" These are {len(rows)} comparisons, each at 95% on its own, with no correction for "
                    f"multiplicity (at least one verdict may be wrong with a chance up to "
                    f"{min(100, 5 * len(rows))}%).")
    return Table("pairwise", columns, rows, caption)


def chosen_table(c: Content) -> Table:
    """The nuisance values each arm's final runs use, with its tuning trials and best tuning score."""
    m = c.ctx.metric
    keys = list(c.chosen.columns)
    tune = c.results[c.results["phase"] == "tune"] if len(c.results) else c.results
    columns = ["arm", *keys, "tuning trials (complete)", f"best tuning {m}"]
    rows = []
    for arm in c.chosen.index:
        t = tune[tune["arm"] == arm]
        done = t[t["status"] == "complete"]
        scores = pd.to_numeric(done[m], errors="coerce").dropna()
        best = (scores.max() if c.ctx.better == "max" else scores.min()) if len(scores) else math.nan
        cells = [Cell(arm)]
        cells += [_value_cell(c.chosen.loc[arm, k]) for k in keys]
        cells += [Cell(f"{len(t)} ({len(done)})", len(t)), Cell(fmt.value(best, m), _num(best))]
        rows.append(cells)
    space = "; ".join(f"{k}: {kind} [{', '.join(map(fmt.num, v))}]" for k, (kind, v) in c.ctx.search_space().items())
    caption = f"Chosen {fmt.chosen_on(m)} ({m}), best tuning trial per arm. Searched: {space}."
    return Table("chosen", columns, rows, caption)


def view(c: Content, figures: list[Figure]) -> dict[str, Any]:
    """Everything the templates show, as plain values."""
    ctx = c.ctx
    statuses = c.results["status"].value_counts().to_dict() if len(c.results) else {}
    runs = ", ".join(f"{n} {s}" for s, n in statuses.items()) or "none yet"
    direction = "higher is better" if ctx.better == "max" else "lower is better"
    phases = [f"{k.split(':', 1)[1]} {fmt.duration(v)}" for k, v in c.compute.items() if k.startswith("phase:")]
    compute = f"{fmt.duration(c.compute['compute'])} over {int(c.compute['runs'])} runs"
    drawn = {f.name for f in figures}
    if phases:
        compute += f" ({', '.join(phases)})"
    return {
        "name": c.name,
        "question": c.question,
        "folder": c.folder,
        "source": c.source,
        "facts": [
            ("metric", f"{ctx.metric} ({direction}), chosen {fmt.chosen_on(ctx.metric)}"),
            ("arms", f"{len(c.arms)}: {', '.join(c.arms)}"),
            ("seeds", f"{ctx.seeds} final runs per arm" + (", each after tuning" if c.tuned else "")),
            ("runs stored", f"{len(c.results)} ({runs})" + (
                f"; {fmt.plural(c.unplanned, 'other stored run')} not in this design (made by another version of "
                "the study file or of nnstudy) left out" if c.unplanned else "")),
        ],
        "findings": [{"rank": f.rank, "kind": f.kind, "sentence": f.sentence, "warning": f.kind.startswith("check:")}
                     for f in c.findings],
        "checks": [{"name": k.name, "severity": k.severity, "sentence": k.sentence} for k in c.checks],
        "figures": figures,
        # the isolation figure's caption already says when the slice was not run
        "notes": [t for part, t in c.notes.items() if not (part == "slice" and "isolation" in drawn)],
        "arm_table": arm_table(c) if not c.summary.empty else None,
        "pairwise_table": pairwise_table(c) if len(c.ranked) >= 2 else None,
        "chosen_table": chosen_table(c) if c.tuned and not c.chosen.empty else None,
        "study_text": c.study_text.rstrip("\n"),
        "run_specs": [{"arm": a, "toml": s.to_toml().rstrip("\n") if s is not None else None,
                       "note": c.run_spec_notes.get(a, "")} for a, s in c.run_specs.items()],
        "environment": [(k, ", ".join(v)) for k, v in c.environment.items()],
        "compute": compute,
        "wall": fmt.duration(c.compute["wall"]),
    }


@cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nnstudy.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = md_escape
    env.filters["fence"] = md_fence
    return env


#: What could start Markdown markup in user text, and its replacement: numeric character references,
#: which CommonMark and python-markdown both read as the literal character (never raw HTML, an
#: autolink, code or emphasis), where a backslash escape works only in CommonMark for some of them
#: (python-markdown keeps ``\\<`` as a backslash, then raw HTML). Brackets stay readable: what
#: would make a link or image of them goes instead (``](``, ``][``, ``] [``, ``]:``, ``![``), and a
#: ``{`` after a space (python-markdown's attribute lists) too.
_MD_ESCAPE = re.compile(r"[&<`*|\\~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|(?<=\])\s?\[|(?<=\])[(:]|!(?=\[)|(?<!\S)\{")


def _reference(m: re.Match) -> str:
    text = m.group()
    return text[:-1] + f"&#{ord(text[-1])};"


def md_escape(text: Any) -> str:
    """User text (a question, an arm label, a path, an error) safe in a Markdown paragraph or table
    cell under CommonMark and python-markdown alike: shown as written, never markup. Underscores inside
    a word (``batch_size``) are no emphasis in either, so they stay as they are."""
    return _MD_ESCAPE.sub(_reference, " ".join(str(text).splitlines()))


def md_fence(text: Any, info: str = "") -> str:
    """``text`` as a fenced code block: a fence of backticks longer than any run of backticks inside
    (CommonMark's rule, and python-markdown's fenced_code: only a line of at least as many closes it)."""
    body = str(text).rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def html(v: dict[str, Any], standalone: bool = True) -> str:
    """The report as a self-contained HTML page, or (``standalone=False``) its body alone."""
    return _env().get_template("report.html.j2").render(standalone=standalone, **v)


def markdown(v: dict[str, Any], figures_dir: str = "figures") -> str:
    """The report as Markdown, linking ``figures_dir/<name>.png``."""
    return _env().get_template("report.md.j2").render(figures_dir=figures_dir, **v)
