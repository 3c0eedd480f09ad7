"""How long the ``nnstudy`` command takes to answer ``--help``, on this machine.

    python benchmarks/startup.py                 # median of 10 wall times of each command
    python benchmarks/startup.py --repeat 20 --json startup.json

Times whole processes, as a user's shell starts them: the ``nnstudy`` console script of this Python
environment (``python -m nnstudy`` where it has none), for ``--help``, ``--version`` and a command's
``--help``. The promise (README): ``nnstudy --help`` in under 0.5 s wall time, median of 10. Prints
the machine and its load average beside the numbers: on a busy machine every number is larger.
Nothing here asserts anything about time; tests/test_startup.py checks what makes it fast (no torch,
pandas, optuna or matplotlib imported for --help).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [["--help"], ["--version"], ["train", "--help"], ["run", "--help"]]


def nnstudy_command() -> list[str]:
    """The console script beside this interpreter, else ``python -m nnstudy``."""
    script = Path(sys.executable).with_name("nnstudy")
    if script.exists():
        return [str(script)]
    found = shutil.which("nnstudy")
    return [found] if found else [sys.executable, "-m", "nnstudy"]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def wall_times(argv: list[str], repeat: int) -> list[float]:
    """Seconds from start to exit of ``argv``, ``repeat`` times (after one untimed warm-up run that
    fills the OS file cache, as any second use of the command finds it)."""
    subprocess.run(argv, capture_output=True, check=True)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per command (default 10)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)

    base = nnstudy_command()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {cpu_model()}, {cores} cores, load average {load:.2f}; python {platform.python_version()}")
    print(f"command: {' '.join(base)}; median and range of {args.repeat} wall times")
    rows = []
    for extra in COMMANDS:
        times = wall_times([*base, *extra], args.repeat)
        median = statistics.median(times)
        rows.append({"command": " ".join(["nnstudy", *extra]), "median_seconds": median,
                     "min_seconds": min(times), "max_seconds": max(times), "seconds": times})
        print(f"  nnstudy {' '.join(extra):<16} median {median:.3f} s  (min {min(times):.3f}, max {max(times):.3f})")
    if args.json:
        doc = {"machine": {"cpu": cpu_model(), "cores": cores, "load_average_at_start": load,
                           "python": platform.python_version()}, "repeat": args.repeat, "commands": rows}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
