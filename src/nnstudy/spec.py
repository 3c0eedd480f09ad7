"""Run specifications: everything needed to train one model reproducibly.

A ``RunSpec`` is frozen, validated and hashable. Its ``identity()`` (a SHA-256 of its canonical JSON,
less the fields that only say *where* or *what to keep*) is the run's identity in a study store: two
runs with the same identity are the same experiment and are never trained twice.

Every model is a pydantic model with ``extra="forbid"``: an unknown key is an error that names it.
``load_run_spec`` reads a TOML file; ``apply_overrides`` sets dotted keys (``optimizer.lr=0.1``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import sys
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from nnstudy._types import FiniteFloat, Int, PosInt
from nnstudy.errors import SpecError
from nnstudy.flags import LIST_KEYS, NO_LAYERS, SHORTCUTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
]

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "identity"]
Init = Literal["default", "xavier", "kaiming", "normal", "constant"]
Prob = Annotated[FiniteFloat, Field(ge=0.0, lt=1.0)]


class _Spec(BaseModel):
    """Frozen, strict about unknown keys, hashable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------- data


class DataSpec(_Spec):
    """Which images, which split, which subset, which normalization.

    The validation split is drawn from the training file: stratified by class with ``split_seed``
    (``split = "stratified"``), or a seeded unstratified draw (``"random"``, torch's ``random_split``:
    seed 000's 80/20 split), or the file's last images (``"last"``, Keras's ``validation_split``: seed
    003's). Every run with the same DataSpec sees the same split. Subsets (``per_class``,
    ``fraction``, ``limit``) thin the *training* part only, after the split, so that validation
    numbers stay comparable across subset sizes; ``select`` says which images they keep: a seeded
    random choice, or the first in file order (seed 002's "first 600 of each class").
    ``test_per_class`` keeps that many test images of each class (seed 002 tests on 600 per class),
    chosen the same way; the test set is never used to choose anything.
    """

    dataset: Literal["mnist", "fashion-mnist", "kmnist"] = "mnist"
    validation: FiniteFloat = Field(0.1, ge=0.0, lt=1.0, description="fraction of the training file held out")
    split: Literal["stratified", "random", "last"] = Field(
        "stratified", description="how the validation split is drawn: stratified, random (unstratified), last")
    split_seed: Int = Field(0, ge=0, description="seed of the validation split and of random subsets")
    per_class: PosInt | None = Field(None, description="keep this many training images of each class")
    fraction: FiniteFloat | None = Field(None, gt=0.0, le=1.0, description="keep this fraction (stratified)")
    limit: PosInt | None = Field(None, description="keep at most this many training images")
    select: Literal["random", "first"] = Field(
        "random", description="which images a subset keeps: a seeded random choice, or the first in file order")
    test_per_class: PosInt | None = Field(None, description="evaluate on this many test images of each class")
    normalize: Literal["none", "unit", "center", "standardize", "per-pixel"] = "standardize"


# ------------------------------------------------------------------------------------------- models


class _ModelBase(_Spec):
    activation: Activation = "relu"
    init: Init = Field("default", description="weight initialization of every linear/conv layer")
    init_std: FiniteFloat = Field(0.01, gt=0.0, description="standard deviation for init='normal'")
    init_value: FiniteFloat = Field(
        0.0, description="value of every weight for init='constant' (and bias, see init_bias)")
    init_bias: FiniteFloat | None = Field(
        None, description="value of every bias for init='constant' (None: init_value)")


class LinearSpec(_ModelBase):
    """Softmax regression: one linear layer from pixels to classes (seed 001's basic model)."""

    kind: Literal["linear"] = "linear"


