"""A ragline stack as subprocesses on free ports with its own namespace (after tests/stack.py),
and a sampler of each service's peak RSS and CPU time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import psutil  # type: ignore[import-untyped]
from grpc_health.v1 import health_pb2, health_pb2_grpc

STAGES = ("indexer", "embedder", "chunker", "gateway")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serving(address: str) -> bool:
    """Whether the gRPC health service at `address` answers SERVING."""
    try:
        with grpc.insecure_channel(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


class Stack:
    """Starts and stops ragline services (`ragline serve STAGE`) as subprocesses."""

    def __init__(self, workdir: Path, redis_url: str, device: str, threads: int) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.namespace = f"bench-{uuid.uuid4().hex[:10]}"
        self.addresses = {s: f"127.0.0.1:{free_port()}" for s in STAGES}
        self.env = {
            **os.environ,
            "RAGLINE_REDIS_URL": redis_url,
            "RAGLINE_NAMESPACE": self.namespace,
            "RAGLINE_MILVUS_URI": str(workdir / f"milvus-{self.namespace}.db"),
            "RAGLINE_MILVUS_COLLECTION": "bench_" + uuid.uuid4().hex[:8],
            "RAGLINE_GATEWAY_ADDRESS": self.addresses["gateway"],
            "RAGLINE_CHUNKER_ADDRESS": self.addresses["chunker"],
            "RAGLINE_EMBEDDER_ADDRESS": self.addresses["embedder"],
            "RAGLINE_INDEXER_ADDRESS": self.addresses["indexer"],
            "RAGLINE_DEVICE": device,
            "RAGLINE_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if threads > 0:
            self.env["RAGLINE_TORCH_THREADS"] = str(threads)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def gateway(self) -> str:
        return self.addresses["gateway"]

    def log_path(self, stage: str) -> Path:
        return self.workdir / f"{self.namespace}-{stage}.log"

    def start(self, *stages: str, timeout_s: float = 180.0) -> None:
        """Starts `stages` (all by default) and waits until each reports SERVING."""
        for stage in stages or STAGES:
            with open(self.log_path(stage), "ab") as log:
                self.processes[stage] = subprocess.Popen(
                    [sys.executable, "-m", "ragline.cli.main", "serve", stage],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
        deadline = time.monotonic() + timeout_s
        for stage in stages or STAGES:
            while not serving(self.addresses[stage]):
                if self.processes[stage].poll() is not None:
                    raise RuntimeError(f"{stage} exited during start-up:\n{self.tail(stage)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{stage} not serving after {timeout_s}s:\n{self.tail(stage)}"
                    )
                time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        return {stage: p.pid for stage, p in self.processes.items()}

    def stop_all(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every service, SIGKILL what is still alive after `timeout_s`."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()

    def tail(self, stage: str, lines: int = 30) -> str:
        try:
            text = self.log_path(stage).read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ProcessSampler:
    """Samples each service's RSS (the process and all its children) every `interval_s`."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.2) -> None:
        self._roots = {stage: psutil.Process(pid) for stage, pid in pids.items()}
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
        for stage, root in self._roots.items():
            try:
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
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
