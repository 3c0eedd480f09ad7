"""The tables of a run spec: data, model (one class per kind), optimizer, schedule, early stopping,
parameter budget. ``nnstudy.spec.RunSpec`` holds one of each; import them from ``nnstudy.spec``.

Every one is a frozen pydantic model with ``extra="forbid"``: an unknown key is an error that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from nnstudy._types import FiniteFloat, Int, PosInt

__all__ = ["DEFAULT_LR", "BudgetSpec", "CNNSpec", "DataSpec", "EarlyStopSpec", "LinearSpec", "MLPSpec",
           "ModelSpec", "OptimSpec", "ScheduleSpec", "VGG11Spec"]

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

