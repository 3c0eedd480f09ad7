"""Wall time of one study with ``--workers 1`` and ``--workers 2``, each in a fresh folder, and whether
the two give the same results (they must: every run uses ``study.threads`` threads either way); with
``--shared``, the throughput of 1, 2 and 4 ``nnstudy worker`` processes on one PostgreSQL store.

    python benchmarks/workers.py                       # benchmarks/workers.toml, 1 and 2 workers
    python benchmarks/workers.py STUDY.toml --workers 1 2 4 --repeat 3
    python benchmarks/workers.py --shared              # 1, 2, 4 workers on one store (a throwaway server)
    python benchmarks/workers.py --shared --storage postgresql://me@host/db --set data.per_class=100

Times are of the whole command, as a user waits for it: process start, data loading, worker start-up,
training, the store. docs/studies.md quotes this script's output.

``--shared``: for each worker count N, the study is saved into a fresh database and N ``nnstudy worker``
processes (one training process each) are started at once; throughput is runs stored over the wall time
from their start to the last one's exit. The store's overhead per run is the time the workers spent in
the database (claims, results, reading each other's results, and waiting for a round another worker is
finishing, which polls the store; each worker prints it), summed and divided by the runs stored, against
the mean run's own time (``seconds`` in the store; a packed run's share of its pack). The part spent on
claims is shown apart: the rest is Optuna's own trial writes and reads. Without ``--storage`` a
PostgreSQL server is started in a temporary folder on 127.0.0.1 (Debian's ``postgresql`` package; as
root it runs as the ``postgres`` user), as the tests do. docs/distributed.md quotes this output.
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


class Server:
    """A throwaway PostgreSQL server: initdb in a temporary folder, 127.0.0.1 only, trust authentication."""

    def __init__(self):
        import glob
        import shutil
        import socket

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
        if not found[-1]:
            sys.exit("--shared needs a PostgreSQL server: --storage URL, or apt-get install postgresql")
        bin_dir = Path(found[-1]).parent
        # not under the benchmark's own temporary folder: that is private to this user, the server may be another
        self.root = root = Path(tempfile.mkdtemp(prefix="nnstudy-bench-pg-"))
        self.data, sockets = root / "data", root / "sockets"
        sockets.mkdir()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            for p in (root, sockets):
                shutil.chown(p, "postgres")
        subprocess.run([*self.as_user, str(bin_dir / "initdb"), "-D", str(self.data), "-U", "bench", "--auth=trust"],
                       check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([*self.as_user, str(bin_dir / "postgres"), "-D", str(self.data), "-p",
                                      str(self.port), "-h", "127.0.0.1", "-k", str(sockets)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"postgresql+psycopg://bench@127.0.0.1:{self.port}/postgres"
        while True:
            try:
                self.sql("select 1")
                return
            except Exception:
                if self.proc.poll() is not None:
                    sys.exit("the PostgreSQL server did not start")
                time.sleep(0.2)

    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=bench dbname=postgres", autocommit=True) as c:
            c.execute(statement)

    def close(self) -> None:
        import shutil
        import signal

        os.kill(int((self.data / "postmaster.pid").read_text().split()[0]), signal.SIGINT)
        self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def shared(study: Path, counts: list[int], storage: str | None, sets: list[str], root: Path) -> None:
    """N ``nnstudy worker`` processes on one store, for each N in ``counts`` (see the docstring)."""
    import re

    from nnstudy.spec import dump_toml, parse_override
    from nnstudy.study import load_study, open_study
    from nnstudy.study.store import Store

    spec = load_study(study, [parse_override(x) for x in sets])
    server = Server() if storage is None else None
    print(f"store: {'a throwaway PostgreSQL server on 127.0.0.1' if server else Store(storage).where}")
    frames = {}
    try:
        for n in counts:
            if server is not None:
                db = f"bench_w{n}_{time.monotonic_ns()}"
                server.sql(f"CREATE DATABASE {db}")
                url = server.url.rsplit("/", 1)[0] + "/" + db
            else:
                url = storage
            name = f"{spec.name}-w{n}-{time.monotonic_ns()}"  # a study of its own in a shared database
            text = root / f"w{n}.toml"
            text.write_text(dump_toml({**spec.raw, "study": {**spec.raw["study"], "name": name}}))
            mine = load_study(text)
            Store(url, create=True).save_study(mine, mine.text)
            cmd = [sys.executable, "-m", "nnstudy", "worker", "--storage", url, "--study", name, "--workers", "1"]
            t0 = time.perf_counter()
            procs = [subprocess.Popen([*cmd, "--dir", str(root / f"{name}-{i}")], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for i in range(n)]
            outs = [p.communicate() for p in procs]
            wall = time.perf_counter() - t0
            for p, (_, err) in zip(procs, outs, strict=True):
                if p.returncode != 0:
                    sys.exit(f"{' '.join(cmd)} failed:\n{err}")
            in_store = sum(float(m[1]) for out, _ in outs for m in re.finditer(r"([\d.]+) s of it in the store", out))
            claims = sum(float(m[1]) for out, _ in outs for m in re.finditer(r"([\d.]+) s of that for claims", out))
            study_handle = open_study(None, url, name)
            frame = study_handle.results()
            runs = len(frame)
            run_seconds = frame["seconds"].mean()
            frames[n] = frame.drop(columns=["train_seconds", "seconds"])
            print(f"{n} worker{'s' if n > 1 else ' '}: {runs} runs in {wall:6.1f} s wall = "
                  f"{60 * runs / wall:6.1f} runs/min;"
                  f" store {1000 * in_store / runs:6.1f} ms per run ({1000 * claims / runs:5.1f} ms of it claims)"
                  f" against {1000 * run_seconds:7.1f} ms of training per run"
                  f" ({100 * in_store / runs / run_seconds:.0f}%)")
    finally:
        if server is not None:
            server.close()
    first = frames[counts[0]]
    same = all(f.equals(first) for f in frames.values())
    print(f"same results with every worker count: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?", default=str(REPO / "benchmarks" / "workers.toml"))
    parser.add_argument("--workers", type=int, nargs="+", default=None,
                        help="worker counts (default: 1 2; --shared: 1 2 4)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count (the minimum is reported)")
    parser.add_argument("--shared", action="store_true", help="N nnstudy worker processes on one PostgreSQL store")
    parser.add_argument("--storage", help="with --shared: the PostgreSQL URL (default: a throwaway server)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="with --shared: override a study key, e.g. --set data.per_class=100")
    args = parser.parse_args()

    from nnstudy.spec import parse_override
    from nnstudy.study import load_study, open_study

    study = Path(args.study)
    spec = load_study(study, [parse_override(x) for x in args.sets])
    print(f"study: {study} ({len(spec.arms())} arms, {spec.trials} trials + {spec.study.seeds} seeds each)"
          + (f", with {' '.join('--set ' + x for x in args.sets)}" if args.sets else ""))
    print(f"machine: {cpu_name()}, {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.2f}")
    if args.shared:
        with tempfile.TemporaryDirectory() as tmp:
            shared(study, args.workers or [1, 2, 4], args.storage, args.sets, Path(tmp))
        return
    args.workers = args.workers or [1, 2]
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