class MLPSpec(_ModelBase):
    """Fully connected: Linear → [BatchNorm] → activation → [Dropout] per hidden width.

    ``dropout`` and ``batchnorm`` take one value for every hidden layer or a list with one each
    (seed 002's MLP has batch norm after its second layer only: ``batchnorm = [false, true]``).
    """

    kind: Literal["mlp"] = "mlp"
    hidden: list[PosInt] = Field(default_factory=lambda: [100], min_length=1)
    dropout: Prob | list[Prob] = Field(0.0, description="one rate for all hidden layers, or one each")
    batchnorm: bool | list[bool] = False
    # Under a parameter budget (RunSpec.budget), ``hidden`` is derived from these three:
    shape: Literal["uniform", "decreasing", "increasing", "bottleneck", "diamond"] | None = None
    depth: PosInt | None = Field(None, description="number of hidden layers under budget.params")
    ratio: FiniteFloat | None = Field(None, gt=0.0, le=1.0, description="width ratio of non-uniform shapes (0.5)")

    @model_validator(mode="after")
    def _per_layer_lists_match(self) -> MLPSpec:
        for name in ("dropout", "batchnorm"):
            v = getattr(self, name)
            if isinstance(v, list) and len(v) != len(self.hidden):
                raise ValueError(
                    f"{name} has {len(v)} values but hidden has {len(self.hidden)} layers; "
                    "give one per hidden layer or a single value"
                )
        return self

    def dropouts(self) -> list[float]:
        """The dropout rate after each hidden layer."""
        d = self.dropout
        return list(d) if isinstance(d, list) else [float(d)] * len(self.hidden)

    def batchnorms(self) -> list[bool]:
        """Whether each hidden layer has batch normalization."""
        b = self.batchnorm
        return list(b) if isinstance(b, list) else [b] * len(self.hidden)


class CNNSpec(_ModelBase):
    """Conv blocks (conv → [BN] → activation → [pool] → [dropout]) then a dense head.

    Seed 003's PyTorch CNN is ``channels=[32, 64], kernel=3, batchnorm=true, head=[128],
    dropout=0.2``; its Keras baseline (two 2×2 "same" convolutions of 8 filters, one pool, no
    hidden dense layer) is ``channels=[8, 8], kernel=2, pool_every=2, head=[]``.
    """

    kind: Literal["cnn"] = "cnn"
    channels: list[PosInt] = Field(default_factory=lambda: [32, 64], min_length=1)
    kernel: PosInt = 3
    padding: Annotated[int, Strict()] | Literal["same"] = "same"
    pool: Literal["max", "avg", "none"] = "max"
    pool_every: PosInt = Field(1, description="pool after every this many conv blocks")
    batchnorm: bool = False
    conv_dropout: Prob = 0.0
    head: list[PosInt] = Field(default_factory=lambda: [128])
    dropout: Prob | list[Prob] = Field(0.0, description="dropout after each head layer")

    @field_validator("padding")
    @classmethod
    def _padding_nonneg(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("padding must be >= 0 or 'same'")
        return v

    @model_validator(mode="after")
    def _dropout_matches(self) -> CNNSpec:
        if isinstance(self.dropout, list) and len(self.dropout) != len(self.head):
            raise ValueError(
                f"dropout has {len(self.dropout)} rates but head has {len(self.head)} layers"
            )
        return self

    def dropouts(self) -> list[float]:
        d = self.dropout
        return list(d) if isinstance(d, list) else [float(d)] * len(self.head)


class VGG11Spec(_ModelBase):
    """VGG-11 (configuration A) adapted to 28×28: four max-pools instead of five (28→14→7→3→1).

    ``width`` scales every conv channel count (1.0 is the original 64…512); the head defaults to
    two 512-wide layers instead of 4096, which 1×1×512 features cannot use.
    """

    kind: Literal["vgg11"] = "vgg11"
    width: FiniteFloat = Field(1.0, gt=0.0, le=4.0)
    batchnorm: bool = True
    head: list[PosInt] = Field(default_factory=lambda: [512, 512])
    dropout: Prob = 0.5


ModelSpec = Annotated[LinearSpec | MLPSpec | CNNSpec | VGG11Spec, Field(discriminator="kind")]


# ------------------------------------------------------------------------------------ optimization


#: Each optimizer's learning rate where a spec gives none: torch's own defaults (SGD has none in torch:
#: 0.01). Adam at SGD's 0.01 is ten times its usual rate, so one default for all would mislead.
DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.01, "adadelta": 1.0}


