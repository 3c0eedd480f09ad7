"""Wall time of one study with ``--workers 1`` and ``--workers 2``, each in a fresh folder, and whether
the two give the same results (they must: every run uses ``study.threads`` threads either way).

    python benchmarks/workers.py                       # benchmarks/workers.toml, 1 and 2 workers
    python benchmarks/workers.py STUDY.toml --workers 1 2 4 --repeat 3

Times are of the whole command, as a user waits for it: process start, data loading, worker start-up,
training, the store. docs/studies.md quotes this script's output.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_once(study: Path, workers: int, root: Path) -> tuple[float, Path]:
    folder = root / f"w{workers}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "nnstudy", "run", str(study), "--dir", str(folder), "--workers", str(workers),
           "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return seconds, folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", default=str(REPO / "benchmarks" / "workers.toml"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count (the minimum is reported)")
    args = parser.parse_args()

    from nnstudy.study import load_study, open_study

    study = Path(args.study)
    spec = load_study(study)
    print(f"study: {study} ({len(spec.arms())} arms, {spec.trials} trials + {spec.study.seeds} seeds each)")
    print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f}")
    frames = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            times = []
            for _ in range(args.repeat):
                seconds, folder = run_once(study, workers, Path(tmp))
                times.append(seconds)
            frames[workers] = open_study(folder).results().drop(columns=["train_seconds", "seconds"])
            print(f"--workers {workers}: {min(times):6.1f} s wall" + (f" (runs: {', '.join(f'{t:.1f}' for t in times)})"
                                                                    if len(times) > 1 else ""))
    first = frames[args.workers[0]]
    same = all(f.equals(first) for f in frames.values())
    print(f"same results with every worker count: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
