"""The seed notebooks' training loops, as written, for the baseline of ``benchmarks/run.py``.

Each function is the seed's code with only what cannot run here changed, and each change is named:

* ``.cuda()`` calls are dropped: this is a CPU machine (seed 004 ran on a GPU).
* ``loss.data[0]`` (seed 004, PyTorch < 0.4) is ``loss.item()``, which is what it meant; indexing a
  0-dim tensor is an error in today's PyTorch.
* ``download=True`` becomes ``download=False`` over a folder built from the verified local MNIST files
  (``mnist_root``): no network here, and the same bytes nnstudy reads.
* ``pin_memory=True`` (seed 004) is kept only where there is a CUDA device to pin for; on a CPU-only
  machine it does nothing but warn.
* Printing inside the loop (seed 003 prints after every batch) goes to ``os.devnull``: the cost of
  formatting the line is kept, a terminal's or Jupyter's cost of showing it is not.
* ``epochs`` and data subsets (``limit``) are parameters so that the benchmark can time one epoch, and
  CI can run a few hundred images.

Everything else (torchvision's MNIST dataset, per-sample ``ToTensor``/``Normalize``, ``DataLoader`` with
the seed's batch size, shuffling and worker count, the model, the optimizer, the loop body, the
evaluation after every epoch) is the seed's. torchvision is required: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def mnist_root(data_dir: str | Path, tmp: str | Path) -> Iterator[Path]:
    """A folder laid out as torchvision's ``MNIST(root)`` expects (``root/MNIST/raw/<file>``), made by
    gunzipping the four verified files nnstudy found in ``data_dir``; removed afterwards."""
    from nnstudy.data import locate

    root = Path(tmp) / "tv-mnist"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    paths = locate("mnist", str(data_dir), download=False)
    try:
        for path in paths.values():
            name = next(f for f in RAW_FILES if path.name.startswith(f))
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as src, open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _subset(ds: Any, limit: int | None) -> Any:
    return ds if limit is None else torch.utils.data.Subset(ds, range(min(limit, len(ds))))


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


# ------------------------------------------------------------------ seed 004: 784-M-10, Adam, batch 64


def seed004_loaders(root: Path, limit: int | None = None, num_workers: int = 1) -> tuple[Any, Any]:
    """Seed 004's datasets and loaders: ToTensor + Normalize((0.1307,), (0.3081,)), batch 64,
    ``num_workers`` 1 in the seed, shuffled training loader."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(root, train=True, download=False, transform=transform)
    test_ds = datasets.MNIST(root, train=False, download=False, transform=transform)
    batch_size = 64
    kwargs = {"num_workers": num_workers, "pin_memory": torch.cuda.is_available()}
    train_loader = DataLoader(_subset(train_ds, limit), batch_size=batch_size, shuffle=True, **kwargs)
    test_loader = DataLoader(test_ds, batch_size=batch_size, shuffle=False, **kwargs)
    return train_loader, test_loader


def seed004_get_model(M: int = 300) -> nn.Module:
    net = nn.Sequential(nn.Linear(28 * 28, M), nn.ReLU(), nn.Linear(M, 10))
    return net


def seed004_train_model(train_loader: Any, test_loader: Any, num_epochs: int, model: nn.Module, optimizer: Any):
    from torch.autograd import Variable

    sum_loss = 0.0
    total = 0
    for _epoch in range(num_epochs):
        model.train()
        for _i, (images, labels) in enumerate(train_loader):
            batch = images.shape[0]  # size of the batch
            # Convert torch tensor to Variable, change shape of the input
            images = Variable(images.view(-1, 28 * 28))
            labels = Variable(labels)

            # Forward + Backward + Optimize
            optimizer.zero_grad()  # zero the gradient buffer
            outputs = model(images)
            loss = F.cross_entropy(outputs, labels)
            loss.backward()
            optimizer.step()

            total += batch
            sum_loss += batch * loss.item()

        train_loss = sum_loss / total
        val_acc, val_loss = seed004_model_accuracy_loss(model, test_loader)
    return val_acc, val_loss, train_loss


def seed004_model_accuracy_loss(model: nn.Module, test_loader: Any) -> tuple[float, float]:
    from torch.autograd import Variable

    model.eval()
    correct = 0
    sum_loss = 0.0
    total = 0
    for images, labels in test_loader:
        images = Variable(images.view(-1, 28 * 28))
        labels = Variable(labels)
        outputs = model(images)
        _, pred = torch.max(outputs.data, 1)
        loss = F.cross_entropy(outputs, labels)
        sum_loss += labels.size(0) * loss.item()
        total += labels.size(0)
        correct += pred.eq(labels.data).cpu().sum()
    return float(100 * correct / total), sum_loss / total


def w1(root: Path, limit: int | None, num_workers: int, seed: int = 0) -> dict[str, float]:
    """W1: 784-300-10, Adam lr 1e-3, batch 64, one epoch (training, then the seed's test pass)."""
    torch.manual_seed(seed)
    train_loader, test_loader = seed004_loaders(root, limit, num_workers)
    net = seed004_get_model(300)
    optimizer = optim.Adam(net.parameters(), lr=1e-3)
    seconds, (val_acc, _, _) = _timed(seed004_train_model, train_loader, test_loader, 1, net, optimizer)
    return {"seconds": seconds, "test_accuracy": val_acc / 100}


