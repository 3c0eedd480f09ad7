"""Model FLOPs utilization: achieved training FLOP/s over the machine's matmul peak, measured here.

The peak is what this process gets from a square matmul with the current thread count, not a
datasheet number: on a 2-core CPU that is the honest ceiling for a trainer whose work is matmuls.
Several sizes are tried (on a CPU the best is usually 512–1024: large enough to amortize packing,
small enough to stay in cache), each timed repeatedly, and the fastest repetition of the best size
counts, because on a shared machine interference only ever makes a repetition slower.

    >>> peak = measure_peak(torch.float32)       # doctest: +SKIP
    >>> mfu(result.train_flops, result.train_seconds, peak.flops_per_second)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Peak", "measure_peak", "mfu", "bf16_support"]

_SIZES = (256, 512, 1024)


@dataclass(frozen=True)
class Peak:
    """A measured matmul rate.

    Attributes:
        dtype: "float32" or "bfloat16".
        flops_per_second: the best rate seen (2·n³ FLOPs per n×n matmul).
        size: the matrix size n that gave it.
        threads: torch intra-op threads when measured.
        device: where ("cpu", "cuda").
    """

    dtype: str
    flops_per_second: float
    size: int
    threads: int
    device: str


def measure_peak(
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    sizes: tuple[int, ...] = _SIZES,
    seconds: float = 1.0,
) -> Peak:
    """The best square-matmul rate of ``dtype`` on ``device`` over ``sizes``, spending about
    ``seconds`` in all (at least 5 repetitions of each size).

    Raises:
        RuntimeError: the dtype has no matmul on this device (torch's error).
    """
    device = torch.device(device)
    best, best_n = 0.0, sizes[0]
    gen = torch.Generator(device="cpu").manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=gen).to(device, dtype)
        b = torch.randn(n, n, generator=gen).to(device, dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # warm up: thread pool, packing buffers, kernels
        budget = time.perf_counter() + seconds / len(sizes)
        reps = 0
        while reps < 5 or time.perf_counter() < budget:
            _sync(device)
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            _sync(device)
            dt = time.perf_counter() - t0
            reps += 1
            rate = 2.0 * n**3 / dt
            if rate > best:
                best, best_n = rate, n
    return Peak(str(dtype).removeprefix("torch."), best, best_n, torch.get_num_threads(), device.type)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mfu(flops: float, seconds: float, peak_flops_per_second: float) -> float:
    """Model FLOPs utilization: ``flops / seconds / peak`` (a fraction; NaN without time or peak)."""
    if seconds <= 0 or peak_flops_per_second <= 0:
        return float("nan")
    return flops / seconds / peak_flops_per_second


def bf16_support(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """Whether ``device`` has native bf16 matmuls, and the evidence in words.

    On a CPU: the ``avx512_bf16`` or ``amx_bf16`` instruction flags (Linux ``/proc/cpuinfo``); without
    them torch still computes in bf16, emulated and slower than fp32. On CUDA: torch's own check.
    """
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"torch.cuda.is_bf16_supported() = {ok}"
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return False, "no /proc/cpuinfo to read the CPU's instruction flags from"
    flags: set[str] = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    found = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if found:
        return True, "CPU flags: " + ", ".join(found)
    return False, "the CPU has neither avx512_bf16 nor amx_bf16"