class OptimSpec(_Spec):
    """Optimizer and its hyperparameters; ``weight_decay`` is L2 (decoupled for adamw). Without
    ``lr``, the optimizer's own default (``DEFAULT_LR``)."""

    name: Literal["sgd", "adam", "adamw", "rmsprop", "adadelta"] = "sgd"
    lr: FiniteFloat = Field(0.01, gt=0.0, description="learning rate (default: DEFAULT_LR of the optimizer)")

    @model_validator(mode="before")
    @classmethod
    def _default_lr(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "lr" not in raw and raw.get("name") in DEFAULT_LR:
            return {**raw, "lr": DEFAULT_LR[raw["name"]]}
        return raw

    momentum: FiniteFloat = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: FiniteFloat = Field(0.0, ge=0.0)
    beta1: FiniteFloat = Field(0.9, ge=0.0, lt=1.0)
    beta2: FiniteFloat = Field(0.999, ge=0.0, lt=1.0)
    eps: FiniteFloat = Field(1e-8, gt=0.0)
    alpha: FiniteFloat = Field(0.99, gt=0.0, lt=1.0, description="rmsprop smoothing constant")
    rho: FiniteFloat = Field(0.9, gt=0.0, lt=1.0, description="adadelta decay")

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")
        return self


class ScheduleSpec(_Spec):
    """Learning-rate schedule. Multipliers of ``optimizer.lr``, computed per step, except
    ``plateau``, which reacts to the validation loss at the end of each epoch.

    * ``step``: × gamma every ``step_size`` epochs. * ``exponential``: × gamma every epoch.
    * ``cosine``: from lr to ``min_lr`` over the run. * ``onecycle``: up to lr over ``pct_start`` of
      the steps, then down (torch's OneCycleLR with its default div factors, cosine annealing).
    * ``plateau``: × factor when val_loss has not improved for ``patience`` epochs.
    ``warmup_epochs`` (any schedule): linear ramp from 0 over the first epochs (fractional allowed).
    """

    name: Literal["constant", "step", "exponential", "cosine", "onecycle", "plateau"] = "constant"
    step_size: PosInt = 10
    gamma: FiniteFloat = Field(0.1, gt=0.0, le=1.0)
    min_lr: FiniteFloat = Field(0.0, ge=0.0)
    pct_start: FiniteFloat = Field(0.3, gt=0.0, lt=1.0)
    factor: FiniteFloat = Field(0.1, gt=0.0, lt=1.0)
    patience: Int = Field(2, ge=0)
    warmup_epochs: FiniteFloat = Field(0.0, ge=0.0)


class EarlyStopSpec(_Spec):
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` epochs."""

    metric: Literal["val_loss", "val_accuracy"] = "val_loss"
    patience: PosInt = 3
    min_delta: FiniteFloat = Field(0.0, ge=0.0)
    restore_best: bool = True


class BudgetSpec(_Spec):
    """A parameter budget: the MLP's hidden widths are solved so that its exact parameter count is
    nearest ``params`` for ``model.depth`` layers of family ``model.shape`` (``nnstudy budget``)."""

    params: PosInt


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


_UNION_TAGS = {"int", "float", "str", "bool", "list", "dict", "none"}


def user_key(loc: tuple[Any, ...]) -> str:
    """pydantic's error path as the user's dotted key: drop union branch tags (``constrained-int``,
    the model kind of a discriminated union), write list positions as ``[i]``."""
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if "[" in part or "-" in part or part in _UNION_TAGS:
            continue
        if i == 1 and loc[0] == "model" and part in {"linear", "mlp", "cnn", "vgg11"}:
            continue
        out += f".{part}" if out else part
    return out


def _shown(value: Any) -> str:
    """A value as the user wrote it in TOML: ``true``, not Python's ``True``; others by ``repr``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


def did_you_mean(word: str, candidates: Any, prefix: str = "") -> str:
    """``"; did you mean optimizer.lr?"`` for the candidate closest to ``word`` (difflib), else ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {prefix}{close[0]}?" if close else ""


def fields_at(root: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The field names of the spec model that ``loc`` (a pydantic error path, without its last part)
    points into: ``("optimizer",)`` → OptimSpec's; a model kind tag picks that kind's fields."""
    kinds = {"linear": LinearSpec, "mlp": MLPSpec, "cnn": CNNSpec, "vgg11": VGG11Spec}
    model: Any = root
    for part in loc:
        if isinstance(part, int) or not isinstance(model, type):
            continue
        if part in kinds and model is not RunSpec:
            model = kinds[part]
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = next(iter(_models_in(field.annotation)), None)
        if model is None:
            return []
        if len(_models_in(field.annotation)) > 1:  # a union of kinds: the next part is the tag
            model = type(None)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def spec_error(err: ValidationError, source: str = "") -> SpecError:
    """One line from a pydantic error: ``source: key = value: what is allowed``."""
    errors = err.errors()
    first = errors[0]
    key = user_key(first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        parent = key.rpartition(".")[0]
        msg = "unknown key" + did_you_mean(str(first["loc"][-1]), fields_at(RunSpec, first["loc"][:-1]),
                                           prefix=f"{parent}." if parent else "")
    elif first["type"] == "union_tag_invalid":
        msg = "unknown model kind; allowed: linear, mlp, cnn, vgg11"
        key = f"{key}.kind" if key else "model.kind"
    value = first.get("input")
    same_key = [e for e in errors if user_key(e["loc"]) == key]
    if len(same_key) > 1:  # a union: say every alternative
        msg = "; or ".join(dict.fromkeys(e["msg"].removeprefix("Value error, ") for e in same_key))
    shown = "" if first["type"] in {"missing", "model_type"} or isinstance(value, dict) else f" = {_shown(value)}"
    where = f"{source}: " if source else ""
    rest = len({user_key(e["loc"]) for e in errors}) - 1
    more = f" (and {rest} more)" if rest else ""
    if not key:  # a whole-spec rule: its message names its keys
        return SpecError(f"{where}{msg}{more}")
    return SpecError(f"{where}{key}{shown}: {msg}{more}")


#: The largest spec file read (run config or study file), and why: a study file is copied into its
#: database and both reports; the ones in studies/ are under 2 KB.
MAX_FILE_BYTES = 1 << 20


def read_text(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A spec file's text; every way it cannot be had is a ``SpecError`` naming the file: missing, a
    folder, unreadable, larger than ``max_bytes``, not UTF-8."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise SpecError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{p}: is a folder, not a TOML file") from None
    except OSError as e:
        raise SpecError(f"{p}: cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:
        raise SpecError(f"{p}: larger than {max_bytes >> 10} KiB: a spec file is copied into the study's "
                        "database and both reports (a real one is a few KB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "TOML files are UTF-8") from None


def parse_toml(text: str, source: str | Path) -> dict[str, Any]:
    """TOML text as a dict; a syntax error (or nesting too deep to read) is a ``SpecError``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{source}: malformed TOML: {e}") from None
    except RecursionError:
        raise SpecError(f"{source}: malformed TOML: arrays or tables nested too deeply") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file (``read_text``, ``parse_toml``): every problem is a ``SpecError`` naming it."""
    return parse_toml(read_text(path), path)


def load_run_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunSpec:
    """Read a run config (TOML whose top-level keys are RunSpec fields), apply overrides, validate."""
    raw = load_toml(path)
    if overrides:
        raw = apply_overrides(raw, overrides, source=str(path))
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as e:
        raise spec_error(e, str(path)) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"optimizer.lr=0.1"`` → ``("optimizer.lr", 0.1)``. Values are read as TOML (numbers, lists,
    booleans, inline tables); anything that is not valid TOML is taken as a string."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected KEY=VALUE, for example optimizer.lr=0.1")
    key, _, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not key:
        raise SpecError(f"--set {text!r}: empty key")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


def apply_overrides(
    raw: Mapping[str, Any], overrides: Mapping[str, Any], source: str = "--set"
) -> dict[str, Any]:
    """A deep copy of ``raw`` with each dotted key set. Intermediate tables are created as needed;
    setting a key below a non-table value is a ``SpecError``. Whether the key exists is checked
    later by validation, which names it."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node: dict[str, Any] = out
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise SpecError(f"{source}: {dotted}: {where} is {child!r}, not a table")
            node = child
        node[parts[-1]] = value
    return out


def dump_toml(d: Mapping[str, Any]) -> str:
    """A small TOML writer for spec dictionaries (scalars, lists of scalars, nested tables)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for name, table in tables:
        sub = dump_toml(table)
        # nested tables get dotted headers
        body, nested = [], []
        for line in sub.rstrip("\n").split("\n"):  # not splitlines: a string may hold U+2028 or U+0085
            (nested if line.startswith("[") or nested else body).append(line)
        lines.append("")
        lines.append(f"[{_toml_key(name)}]")
        lines.extend(body)
        for line in nested:
            if line.startswith("["):
                line = f"[{_toml_key(name)}.{line[1:]}"
            lines.append(line)
    return "\n".join(lines).strip() + "\n"


def _toml_key(k: str) -> str:
    bare = k.isascii() and k.replace("_", "").replace("-", "").isalnum()  # TOML's bare keys: A-Z a-z 0-9 _ -
    return k if bare else _toml_string(k)


def _toml_string(s: str) -> str:
    """A TOML basic string: JSON's escapes, except that characters beyond U+FFFF stay as they are (JSON
    would write surrogate pairs, which TOML refuses) and DEL is escaped (TOML refuses it raw)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")