def w4(root: Path, limit: int | None, num_workers: int, widths: list[int], epochs: int, seed: int = 0
       ) -> dict[str, Any]:
    """W4: seed 004's M sweep: for each width, a fresh model, Adam lr 0.01, the seed's initial test
    pass, then ``epochs`` epochs of train + test pass; wall time of the whole loop."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    train_loader, test_loader = seed004_loaders(root, limit, num_workers)
    validation_accuracy = []
    for m in widths:
        net = seed004_get_model(m)
        optimizer = optim.Adam(net.parameters(), lr=0.01)
        seed004_model_accuracy_loss(net, test_loader)
        val_acc, val_loss, train_loss = seed004_train_model(train_loader, test_loader, num_epochs=epochs, model=net,
                                                            optimizer=optimizer)
        validation_accuracy.append(val_acc / 100)
    return {"seconds": time.perf_counter() - t0, "test_accuracy": dict(zip(widths, validation_accuracy, strict=True))}


# ----------------------------------------------------- seed 000: NonlinearClassifier, SGD, batch 64


class NonlinearClassifier(nn.Module):
    """Seed 000's 784-50-50-50-10 ReLU MLP with dropout 0.2 after the first layer."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers_stack = nn.Sequential(
            nn.Linear(28 * 28, 50),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(50, 50),
            nn.ReLU(),
            nn.Linear(50, 50),
            nn.ReLU(),
            nn.Linear(50, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        x = self.layers_stack(x)
        return x


def seed000_train_one_epoch(dataloader: Any, model: nn.Module, loss_fn: Any, optimizer: Any) -> None:
    model.train()
    for _batch, (X, y) in enumerate(dataloader):
        # forward pass
        pred = model(X)
        loss = loss_fn(pred, y)  # X is input (images), y is label (0-9)
        # backward pass calculates gradients
        loss.backward()
        # take one step with these gradients
        optimizer.step()
        # resets the gradients
        optimizer.zero_grad()


def seed000_evaluate(dataloader: Any, model: nn.Module, loss_fn: Any) -> tuple[float, float]:
    model.eval()
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    loss /= num_batches
    correct /= size
    accuracy = 100 * correct
    return accuracy, loss


def w2(root: Path, limit: int | None, lr: float, batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    """W2's notebook run: seed 000's loop for one learning rate, one epoch: 80/20 random split
    (generator seed 55), unshuffled loaders, train, then evaluate the training and validation parts."""
    import torchvision

    torch.manual_seed(seed)
    training_data = torchvision.datasets.MNIST(root=root, train=True, download=False,
                                               transform=torchvision.transforms.ToTensor())
    training_data = _subset(training_data, limit)
    t0 = time.perf_counter()
    train_size = int(0.8 * len(training_data))  # 80% for training
    val_size = len(training_data) - train_size  # Remaining 20% for validation
    training_data, validation_data = torch.utils.data.random_split(
        training_data, [train_size, val_size], generator=torch.Generator().manual_seed(55))
    nonlinear_model = NonlinearClassifier()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(nonlinear_model.parameters(), lr=lr)
    train_dataloader = torch.utils.data.DataLoader(training_data, batch_size=batch_size)
    val_dataloader = torch.utils.data.DataLoader(validation_data, batch_size=batch_size)
    seed000_train_one_epoch(train_dataloader, nonlinear_model, loss_fn, optimizer)
    acc, loss = seed000_evaluate(train_dataloader, nonlinear_model, loss_fn)
    val_acc, val_loss = seed000_evaluate(val_dataloader, nonlinear_model, loss_fn)
    return {"seconds": time.perf_counter() - t0, "val_accuracy": val_acc / 100}


# ---------------------------------------------------------------- seed 003: the CNN, SGD, batch 128


def seed003_build_cnn() -> nn.Module:
    """Seed 003's ``build_model(cnn=True)``."""
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.BatchNorm1d(128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


def seed003_train_and_evaluate(model: nn.Module, train_loader: Any, test_loader: Any, epochs: int,
                               learning_rate: float) -> float:
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for epoch in range(epochs):
            running_loss = 0.0
            model.train()
            for inputs, labels in train_loader:
                optimizer.zero_grad()
                outputs = model(inputs)
                loss = criterion(outputs, labels)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                print(f"Epoch {epoch+1}, Loss: {running_loss/len(train_loader):.3f}")
    correct = 0
    total = 0
    model.eval()
    with torch.no_grad():
        for inputs, labels in test_loader:
            outputs = model(inputs)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return 100 * correct / total


def w3(root: Path, limit: int | None, seed: int = 0) -> dict[str, float]:
    """W3: seed 003's CNN, SGD lr 0.1 (weight decay 1e-4), batch 128, one epoch, then the test pass."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    transform = transforms.ToTensor()
    train_dataset = datasets.MNIST(root, train=True, download=False, transform=transform)
    test_dataset = datasets.MNIST(root, train=False, download=False, transform=transform)
    train_loader = DataLoader(_subset(train_dataset, limit), batch_size=128, shuffle=True)
    test_loader = DataLoader(test_dataset, batch_size=128, shuffle=False)
    seconds, acc = _timed(seed003_train_and_evaluate, seed003_build_cnn(), train_loader, test_loader, 1, 0.1)
    return {"seconds": seconds, "test_accuracy": acc / 100}
