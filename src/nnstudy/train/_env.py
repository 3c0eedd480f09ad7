"""Where and how a run computes, shared by the driver and every engine: the device, the thread count,
the environment a result records, the data check, and evaluation batch sizes."""

from __future__ import annotations

import math
import platform
from collections.abc import Callable
from typing import Any

import torch

from nnstudy.errors import SpecError
from nnstudy.spec import RunSpec

__all__ = ["Callback", "EVAL_BATCH", "EVAL_BYTES", "PARALLEL_STEP_FLOPS", "check_data", "eval_batch",
           "resolve_device", "run_environment", "run_threads"]

#: ``callback(event, info)``: event "epoch" with the epoch's row, or "step" with
#: ``{"epoch", "step", "steps"}`` about every 2% of an epoch (for progress bars).
Callback = Callable[[str, dict[str, Any]], None]

EVAL_BATCH = 8192  # large: evaluation has no backward pass, and fewer calls mean less overhead
#: ... but not so large that a batch's activations swamp memory: a CNN's first feature map is 100 kB
#: per image; seed 003's test pass took 2.37 s in batches of 8192 (800 MB) and 1.49 s in batches of
#: 668 (this bound), on two threads.
EVAL_BYTES = 64 * 1024**2
#: Model FLOPs per optimizer step below which a run whose spec leaves ``threads`` open uses one
#: thread: such a step is a few dozen kernels too small to split. Measured on 2 cores: a 784-10-10
#: MLP at batch 64 (3 MFLOP per step) runs as fast on one thread as on two when the machine is idle,
#: and twice as fast when another process holds a core (an OpenMP barrier then waits for the
#: descheduled thread); from 784-50-50-50-10 (17 MFLOP) up, two threads win on an idle machine.
PARALLEL_STEP_FLOPS = 10e6


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device = 'cuda': no CUDA device is available here; use 'auto' or 'cpu'")
    return torch.device(device)


def run_threads(spec: RunSpec, data: Any, device: torch.device, lanes: int = 1) -> int:
    """Intra-op threads for a run: ``spec.threads`` when set; else, on a CPU, one thread for a small
    step (under ``PARALLEL_STEP_FLOPS`` model FLOPs per optimizer step, over all ``lanes``), and torch's
    current count (all cores unless the caller chose otherwise) for a larger one."""
    if spec.threads:
        return spec.threads
    if device.type != "cpu":
        return torch.get_num_threads()
    from nnstudy.models import train_flops

    n = len(data.train_y)
    batch = n if spec.batch_size == "full" else min(spec.batch_size, n)
    step = train_flops(spec.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes) * batch * lanes
    return 1 if step < PARALLEL_STEP_FLOPS else torch.get_num_threads()


def check_data(spec: RunSpec, data: Any, where: str) -> None:
    """Refuse ``Splits`` loaded for another ``DataSpec`` than the run's (None: to be loaded)."""
    if data is not None and getattr(data, "spec", spec.data) != spec.data:
        raise SpecError(f"{where}: the data given were loaded for {data.spec!r}, but the run asks for {spec.data!r}")


def eval_batch(spec: RunSpec, data: Any, lanes: int = 1) -> int:
    """Evaluation batch: ``EVAL_BATCH`` rows, fewer where the largest activation of that many
    images, over ``lanes`` models at once, would pass ``EVAL_BYTES``."""
    from nnstudy.models import layers

    widest = max(math.prod(layer.output_shape) for layer in layers(spec.model, tuple(data.input_shape),
                                                                    data.num_classes))
    return max(64, min(EVAL_BATCH, EVAL_BYTES // (4 * lanes * widest)))


def run_environment(device: torch.device, threads: int) -> dict[str, Any]:
    """Where a run ran: device, threads, library versions, machine."""
    import nnstudy

    env = {
        "device": str(device),
        "threads": threads,
        "torch": torch.__version__,
        "nnstudy": nnstudy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
