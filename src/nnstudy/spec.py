"""Run specifications: everything needed to train one model reproducibly.

A ``RunSpec`` is frozen, validated and hashable. Its ``identity()`` (a SHA-256 of its canonical JSON,
less the fields that only say *where* or *what to keep*) is the run's identity in a study store: two
runs with the same identity are the same experiment and are never trained twice.

Every model is a pydantic model with ``extra="forbid"``: an unknown key is an error that names it.
``load_run_spec`` reads a TOML file; ``apply_overrides`` sets dotted keys (``optimizer.lr=0.1``).

This module holds ``RunSpec`` and how one is made; its tables (``DataSpec``, the model kinds,
``OptimSpec``...) live in ``nnstudy.spec_tables``, TOML reading and writing in ``nnstudy.toml_files``,
error lines in ``nnstudy.spec_errors``. Every name is importable from here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from nnstudy._types import FiniteFloat, Int, PosInt
from nnstudy.errors import SpecError
from nnstudy.flags import LIST_KEYS, NO_LAYERS, SHORTCUTS
from nnstudy.spec_errors import did_you_mean, fields_at, one_line, user_key
from nnstudy.spec_tables import (
    DEFAULT_LR,
    BudgetSpec,
    CNNSpec,
    DataSpec,
    EarlyStopSpec,
    LinearSpec,
    MLPSpec,
    ModelSpec,
    OptimSpec,
    ScheduleSpec,
    VGG11Spec,
    _Spec,
)
from nnstudy.toml_files import (
    MAX_FILE_BYTES,
    apply_overrides,
    dump_toml,
    load_toml,
    parse_override,
    parse_toml,
    read_text,
)

__all__ = [
    "DataSpec",
    "LinearSpec",
    "MLPSpec",
    "CNNSpec",
    "VGG11Spec",
    "ModelSpec",
    "OptimSpec",
    "ScheduleSpec",
    "EarlyStopSpec",
    "BudgetSpec",
    "RunSpec",
    "load_toml",
    "parse_toml",
    "read_text",
    "load_run_spec",
    "apply_overrides",
    "parse_override",
    "spec_error",
    "SHORTCUTS",
    "make_run_spec",
    # re-exported from the modules that hold them
    "DEFAULT_LR",
    "MAX_FILE_BYTES",
    "did_you_mean",
    "dump_toml",
    "fields_at",
    "user_key",
]


# ------------------------------------------------------------------------------------------- a run

#: Fields that say where a run executes or what of it to keep, not what it computes. They are left
#: out of the identity, so a study resumed on another device or asked to keep weights reuses its runs.
NON_IDENTITY_FIELDS = frozenset({"device", "threads", "save_weights", "save_predictions"})
#: Fields added after identities were first stored, left out of the identity at these defaults (the
#: behaviour before they existed), so that a stored study's runs keep their identities.
LATER_DEFAULTS: dict[tuple[str, ...], Any] = {("data", "split"): "stratified", ("data", "select"): "random",
                                              ("shuffle",): "epoch", ("test_curve",): False}


class RunSpec(_Spec):
    """One training run. See DESIGN.md section 6 for what every number it produces means."""

    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=MLPSpec)
    optimizer: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    early_stopping: EarlyStopSpec | None = None
    budget: BudgetSpec | None = None
    batch_size: PosInt | Literal["full"] = 64
    epochs: PosInt = 5
    seed: Int = Field(0, ge=0)
    train_eval: Literal["running", "full"] = Field(
        "running",
        description="running: mean over the epoch's batches (Keras); full: whole split in eval mode",
    )
    test: bool = Field(False, description="evaluate on the test set (final runs only)")
    test_curve: bool = Field(
        False, strict=True, description="also evaluate the test set after every epoch (needs test; a study's "
        "final runs only, with study.test_curves)")
    shuffle: Literal["epoch", "once", "none"] = Field(
        "epoch", description="data order: a fresh permutation every epoch; one drawn once and kept (no "
        "reshuffle between epochs); or none, the training split's file order")
    max_loss: FiniteFloat = Field(1e3, gt=0.0, description="a training loss above this marks divergence")
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: PosInt | None = Field(None, description="torch intra-op threads; None leaves torch's")
    save_weights: bool = False
    save_predictions: bool = False

    @model_validator(mode="before")
    @classmethod
    def _model_kind_defaults_to_mlp(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("model"), dict) and "kind" not in raw["model"]:
            raw = {**raw, "model": {"kind": "mlp", **raw["model"]}}
        return raw

    @model_validator(mode="before")
    @classmethod
    def _widths_from_budget(cls, raw: Any) -> Any:
        """With ``budget.params``, the MLP's ``hidden`` is solved from (shape, depth, params), replacing
        any given widths (so a dumped spec re-validates to itself)."""
        if not isinstance(raw, dict) or raw.get("budget") is None:
            return raw
        budget = raw["budget"]
        params = budget.get("params") if isinstance(budget, dict) else getattr(budget, "params", None)
        model = raw.get("model")
        model = model.model_dump() if isinstance(model, BaseModel) else dict(model or {})
        if model.get("kind", "mlp") != "mlp":
            raise ValueError(f"budget.params needs model.kind = 'mlp', not {model.get('kind')!r}")
        if not isinstance(params, int) or isinstance(params, bool) or model.get("depth") is None:
            return raw  # the field validators name what is missing or malformed
        if not isinstance(model.get("batchnorm", False), bool):
            raise ValueError("budget.params needs one model.batchnorm value for every layer (true or false)")
        from nnstudy.models.budget import shape_widths  # models import this module: import late

        fit = shape_widths(model.get("shape") or "uniform", params, model["depth"], model.get("ratio") or 0.5,
                           batchnorm=bool(model.get("batchnorm", False)))
        return {**raw, "model": {**model, "kind": "mlp", "hidden": list(fit.widths)}}

    @model_validator(mode="after")
    def _early_stopping_needs_validation(self) -> RunSpec:
        if self.early_stopping is not None and self.data.validation == 0:
            raise ValueError("early_stopping needs a validation split (data.validation > 0)")
        if self.test_curve and not self.test:
            raise ValueError("test_curve needs test = true: the test curve is of a run that is tested")
        if self.schedule.name == "plateau" and self.data.validation == 0:
            raise ValueError("schedule 'plateau' needs a validation split (data.validation > 0)")
        m = self.model
        if isinstance(m, MLPSpec) and self.budget is None and (m.shape or m.depth or m.ratio):
            raise ValueError("model.shape, model.depth and model.ratio need budget.params (a parameter budget)")
        if isinstance(m, MLPSpec) and self.budget is not None and m.depth is None:
            raise ValueError("budget.params needs model.depth (the number of hidden layers)")
        return self

    def identity_dict(self) -> dict[str, Any]:
        """The canonical content of this run, less where it runs and what it keeps. Unset optional
        fields (None) are left out, so adding one to RunSpec does not change existing identities."""
        d = self.model_dump(mode="json", exclude_none=True)
        for k in NON_IDENTITY_FIELDS:
            d.pop(k, None)
        for path, default in LATER_DEFAULTS.items():
            *parents, last = path
            node = d
            for p in parents:
                node = node.get(p, {})
            if node.get(last, None) == default:
                node.pop(last)
        return d

    def identity(self) -> str:
        """SHA-256 (hex, 16 chars) of the canonical JSON of ``identity_dict()``."""
        blob = json.dumps(self.identity_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_toml(self) -> str:
        """This spec as a TOML document that ``load_run_spec`` reads back."""
        return dump_toml(self.model_dump(mode="json", exclude_none=True))


# ------------------------------------------------------------------------------- loading, overrides

def make_run_spec(
    base: RunSpec | Mapping[str, Any] | str | Path | None = None,
    shortcuts: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    source: str = "",
) -> RunSpec:
    """A RunSpec from a base (a RunSpec, a dict, or a TOML file), then short names
    (``SHORTCUTS``), then dotted overrides; validated once at the end.

    Raises SpecError naming the source and the key.
    """
    if isinstance(base, (str, Path)):
        source = source or str(base)
        raw: dict[str, Any] = load_toml(base)
    elif isinstance(base, RunSpec):
        raw = base.model_dump(mode="json")
    else:
        raw = dict(base or {})
    dotted: dict[str, Any] = {}
    for name, value in (shortcuts or {}).items():
        if value is None:
            continue
        if name not in SHORTCUTS:
            hint = did_you_mean(name, SHORTCUTS) or f"; allowed: {', '.join(SHORTCUTS)}"
            raise SpecError(f"{source or 'arguments'}: unknown option {name!r}{hint}")
        dotted[SHORTCUTS[name][0]] = value
    if "model.kind" in dotted and isinstance(raw.get("model"), dict):
        if raw["model"].get("kind") != dotted["model.kind"]:
            raw["model"] = {}  # another model kind: the base's model fields do not apply to it
    dotted.update(overrides or {})
    for key in LIST_KEYS & dotted.keys():
        if dotted[key] in NO_LAYERS:  # --head none: no dense layer (seed 003's Keras CNN)
            dotted[key] = []
        elif not isinstance(dotted[key], list):  # --hidden 300 means one layer of 300
            dotted[key] = [dotted[key]]
    raw = apply_overrides(raw, dotted, source=source or "--set")
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as e:
        raise spec_error(e, source) from None


def spec_error(err: ValidationError, source: str = "") -> SpecError:
    """One line from a RunSpec validation error: ``source: key = value: what is allowed``."""
    return one_line(err, source, RunSpec)


def load_run_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Read a run config (TOML whose top-level keys are RunSpec fields), apply overrides, validate."""
    raw = load_toml(path)
    if overrides:
        raw = apply_overrides(raw, overrides, source=str(path))
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as e:
        raise spec_error(e, str(path)) from None

