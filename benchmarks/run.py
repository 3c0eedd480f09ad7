"""Speed of nnstudy against the seed notebooks' style, in one process, on this machine.

    python benchmarks/run.py --data-dir ../shared/data/mnist --json bench.json

Measures the machine's fp32 (and bf16, where the CPU has it) matmul peak, then times each workload in
nnstudy and in the notebooks' style (their loops as written: torchvision's MNIST dataset, per-sample
ToTensor/Normalize, DataLoader; see ``notebook.py``; needs ``pip install -e ".[bench]"``), and prints
seconds, training FLOPs, MFU (FLOPs / seconds / peak) and the speed-up over the notebooks' style:

* W1: 784-300-10 ReLU, Adam lr 1e-3, batch 64, one epoch over the 60,000 training images, then the
  test set (fp32, and bf16 where supported).
* W2: seed 000's 784-50-50-50-10 ReLU with dropout 0.2, SGD, batch 64, one epoch on an 80/20 split,
  twelve learning rates: one by one, and packed into one program; seconds are per run.
* W3: seed 003's CNN (BN, dropout), SGD lr 0.1 with weight decay 1e-4, batch 128, one epoch + test.
* W4: seed 004's width sweep (M in 10..2000, Adam lr 0.01, batch 64, 2 epochs each, test accuracy)
  as a whole nnstudy study (``run_study``: worker processes, store, results), end to end, against
  the seed's loop over the widths.
* W5: seed 003's Keras CNN (two 8-filter 2×2 "same" convolutions, a max-pool, a dense softmax;
  15,994 parameters), SGD lr 0.1, batch 128, one epoch on a 90/10 split, eight seeds: one by one,
  and packed as lanes of the module engine (``train_packed(..., engine="modules")``); seconds are per
  run, and the largest relative difference of a packed run's losses from the run alone is recorded.
* bf16 accuracy: W1 for 10 epochs, 5 seeds, fp32 against bf16, test accuracy.

Every timing is repeated (``--repeat``, both sides alike) and the fastest repetition counts: on a
shared machine interference only ever adds time. ``--tiny`` runs everything on a few hundred images
(CI's smoke test); without torchvision the notebook side is skipped and its columns are empty.
Nothing here asserts anything about time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import notebook  # noqa: E402  (benchmarks/ is not a package: run as a script)

from nnstudy.data import load  # noqa: E402
from nnstudy.models import train_flops  # noqa: E402
from nnstudy.spec import DataSpec, RunSpec, make_run_spec  # noqa: E402
from nnstudy.study.store import json_safe  # noqa: E402
from nnstudy.train import train  # noqa: E402
from nnstudy.train.mfu import bf16_support, measure_peak, mfu  # noqa: E402
from nnstudy.train.packed import train_packed  # noqa: E402

W4_WIDTHS = [10, 50, 100, 300, 1000, 2000]
W2_LRS = [round(0.005 * (100 ** (i / 11)), 5) for i in range(12)]  # 0.005 … 0.5, log-spaced
CNN = {"model": "cnn", "channels": [32, 64], "kernel": 3, "batchnorm": True, "head": [128], "dropout": 0.2}
KERAS_CNN = {"kind": "cnn", "channels": [8, 8], "kernel": 2, "pool_every": 2, "head": []}  # seed 003's Keras model


class Size:
    """Full or tiny (CI) sizes of every workload."""

    def __init__(self, tiny: bool):
        self.tiny = tiny
        self.limit = 500 if tiny else None  # training images (None: all 60,000)
        self.w2_runs = 3 if tiny else 12
        self.w5_seeds = 2 if tiny else 8
        self.w4_widths = [10, 50] if tiny else W4_WIDTHS
        self.w4_epochs = 1 if tiny else 2
        self.w4_noise_seeds = 2 if tiny else 3
        self.acc_epochs, self.acc_seeds = (1, 2) if tiny else (10, 5)
        self.peak_seconds = 0.2 if tiny else 2.0


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def best(times: list[float]) -> float:
    return min(times) if times else math.nan


def timed_runs(fn, repeat: int) -> tuple[list[float], Any]:
    """Call ``fn()`` ``repeat`` times; it returns (seconds, payload). All times, the last payload."""
    times, payload = [], None
    for _ in range(repeat):
        seconds, payload = fn()
        times.append(seconds)
    return times, payload


def spec(data: DataSpec, **kw: Any) -> RunSpec:
    return make_run_spec({"data": data.model_dump()}, kw)


def row(name: str, variant: str, times: list[float], flops: float, peak: float, **extra: Any) -> dict[str, Any]:
    """One measured variant: best seconds, all times, FLOPs, MFU, speed-up over the notebook (1 for the
    notebook itself, None when it was not measured)."""
    s = best(times)
    sp = 1.0 if variant.startswith("notebook") else None
    return {"workload": name, "variant": variant, "seconds": s, "times": times, "train_flops": flops,
            "mfu": mfu(flops, s, peak), "speedup_vs_notebook": sp, **extra}


# ------------------------------------------------------------------------------------------ workloads


def w1(args, size: Size, peaks: dict[str, float], root: Path | None) -> list[dict[str, Any]]:
    data_spec = DataSpec(validation=0.0, limit=size.limit)
    data = load(data_spec, data_dir=args.data_dir)
    rows = []
    nb = None  # the seed's own worker count is the baseline; other counts are shown beside it
    nb_other: dict[int, float] = {}
    if root is not None:
        flops = _flops(spec(data_spec, hidden=[300]), data, 1)
        for k, workers in enumerate(args.notebook_workers):
            times, out = timed_runs(lambda w=workers: _pair(notebook.w1(root, size.limit, w)), args.repeat)
            label = "notebook style" + (" (seed's DataLoader workers: 1)" if workers == 1 else f" ({workers} workers)")
            rows.append(row("W1", label, times, flops, peaks["float32"], test_accuracy=out["test_accuracy"],
                            dataloader_workers=workers))
            if k == 0:
                nb = best(times)
            else:
                nb_other[workers] = best(times)
                rows[-1]["speedup_vs_notebook"] = nb / best(times)  # > 1: faster than the seed's setting
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and "bfloat16" not in peaks:
            continue
        s = spec(data_spec, hidden=[300], optimizer="adam", lr=1e-3, batch_size=64, epochs=1, test=True,
                 precision=precision)
        times, r = timed_runs(lambda s=s: _result_pair(train(s, data)), args.repeat)
        peak = peaks["bfloat16" if precision == "bf16" else "float32"]
        others = {f"speedup_vs_notebook_{w}_workers": t / best(times) for w, t in nb_other.items()}
        rows.append(row("W1", f"nnstudy {precision}", times, r.train_flops, peak,
                        test_accuracy=r.metrics["test_accuracy"], speedup_vs_notebook=_ratio(nb, best(times)),
                        threads=r.environment["threads"], **others))
    if len(rows) >= 2 and rows[-1]["variant"] == "nnstudy bf16":
        rows[-1]["speedup_vs_fp32"] = rows[-2]["seconds"] / rows[-1]["seconds"]
        rows[-1]["mfu_of_fp32_peak"] = mfu(rows[-1]["train_flops"], rows[-1]["seconds"], peaks["float32"])
    return rows


def w2(args, size: Size, peaks: dict[str, float], root: Path | None) -> list[dict[str, Any]]:
    data_spec = DataSpec(validation=0.2, normalize="unit", limit=size.limit)  # seed 000: ToTensor, 80/20
    data = load(data_spec, data_dir=args.data_dir)
    lrs = W2_LRS[:: 12 // size.w2_runs][: size.w2_runs]
    specs = [spec(data_spec, hidden=[50, 50, 50], dropout=[0.2, 0.0, 0.0], optimizer="sgd", lr=lr, batch_size=64,
                  epochs=1, seed=i) for i, lr in enumerate(lrs)]
    n = len(specs)
    flops = sum(_flops(s, data, 1) for s in specs) / n  # per run
    rows = []
    nb = None
    if root is not None:
        times, _ = timed_runs(lambda: _pair(notebook.w2(root, size.limit, lr=0.05)), args.repeat)
        nb = best(times)
        rows.append(row("W2", "notebook style, per run", times, flops, peaks["float32"]))

    def one_by_one():
        t0 = time.perf_counter()
        results = [train(s, data) for s in specs]
        return time.perf_counter() - t0, results

    def packed():
        t0 = time.perf_counter()
        results = train_packed(specs, data)
        return time.perf_counter() - t0, results

    t_one, _ = timed_runs(one_by_one, args.repeat)
    t_pack, res = timed_runs(packed, args.repeat)
    t_one, t_pack = [t / n for t in t_one], [t / n for t in t_pack]
    rows.append(row("W2", "nnstudy one by one, per run", t_one, flops, peaks["float32"],
                    speedup_vs_notebook=_ratio(nb, best(t_one))))
    accuracy = {str(s.optimizer.lr): r.metrics["val_accuracy"] for s, r in zip(specs, res, strict=True)}
    rows.append(row("W2", f"nnstudy packed ×{n}, per run", t_pack, flops, peaks["float32"],
                    speedup_vs_notebook=_ratio(nb, best(t_pack)), speedup_vs_one_by_one=best(t_one) / best(t_pack),
                    val_accuracy=accuracy))
    return rows


def w5(args, size: Size, peaks: dict[str, float], root: Path | None) -> list[dict[str, Any]]:
    data_spec = DataSpec(validation=0.1, limit=size.limit)  # Keras's validation_split = 0.1
    data = load(data_spec, data_dir=args.data_dir)
    specs = [make_run_spec({"data": data_spec.model_dump(), "model": KERAS_CNN, "optimizer": {"name": "sgd", "lr": 0.1},
                            "batch_size": 128, "epochs": 1, "seed": i}) for i in range(size.w5_seeds)]
    n = len(specs)
    flops = _flops(specs[0], data, 1)

    def one_by_one():
        t0 = time.perf_counter()
        results = [train(s, data) for s in specs]
        return time.perf_counter() - t0, results

    def packed():
        t0 = time.perf_counter()
        results = train_packed(specs, data, engine="modules")
        return time.perf_counter() - t0, results

    t_one, alone = timed_runs(one_by_one, args.repeat)
    t_pack, res = timed_runs(packed, args.repeat)
    t_one, t_pack = [t / n for t in t_one], [t / n for t in t_pack]
    worst = max(abs(a[k] - b[k]) / abs(b[k]) for p, q in zip(res, alone, strict=True)
                for a, b in zip(p.history, q.history, strict=True) for k in ("train_loss", "val_loss"))
    rows = [row("W5", "nnstudy one by one, per run", t_one, flops, peaks["float32"]),
            row("W5", f"nnstudy packed ×{n}, per run", t_pack, flops, peaks["float32"],
                speedup_vs_one_by_one=best(t_one) / best(t_pack), max_relative_loss_difference=worst,
                val_accuracy={str(s.seed): r.metrics["val_accuracy"] for s, r in zip(specs, res, strict=True)})]
    return rows


def w3(args, size: Size, peaks: dict[str, float], root: Path | None) -> list[dict[str, Any]]:
    data_spec = DataSpec(validation=0.0, normalize="unit", limit=size.limit)  # seed 003: ToTensor only
    data = load(data_spec, data_dir=args.data_dir)
    s = spec(data_spec, **CNN, optimizer="sgd", lr=0.1, weight_decay=1e-4, batch_size=128, epochs=1, test=True)
    rows = []
    nb = None
    if root is not None:
        times, out = timed_runs(lambda: _pair(notebook.w3(root, size.limit)), args.repeat)
        nb = best(times)
        rows.append(row("W3", "notebook style", times, _flops(s, data, 1), peaks["float32"],
                        test_accuracy=out["test_accuracy"]))
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and "bfloat16" not in peaks:
            continue
        s = spec(data_spec, **CNN, optimizer="sgd", lr=0.1, weight_decay=1e-4, batch_size=128, epochs=1, test=True,
                 precision=precision)
        times, r = timed_runs(lambda s=s: _result_pair(train(s, data)), args.repeat)
        rows.append(row("W3", f"nnstudy {precision}", times, r.train_flops, peaks["float32" if precision == "fp32"
                                                                                   else "bfloat16"],
                        test_accuracy=r.metrics["test_accuracy"], speedup_vs_notebook=_ratio(nb, best(times)),
                        threads=r.environment["threads"]))
    if rows[-1]["variant"] == "nnstudy bf16":
        rows[-1]["speedup_vs_fp32"] = rows[-2]["seconds"] / rows[-1]["seconds"]
    return rows


def w4(args, size: Size, peaks: dict[str, float], root: Path | None, tmp: Path) -> list[dict[str, Any]]:
    """The sweep as a study file run by ``run_study`` (a fresh folder each repetition)."""
    from nnstudy.study import load_study, open_study, run_study

    data_spec = DataSpec(validation=0.0, limit=size.limit)
    data = load(data_spec, data_dir=args.data_dir)
    flops = sum(_flops(spec(data_spec, hidden=[m]), data, size.w4_epochs) for m in size.w4_widths)
    rows = []
    nb = None
    if root is not None:
        times, out = timed_runs(lambda: _pair(notebook.w4(root, size.limit, args.notebook_workers[0],
                                                          size.w4_widths, size.w4_epochs)), 1)
        nb = best(times)
        rows.append(row("W4", "notebook style, whole sweep", times, flops, peaks["float32"],
                        test_accuracy={str(k): v for k, v in out["test_accuracy"].items()}))
    # the widest first: the runner hands runs to its workers in file order, and the 2000-wide run
    # alone is about half the sweep's work (a user's choice of order, written in the study file)
    widths = sorted(size.w4_widths, reverse=True)

    def whole_study(seeds: int):
        folder = tmp / f"study-{time.perf_counter_ns()}"
        path = folder.with_suffix(".toml")
        path.write_text(_w4_study(widths, size, seeds, args.w4_threads))
        t0 = time.perf_counter()
        run_study(load_study(path), folder, data_dir=args.data_dir, quiet=True)
        seconds = time.perf_counter() - t0
        results = open_study(folder).results()
        acc: dict[str, list[float]] = {}
        for h, a in zip(results["model.hidden"], results["test_accuracy"], strict=True):
            acc.setdefault(str(h[0] if isinstance(h, list) else h), []).append(float(a))
        return seconds, acc

    times, acc = timed_runs(lambda: whole_study(1), 1)
    single = {k: v[0] for k, v in acc.items()}
    extra: dict[str, Any] = {}
    if root is not None:
        diffs = [single[k] - rows[0]["test_accuracy"][k] for k in single]
        extra = {"accuracy_difference_mean": sum(diffs) / len(diffs), "accuracy_difference_max": max(map(abs, diffs))}
    if size.w4_noise_seeds > 1:
        # the yardstick for "same accuracy": how much one width's test accuracy moves from seed to seed
        _, many = whole_study(size.w4_noise_seeds)
        extra["seed_spread"] = {k: {"mean": statistics.mean(v), "std": statistics.stdev(v)} for k, v in many.items()}
        if root is not None:
            extra["notebook_z"] = {k: (rows[0]["test_accuracy"][k] - m["mean"]) / m["std"] if m["std"] > 0 else None
                                   for k, m in extra["seed_spread"].items()}
    rows.append(row("W4", "nnstudy study, whole sweep", times, flops, peaks["float32"], test_accuracy=single,
                    speedup_vs_notebook=_ratio(nb, best(times)), threads=args.w4_threads, **extra))
    return rows


def _w4_study(widths: list[int], size: Size, seeds: int, threads: int) -> str:
    """Seed 004's sweep as a study file: no validation split (the seed trains on all 60,000 images),
    ranked by training accuracy, every final run tested."""
    limit = f"limit = {size.limit}\n" if size.limit else ""
    return (
        f'[study]\nname = "bench-width"\nquestion = "Seed 004\'s width sweep"\nmetric = "train_accuracy"\n'
        f"seeds = {seeds}\nthreads = {threads}\n\n"
        f'[data]\ndataset = "mnist"\nvalidation = 0.0\nnormalize = "standardize"\n{limit}\n'
        '[base]\nmodel = { kind = "mlp", hidden = [300] }\noptimizer = { name = "adam", lr = 0.01 }\n'
        f"batch_size = 64\nepochs = {size.w4_epochs}\n\n"
        f'[scientific]\n"model.hidden" = {widths}\n'
    )


def bf16_accuracy(args, size: Size) -> dict[str, Any]:
    """W1 trained ``acc_epochs`` epochs with ``acc_seeds`` seeds in fp32 and in bf16: test accuracy."""
    data_spec = DataSpec(validation=0.0, limit=size.limit)
    data = load(data_spec, data_dir=args.data_dir)
    out: dict[str, Any] = {"epochs": size.acc_epochs, "seeds": size.acc_seeds}
    for precision in ("fp32", "bf16"):
        accs = []
        for seed in range(size.acc_seeds):
            # one thread: this part is not timed, and one thread is immune to other processes' load
            s = spec(data_spec, hidden=[300], optimizer="adam", lr=1e-3, batch_size=64, epochs=size.acc_epochs,
                     test=True, precision=precision, seed=seed, threads=1)
            accs.append(train(s, data).metrics["test_accuracy"])
        out[precision] = accs
        out[f"{precision}_mean"] = sum(accs) / len(accs)
    out["difference_points"] = 100 * (out["bf16_mean"] - out["fp32_mean"])
    return out


# -------------------------------------------------------------------------------------------- helpers


def _pair(out: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    return out["seconds"], out


def _result_pair(r: Any) -> tuple[float, Any]:
    return r.seconds, r


def _ratio(notebook_seconds: float | None, seconds: float) -> float | None:
    return None if notebook_seconds is None else notebook_seconds / seconds


def _flops(s: RunSpec, data: Any, epochs: int) -> float:
    per_sample = train_flops(s.model, input_shape=tuple(data.input_shape), num_classes=data.num_classes)
    return float(per_sample) * len(data.train_y) * epochs


def table(rows: list[dict[str, Any]]) -> str:
    head = ("workload", "variant", "seconds", "train FLOPs", "MFU", "vs notebook", "other")
    lines = [head]
    for r in rows:
        other = []
        if "speedup_vs_one_by_one" in r:
            other.append(f"{r['speedup_vs_one_by_one']:.2f}× vs one by one")
        for key, v in r.items():
            if key.startswith("speedup_vs_notebook_") and v is not None:
                other.append(f"{v:.1f}× vs notebook with {key.split('_')[3]} workers")
        if "speedup_vs_fp32" in r:
            other.append(f"{r['speedup_vs_fp32']:.2f}× vs fp32; MFU of the bf16 peak")
        sp = r.get("speedup_vs_notebook")
        lines.append((r["workload"], r["variant"], f"{r['seconds']:.3f}", f"{r['train_flops'] / 1e9:.1f} G",
                      f"{100 * r['mfu']:.0f}%", "—" if sp is None else f"{sp:.1f}×", "; ".join(other)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("NNSTUDY_DATA"), help="folder with the MNIST files")
    p.add_argument("--json", dest="json_path", help="write the results here")
    p.add_argument("--tiny", action="store_true", help="a few hundred images, 1-2 runs: proves it works (CI)")
    p.add_argument("--limit", type=int, help="train on at most this many images (default: all; --tiny: 500)")
    p.add_argument("--only", default="W1,W2,W3,W4,W5,bf16acc",
                   help="comma-separated subset of W1,W2,W3,W4,W5,bf16acc")
    p.add_argument("--repeat", type=int, default=3, help="timings per measurement (W4: 1); the fastest counts")
    p.add_argument("--no-notebook", action="store_true", help="skip the notebooks' style baseline")
    p.add_argument("--notebook-workers", default="1,0", type=lambda v: [int(x) for x in v.split(",")],
                   help="DataLoader workers of seed 004's loop: W1 is timed with each, the first is the baseline "
                        "(W1's speed-up and W4); the seed uses 1")
    p.add_argument("--w4-threads", type=int, default=1, help="study.threads of W4's study (workers: cores / threads)")
    args = p.parse_args(argv)
    size = Size(args.tiny)
    if args.limit:
        size.limit = args.limit
    only = set(args.only.split(","))
    t_start = time.perf_counter()

    info = machine()
    peaks_info = {"float32": asdict(measure_peak(torch.float32, seconds=size.peak_seconds))}
    bf16_ok, bf16_why = bf16_support()
    if bf16_ok:
        peaks_info["bfloat16"] = asdict(measure_peak(torch.bfloat16, seconds=size.peak_seconds))
    peaks = {k: v["flops_per_second"] for k, v in peaks_info.items()}
    print(f"{info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} threads)")
    print("peak matmul: " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items())
          + f"; bf16: {'supported' if bf16_ok else 'not supported'} ({bf16_why})")

    use_nb = not args.no_notebook and notebook.torchvision_available()
    if not use_nb and not args.no_notebook:
        print("torchvision is not installed: the notebook-style baseline is skipped (pip install -e '.[bench]')")
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}

    def save() -> None:  # after every part, so that an interrupted run keeps what it measured
        if args.json_path:
            doc = {"machine": info, "peak": peaks_info, "bf16_supported": bf16_ok, "bf16_evidence": bf16_why,
                   "tiny": args.tiny, "repeat": args.repeat, "notebook_workers": args.notebook_workers,
                   "workloads": workloads(rows), **extra}
            Path(args.json_path).write_text(json.dumps(json_safe(doc), indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ctx = notebook.mnist_root(args.data_dir, tmp) if use_nb else contextlib.nullcontext()
        with ctx as root:
            for name in ("W1", "W2", "W3", "W4", "W5"):
                if name in only:
                    new = w4(args, size, peaks, root, tmp) if name == "W4" else \
                        {"W1": w1, "W2": w2, "W3": w3, "W5": w5}[name](args, size, peaks, root)
                    rows += new
                    print(f"{name} done ({time.perf_counter() - t_start:.0f} s)\n{table(new)}", flush=True)
                    save()
        if "bf16acc" in only and bf16_ok:
            extra["bf16_accuracy"] = bf16_accuracy(args, size)
    print()
    print(table(rows))
    if "bf16_accuracy" in extra:
        a = extra["bf16_accuracy"]
        print(f"\nbf16 accuracy (W1, {a['epochs']} epochs, {a['seeds']} seeds): fp32 {100 * a['fp32_mean']:.2f}%, "
              f"bf16 {100 * a['bf16_mean']:.2f}%, difference {a['difference_points']:+.2f} points")
    for r in rows:
        if "accuracy_difference_mean" in r:
            print(f"W4 test accuracy, nnstudy minus notebook: mean {100 * r['accuracy_difference_mean']:+.2f} points, "
                  f"largest {100 * r['accuracy_difference_max']:.2f} points")
        if "notebook_z" in r:
            print("W4 notebook accuracy in nnstudy seed standard deviations, per width: " + ", ".join(
                f"{k}: {z:+.1f}" for k, z in r["notebook_z"].items() if z is not None))
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    info["load_average_at_end"] = load_end
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s; 1-minute load average {info['load_average_at_start']} at "
          f"the start, {load_end} at the end (other processes slow every timing, two-thread ones most)")
    save()
    return 0


#: The row that speaks for each workload in the JSON summary.
HEADLINE = {"W1": "nnstudy fp32", "W2": "nnstudy packed", "W3": "nnstudy fp32", "W4": "nnstudy study",
            "W5": "nnstudy packed"}


def workloads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per workload: its headline row's ``seconds``, ``mfu``, ``speedup_vs_notebook`` (and
    the rest of that row), with every measured variant under ``variants``."""
    out = []
    for name, prefix in HEADLINE.items():
        mine = [r for r in rows if r["workload"] == name]
        head = next((r for r in mine if r["variant"].startswith(prefix)), None)
        if head is not None:
            out.append({**head, "variants": mine})
    return out


if __name__ == "__main__":
    sys.exit(main())
