"""The bench's ragline stack (the tests' harness, tuned for measuring) and a sampler of each
service's peak RSS and CPU time."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.stack import Stack as _TestStack
from tests.stack import free_port

__all__ = ["ProcessSampler", "Scraper", "Stack", "free_port"]


class Stack(_TestStack):
    """Services as subprocesses on free ports in a namespace of their own, logging warnings only."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        device: str,
        threads: int,
        metrics: bool = False,
        standin: bool = False,
    ) -> None:
        """`standin`: the embedder runs the bench's stand-in for the model
        (bench/standin_embedder.py), for the pipeline's own ceiling; never the model's figures."""
        self.standin = standin
        workdir.mkdir(parents=True, exist_ok=True)
        settings = {"device": device, "log_level": "WARNING"}
        if threads > 0:
            settings["torch_threads"] = str(threads)
        super().__init__(workdir, redis_url, metrics=metrics, **settings)
        if threads <= 0:
            # Let the embedder size its own thread pool, as a deployment would.
            self.env.pop("RAGLINE_TORCH_THREADS", None)
        if standin:
            # The stand-in's entry point is in bench/, which is not installed: the services run
            # in the work folder, so the checkout goes on their path.
            root = str(Path(__file__).resolve().parent.parent)
            self.env["PYTHONPATH"] = os.pathsep.join(
                p for p in (root, self.env.get("PYTHONPATH", "")) if p
            )

    def command(self, stage: str) -> list[str]:
        if self.standin and stage == "embedder":
            return [sys.executable, "-m", "bench.standin_embedder"]
        return super().command(stage)

    def pids(self) -> dict[str, int]:
        return {stage: p.pid for stage, p in self.processes.items()}


class Scraper:
    """Scrapes every service's /metrics every `interval_s` while the bench runs, as Prometheus
    would (its default is 15 s; 1 s is the pessimistic case): the scrapes' cost, the backlog
    reads they make included, lands in the measurement."""

    def __init__(self, stack: Stack, interval_s: float = 1.0) -> None:
        self._stack = stack
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-scraper", daemon=True)
        self.scrapes = 0
        self.failures = 0

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            for name in list(self._stack.metrics_addresses):
                try:
                    self._stack.scrape(name)
                    self.scrapes += 1
                except OSError:
                    self.failures += 1


class ProcessSampler:
    """Samples each service's RSS (the process and all its children) every `interval_s`.

    Finding a process's children reads every process on the machine (~10 ms for the four
    services), so the trees are looked up again only every `tree_every_s`; sampling the known
    processes costs well under a millisecond. (Looking them up at every sample took ~6% of a
    core, which the end-to-end measurement paid for: on two cores the embedder's threads wait
    for each other whenever anything else runs.)
    """

    def __init__(
        self, pids: dict[str, int], interval_s: float = 0.2, tree_every_s: float = 2.0
    ) -> None:
        self._roots = {stage: psutil.Process(pid) for stage, pid in pids.items()}
        self._members: dict[str, list[psutil.Process]] = {}
        self._tree_every_s = tree_every_s
        self._tree_time = -float("inf")
        self._interval_s = interval_s
        self.peak_rss: dict[str, int] = dict.fromkeys(pids, 0)
        self._cpu: dict[int, tuple[str, float]] = {}  # pid -> (stage, cpu seconds)
        self._cpu_mark: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> ProcessSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()

    def sample(self) -> None:
        """One sample of every service's process tree."""
        if time.monotonic() - self._tree_time >= self._tree_every_s:
            self._find_trees()
        for stage, members in list(self._members.items()):
            rss = 0
            for member in members:
                try:
                    with member.oneshot():
                        rss += member.memory_info().rss
                        times = member.cpu_times()
                        self._cpu[member.pid] = (stage, times.user + times.system)
                except psutil.Error:
                    continue
            self.peak_rss[stage] = max(self.peak_rss[stage], rss)

    def _find_trees(self) -> None:
        for stage, root in self._roots.items():
            try:
                self._members[stage] = [root, *root.children(recursive=True)]
            except psutil.Error:
                self._members.pop(stage, None)
        self._tree_time = time.monotonic()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each service (with children) used since `mark_cpu()`."""
        totals = dict.fromkeys(self._roots, 0.0)
        for stage, seconds in self._cpu.values():
            totals[stage] += seconds
        return {s: round(totals[s] - self._cpu_mark.get(s, 0.0), 2) for s in totals}

    def mark_cpu(self) -> None:
        """Starts the CPU-time window now."""
        self.sample()
        self._cpu_mark = {}
        self._cpu_mark = self.cpu_seconds()
