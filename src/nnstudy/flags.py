"""The short names of RunSpec keys: ``nnstudy train``'s flags (``--lr``, ``--hidden``) and the Python
API's options (``nnstudy.train(lr=0.1, hidden=[300])``), one table for both. ``nnstudy.spec`` turns
them into a RunSpec (``make_run_spec``); ``nnstudy.cli`` makes its options from them.
"""

from __future__ import annotations

__all__ = ["LIST_KEYS", "NO_LAYERS", "SHORTCUTS"]

#: Short names for RunSpec keys, shared by ``nnstudy train``'s flags (``--lr``, ``--hidden``) and the
#: Python API (``nnstudy.train(lr=0.1, hidden=[300])``): name → (dotted key, help).
SHORTCUTS: dict[str, tuple[str, str]] = {
    "dataset": ("data.dataset", "mnist, fashion-mnist or kmnist"),
    "validation": ("data.validation", "fraction of the training file held out for validation"),
    "split": ("data.split", "validation split: stratified, random (unstratified, seeded) or last (Keras)"),
    "split_seed": ("data.split_seed", "seed of the validation split and of random subsets"),
    "per_class": ("data.per_class", "keep this many training images per class"),
    "fraction": ("data.fraction", "keep this fraction of the training images"),
    "limit": ("data.limit", "keep at most this many training images"),
    "select": ("data.select", "which images a subset keeps: random (seeded) or first (file order)"),
    "test_per_class": ("data.test_per_class", "evaluate on this many test images per class"),
    "normalize": ("data.normalize", "none, unit, center, standardize or per-pixel"),
    "model": ("model.kind", "linear, mlp, cnn or vgg11"),
    "hidden": ("model.hidden", "mlp hidden widths, e.g. 300 or 50,50,50"),
    "activation": ("model.activation", "relu, tanh, sigmoid, gelu or identity"),
    "dropout": ("model.dropout", "dropout rate, or one per layer: 0.2,0,0"),
    "batchnorm": ("model.batchnorm", "batch normalization after each layer (true/false)"),
    "init": ("model.init", "default, xavier, kaiming, normal or constant"),
    "init_std": ("model.init_std", "standard deviation for --init normal"),
    "init_value": ("model.init_value", "weight value for --init constant (and bias, unless --init-bias)"),
    "init_bias": ("model.init_bias", "bias value for --init constant"),
    "channels": ("model.channels", "cnn channels per conv block, e.g. 32,64"),
    "kernel": ("model.kernel", "cnn kernel size"),
    "padding": ("model.padding", "cnn padding: an integer or same"),
    "pool": ("model.pool", "cnn pooling: max, avg or none"),
    "pool_every": ("model.pool_every", "cnn: pool after every this many conv blocks"),
    "conv_dropout": ("model.conv_dropout", "cnn dropout after each conv block"),
    "head": ("model.head", "cnn/vgg11 dense head widths, e.g. 128; none for no dense layer"),
    "width": ("model.width", "vgg11 channel multiplier"),
    "optimizer": ("optimizer.name", "sgd, adam, adamw, rmsprop or adadelta"),
    "lr": ("optimizer.lr", "learning rate"),
    "momentum": ("optimizer.momentum", "sgd/rmsprop momentum"),
    "nesterov": ("optimizer.nesterov", "nesterov momentum (sgd)"),
    "weight_decay": ("optimizer.weight_decay", "L2 penalty (decoupled for adamw)"),
    "schedule": ("schedule.name", "constant, step, exponential, cosine, onecycle or plateau"),
    "step_size": ("schedule.step_size", "epochs between steps of the step schedule"),
    "gamma": ("schedule.gamma", "decay factor of step/exponential schedules"),
    "min_lr": ("schedule.min_lr", "final learning rate of the cosine schedule"),
    "warmup_epochs": ("schedule.warmup_epochs", "linear warmup length in epochs"),
    "early_stopping": ("early_stopping.patience", "stop after this many epochs without improvement"),
    "early_stopping_metric": ("early_stopping.metric", "val_loss or val_accuracy"),
    "budget_params": ("budget.params", "parameter budget: solve the mlp's widths to this count"),
    "shape": ("model.shape", "mlp shape under a budget: uniform, decreasing, increasing, bottleneck, diamond"),
    "depth": ("model.depth", "mlp hidden layers under a budget"),
    "ratio": ("model.ratio", "width ratio of a non-uniform shape (default 0.5)"),
    "batch_size": ("batch_size", "batch size, or full for full-batch gradient descent"),
    "epochs": ("epochs", "passes over the training split"),
    "seed": ("seed", "random seed of initialization, data order and dropout"),
    "train_eval": ("train_eval", "running (mean over batches) or full (eval pass after each epoch)"),
    "test": ("test", "evaluate on the test set at the end"),
    "test_curve": ("test_curve", "also evaluate the test set after every epoch (with --test)"),
    "shuffle": ("shuffle", "data order: epoch (reshuffle every epoch), once (no reshuffle) or none (file order)"),
    "max_loss": ("max_loss", "training loss above which the run counts as diverged"),
    "precision": ("precision", "fp32 or bf16 (autocast)"),
    "device": ("device", "auto, cpu or cuda"),
    "threads": ("threads", "torch threads for this run"),
    "save_weights": ("save_weights", "keep the final weights"),
    "save_predictions": ("save_predictions", "keep validation/test predictions"),
}


#: Keys whose value is always a list: a single number given for them is a one-element list.
LIST_KEYS = frozenset({"model.hidden", "model.channels", "model.head"})
#: What a flag says for an empty list of layers (``--head none``).
NO_LAYERS = ("none", "")
