"""Small real studies for the report tests, each trained once per session on real MNIST.

``studies(name)`` returns an opened ``Study``; the first call trains it (seconds: 100-1000 images
per class, one to three epochs, one process). The batch-size pair is the repository's own
``studies/batch-size.toml``, shrunk, with and without its ``[nuisance]`` learning rate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nnstudy.spec import dump_toml, load_toml

REPO = Path(__file__).parents[2]

#: Seed 004's question at test size: softmax regression against 784-300-10, 5 seeds, one epoch.
MLP_VS_LINEAR = """
[study]
name = "mlp-vs-linear"
question = "Does a 784-300-10 MLP beat softmax regression after one epoch?"
seeds = 5

[data]
per_class = 1000
validation = 0.05

[base]
optimizer = { name = "adam", lr = 0.001 }
batch_size = 32
epochs = 1

[scientific]
model = [{ kind = "linear" }, { kind = "mlp", hidden = [300] }]
"""

#: Two arms that train the same model: they differ only in the divergence bound (max_loss), which
#: no run reaches, so every seed gives the same numbers in both (identical RunSpecs would be refused
#: by the study file's validation as "the same runs", and save_predictions is not part of a run's
#: identity for the same reason).
SAME_CONFIG = """
[study]
name = "same-config"
question = "Does the divergence bound change anything?"
seeds = 5

[data]
per_class = 100
validation = 0.05

[base]
model = { kind = "mlp", hidden = [32] }
optimizer = { name = "adam", lr = 0.001 }
batch_size = 32
epochs = 1

[scientific]
max_loss = [1000.0, 10000.0]
"""


def _batch_size(tuned: bool) -> str:
    """studies/batch-size.toml at test size; without its [nuisance] table when not ``tuned``."""
    raw: dict[str, Any] = load_toml(REPO / "studies" / "batch-size.toml")
    raw["study"].update(name="batch-size-tuned" if tuned else "batch-size-fixed", seeds=3)
    if not tuned:
        raw["study"]["question"] = "Does batch size change accuracy at one fixed learning rate (seed 000's way)?"
    raw["data"].update(per_class=100, validation=0.02)
    raw["base"].update(epochs=3)
    raw["scientific"]["batch_size"] = [32, 256]
    if tuned:
        raw["nuisance"].update(trials=4, parallel=4)
    else:
        raw.pop("nuisance")
    return dump_toml(raw)


#: Seed 001's initialization question at test size, ranked on the training loss with no validation
#: split: all-zero weights leave every hidden unit dead (relu(0) = 0, no gradient reaches them), so
#: only the output bias learns and the run stays at chance, deterministically.
INIT_AT_CHANCE = """
[study]
name = "init-at-chance"
question = "Does an all-zero initialization train?"
metric = "train_loss"
seeds = 5

[data]
per_class = 100
validation = 0

[base]
model = { kind = "mlp", hidden = [32] }
optimizer = { name = "sgd", lr = 0.1 }
batch_size = 32
epochs = 1

[scientific]
"model.init" = ["default", "constant"]
"""

TEXTS: dict[str, Callable[[], str]] = {
    "quickstart": lambda: (REPO / "studies" / "quickstart.toml").read_text(),
    "init-at-chance": lambda: INIT_AT_CHANCE,
    "mlp-vs-linear": lambda: MLP_VS_LINEAR,
    "same-config": lambda: SAME_CONFIG,
    "batch-size-fixed": lambda: _batch_size(tuned=False),
    "batch-size-tuned": lambda: _batch_size(tuned=True),
}


@pytest.fixture(scope="session")
def study_files(tmp_path_factory) -> Path:
    """A folder with every study file of ``TEXTS`` (``NAME.toml``)."""
    folder = tmp_path_factory.mktemp("study-files")
    for name, text in TEXTS.items():
        (folder / f"{name}.toml").write_text(text())
    return folder


@pytest.fixture(scope="session")
def studies(study_files, mnist_dir, made_once) -> Callable[[str], Any]:
    """``studies(name)``: the study of ``TEXTS[name]``, trained on first use (once for the whole test
    run, whichever pytest-xdist worker asks first), then opened. Tests read it; one that writes into a
    study folder copies it first."""
    from nnstudy.study import load_study, open_study, run_study

    done: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in done:
            def make(folder: Path) -> None:
                run_study(load_study(study_files / f"{name}.toml"), folder / name, workers=1, data_dir=mnist_dir,
                          quiet=True)

            done[name] = open_study(made_once(f"study-{name}", make) / name)
        return done[name]

    return get


@pytest.fixture(scope="session")
def reports(studies, mnist_dir) -> Callable[[str], Any]:
    """``reports(name)``: the ``StudyReport`` of ``studies(name)``, computed once."""
    from nnstudy.report import StudyReport

    made: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in made:
            made[name] = StudyReport(studies(name), data_dir=mnist_dir)
        return made[name]

    return get
