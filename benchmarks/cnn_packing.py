"""How to pack W5's CNN lanes on this machine: one training step of seed 003's Keras CNN, alone and as
R lanes in one program, in the formulations the module engine could use.

    python benchmarks/cnn_packing.py [--lanes 8] [--batch 128] [--threads N] [--steps 30] [--profile]

Prints milliseconds per step and per lane-step of:

* ``one lane``: the run alone, as ``train`` steps it (channels-last, NCHW for comparison);
* ``vmap``: ``torch.func.vmap`` over ``functional_call`` of the lanes' stacked parameters, as the
  module engine packs lanes today (each convolution becomes one grouped convolution inside vmap);
* ``grouped``: the same program written out by hand: the lanes' images as the channels of one batch
  (B, R, 28, 28), each convolution one ``conv2d(groups=R)``, the dense layer one ``baddbmm``.

Each lane has its own images (its own data order, as in training). Synthetic inputs: the step's cost
does not depend on the pixel values. The model is the one ``benchmarks/run.py``'s W5 trains: two
8-filter 2×2 "same" convolutions, a ReLU each, a 2×2 max-pool, a dense softmax (15,994 parameters).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import torch
import torch.nn.functional as F

C, K, SIDE, CLASSES = 8, 2, 28, 10


def model() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, C, K, padding="same"), torch.nn.ReLU(),
        torch.nn.Conv2d(C, C, K, padding="same"), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(C * (SIDE // 2) ** 2, CLASSES))


def per_step(step, steps: int) -> float:
    """Milliseconds per call of ``step``, after five warm-up calls."""
    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lanes", type=int, default=8)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--profile", action="store_true",
                   help="then torch.profiler's busiest operators over 10 steps: one lane, and the grouped pack")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    R, B = a.lanes, a.batch
    models = [model() for _ in range(R)]
    x, y = torch.randn(R, B, 1, SIDE, SIDE), torch.randint(0, CLASSES, (R, B))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{a.threads} threads; {R} lanes, batch {B}")

    def one(fmt):
        m, xb = models[0].to(memory_format=fmt), x[0].contiguous(memory_format=fmt)

        def step():
            m.zero_grad(set_to_none=True)
            F.cross_entropy(m(xb), y[0]).backward()
        return step

    shape = model().to("meta")
    vmapped = torch.func.vmap(lambda prm, xb: torch.func.functional_call(shape, prm, (xb,)))
    stacked = {k: torch.stack([dict(m.named_parameters())[k].detach() for m in models]).requires_grad_()
               for k, _ in models[0].named_parameters()}

    def vmap_step():
        F.cross_entropy(vmapped(stacked, x).flatten(0, 1), y.flatten()).backward()

    w1 = stacked["0.weight"].detach().reshape(R * C, 1, K, K).requires_grad_()
    b1 = stacked["0.bias"].detach().reshape(R * C).requires_grad_()
    w2 = stacked["2.weight"].detach().reshape(R * C, C, K, K).requires_grad_()
    b2 = stacked["2.bias"].detach().reshape(R * C).requires_grad_()
    wd = stacked["6.weight"].detach().transpose(1, 2).contiguous().requires_grad_()  # (R, in, out)
    bd = stacked["6.bias"].detach().unsqueeze(1).requires_grad_()  # (R, 1, out)

    def grouped(fmt):
        xg = x.transpose(0, 1).reshape(B, R, SIDE, SIDE).contiguous(memory_format=fmt)  # lane r = channel r

        def step():
            h = F.conv2d(F.pad(xg, (0, 1, 0, 1)), w1, b1, groups=R).relu()  # torch's "same" for an even kernel
            h = F.conv2d(F.pad(h, (0, 1, 0, 1)), w2, b2, groups=R).relu()
            h = F.max_pool2d(h, 2).reshape(B, R, -1).transpose(0, 1)  # (R, B, C·14·14), Flatten's order
            F.cross_entropy(torch.baddbmm(bd, h, wd).flatten(0, 1), y.flatten()).backward()
        return step

    with torch.no_grad():  # the packed programs compute the lanes' own outputs
        alone = torch.stack([m(x[r]) for r, m in enumerate(models)])
        xg = x.transpose(0, 1).reshape(B, R, SIDE, SIDE)
        h = F.conv2d(F.pad(F.conv2d(F.pad(xg, (0, 1, 0, 1)), w1, b1, groups=R).relu(), (0, 1, 0, 1)), w2, b2, groups=R)
        by_hand = torch.baddbmm(bd, F.max_pool2d(h.relu(), 2).reshape(B, R, -1).transpose(0, 1), wd)
        gaps = {name: float((out - alone).abs().max() / alone.abs().max()) for name, out in
                (("vmap", vmapped(stacked, x)), ("grouped", by_hand))}
    print("largest difference from the lanes alone, relative to their largest output: "
          + ", ".join(f"{k} {v:.1e}" for k, v in gaps.items()))
    lone = per_step(one(torch.channels_last), a.steps)
    rows = [("one lane, channels-last", lone, 1),
            ("one lane, NCHW", per_step(one(torch.contiguous_format), a.steps), 1),
            (f"vmap x{R}", per_step(vmap_step, a.steps), R),
            (f"grouped x{R}, channels-last", per_step(grouped(torch.channels_last), a.steps), R),
            (f"grouped x{R}, NCHW", per_step(grouped(torch.contiguous_format), a.steps), R)]
    print(f"{'formulation':32} {'ms/step':>9} {'ms/lane-step':>13} {'vs one lane':>12}")
    for name, ms, lanes in rows:
        print(f"{name:32} {ms:9.2f} {ms / lanes:13.2f} {lone / (ms / lanes):11.2f}x")
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        for name, step in (("one lane, channels-last", one(torch.channels_last)),
                           (f"grouped x{R}, channels-last", grouped(torch.channels_last))):
            step()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(10):
                    step()
            print(f"\n{name}: 10 steps")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
