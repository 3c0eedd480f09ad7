"""Where a runner's runs train: in its own process (``--workers 1``) or in N worker processes.

Both give the runner the same events: ``("epoch", run, info)`` for the progress display, ``("done", run,
outcome)`` with a run's ``Record`` fields, and ``("lost", run, {"error", "packed"})`` for a run whose worker process
died under it (killed, out of memory): the runner releases its claim and the run is retried
(``study.retries``), as a run of a worker on another machine that stops beating is.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Iterator
from multiprocessing.connection import wait as wait_ready
from typing import Any

from nnstudy.study import _worker
from nnstudy.study.design import PlannedRun

__all__ = ["InProcess", "Pool"]



class InProcess:
    """``--workers 1``: train in this process (no start-up cost; the preloaded data is reused)."""

    def __init__(self, display: Any):
        self.display = display
        self.running: dict[str, PlannedRun] = {}
        self._runs: list[PlannedRun] = []
        self._task: dict[str, Any] = {}

    def idle(self) -> int:
        return 0 if self.running else 1

    def submit(self, runs: list[PlannedRun], task: dict[str, Any]) -> None:
        self._runs, self._task = runs, task
        self.running = {r.identity: r for r in runs}

    def events(self, timeout: float) -> Iterator[tuple[str, PlannedRun, Any]]:
        runs = self._runs
        outs = _worker.execute(self._task, progress=lambda i, info: self.display.epoch(runs[i], info))
        for run, out in zip(runs, outs, strict=True):
            del self.running[run.identity]
            yield "done", run, out

    def close(self) -> None:
        pass

    def kill(self) -> None:
        self.running.clear()


class _Slot:
    def __init__(self, process: Any, conn: Any):
        self.process, self.conn = process, conn
        self.runs: list[PlannedRun] = []  # the task in flight: one run, or a pack
        self.left: dict[int, PlannedRun] = {}  # its runs without a result yet, by index in the task


class Pool:
    """``--workers N``: N worker processes, one task (a run or a pack) each at a time, over one pipe per
    process (so a dead worker's runs are known exactly, unlike a shared ProcessPoolExecutor queue)."""

    def __init__(self, n: int, threads: int, data_dir: str | None):
        self.ctx: Any = None  # the forkserver too is started on first use
        self.n, self.threads, self.data_dir = n, threads, data_dir
        self.slots: list[_Slot] = []  # started on first use: a rerun with nothing to train starts none

    @staticmethod
    def start_server() -> Any:
        """The forkserver context, its server started (in the background: this returns at once).

        forkserver: one clean process imports torch and nnstudy once, and every worker is a fork of it
        (milliseconds, not an interpreter importing torch each). Not a fork of this process: it has run
        torch's OpenMP threads and holds database connections, which a fork would inherit broken.
        """
        import multiprocessing.forkserver

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["nnstudy.study._worker"])
        multiprocessing.forkserver.ensure_running()
        return ctx

    def _spawn(self) -> _Slot:
        self.ctx = self.ctx or self.start_server()
        parent, child = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker.worker_main, args=(child, self.threads, self.data_dir),
                             daemon=True, name="nnstudy-worker")
        p.start()
        child.close()
        return _Slot(p, parent)

    @property
    def running(self) -> dict[str, PlannedRun]:
        return {r.identity: r for s in self.slots for r in s.left.values()}

    def idle(self) -> int:
        return self.n - sum(bool(s.left) for s in self.slots)

    def submit(self, runs: list[PlannedRun], task: dict[str, Any]) -> None:
        i = next((i for i, s in enumerate(self.slots) if not s.left), None)
        if i is None:
            self.slots.append(self._spawn())
            i = len(self.slots) - 1
        try:
            self.slots[i].conn.send(task)
        except OSError:  # an idle worker died (killed from outside): replace it, nothing was lost
            self.slots[i] = self._spawn()
            self.slots[i].conn.send(task)
        self.slots[i].runs, self.slots[i].left = runs, dict(enumerate(runs))

    def events(self, timeout: float) -> Iterator[tuple[str, PlannedRun, Any]]:
        busy = [s for s in self.slots if s.left]
        ready = set(wait_ready([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout))
        for i, s in enumerate(self.slots):
            if not s.left or not ({s.conn, s.process.sentinel} & ready):
                continue
            try:
                while s.left and s.conn.poll():
                    kind, index, payload = s.conn.recv()
                    run = s.left.pop(index) if kind == "done" else s.runs[index]
                    yield kind, run, payload
            except (EOFError, OSError):
                pass
            if s.left and not s.process.is_alive():
                self.slots[i] = self._spawn()
                lost = {"error": _death(s.process.exitcode), "packed": len(s.runs)}
                for run in list(s.left.values()):  # every run of its task still in flight
                    yield "lost", run, lost
                s.left.clear()

    def close(self) -> None:
        for s in self.slots:
            try:
                s.conn.send(None)
            except OSError:
                pass
        for s in self.slots:
            s.process.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        for s in self.slots:
            if s.process.is_alive():
                s.process.kill()
            s.process.join()
            s.left = {}


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        return f"WorkerDied: the worker process was killed by {signal.Signals(-code).name} (out of memory?)"
    return f"WorkerDied: the worker process exited with code {code}"
