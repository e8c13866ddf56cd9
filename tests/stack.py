"""A whole ragline stack for tests: each service a separate OS process, as in production, on
free ports, with its own namespace, Milvus Lite file and log files."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import aio_pika
import grpc
import redis
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ragline.broker.rabbitmq import DELAY_BUCKETS_MS, RabbitMQBroker
from ragline.config import Settings
from ragline.tls import channel_credentials

STAGES = ("indexer", "embedder", "chunker", "gateway")
RABBITMQ_URL = os.environ.get("RAGLINE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
# The embedder's torch threads in tests: the cores each pytest-xdist worker has, two at most. A
# thread more would only wait for a core another worker's services hold, and OpenMP's idle
# threads spin on it meanwhile.
TORCH_THREADS = str(
    max(1, min(2, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
)


def _port_block() -> range:
    """This test process's own ports: a block below the kernel's ephemeral range, so that no
    outgoing connection takes a port between its choice and the service's bind, one block per
    pytest-xdist worker (gw0, gw1, ...), so that two workers never hand out the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 20_000 + 1_000 * (int(worker) if worker.isdigit() else 0)
    return range(first, first + 1_000)


_PORTS = _port_block()
_cursor = random.randrange(len(_PORTS))


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False  # in use, or held in TIME_WAIT
    return True


def free_port_run(count: int) -> int:
    """The first of `count` consecutive ports free now on 127.0.0.1, from this process's block.
    The block is walked in turn, so a port handed out is not handed out again until the walk
    comes round (a thousand ports later), whether or not its service has bound it yet."""
    global _cursor
    for _ in range(len(_PORTS)):
        offset = _cursor % len(_PORTS)
        if offset + count > len(_PORTS):
            _cursor += len(_PORTS) - offset  # a run never wraps past the block's end
            offset = 0
        _cursor += count
        first = _PORTS.start + offset
        if all(_bindable(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} free consecutive ports in {_PORTS.start}-{_PORTS.stop - 1}")


def free_port() -> int:
    """A port free now on 127.0.0.1, from this process's block (see free_port_run)."""
    return free_port_run(1)


def serving(address: str, credentials: grpc.ChannelCredentials | None = None) -> bool:
    """Whether the service at `address` reports SERVING (dialled over TLS with `credentials`)."""
    try:
        with (
            grpc.insecure_channel(address)
            if credentials is None
            else grpc.secure_channel(address, credentials)
        ) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


class PrivateRedis:
    """A redis-server of the test's own, with the append-only file on, that can be restarted."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"a private redis-server on port {self.port} did not start"
                    ) from exc
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        """kill -9: only what the append-only file holds survives."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.process = None


class Stack:
    """Starts, stops and kills ragline services as subprocesses."""

    def __init__(
        self, workdir: Path, redis_url: str, *, metrics: bool = False, **settings: str
    ) -> None:
        """`metrics`: each process serves /metrics on a free port of its own (`scrape`)."""
        self.workdir = workdir
        self.metrics = metrics
        self.metrics_addresses: dict[str, str] = {}
        self.namespace = f"test-{uuid.uuid4().hex[:10]}"
        self.addresses = {s: f"127.0.0.1:{free_port()}" for s in STAGES}
        # The gateway's HTTP/JSON port, and the origin of a page a test may serve to call it
        # cross-origin (allowed by CORS).
        self.http_address = f"127.0.0.1:{free_port()}"
        # Other gateway processes (replicas, a second gateway in a test) get HTTP ports of their own.
        self.http_addresses: dict[str, str] = {"gateway": self.http_address}
        self.web_origin = f"http://127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "RAGLINE_REDIS_URL": redis_url,
            "RAGLINE_RABBITMQ_URL": RABBITMQ_URL,
            "RAGLINE_NAMESPACE": self.namespace,
            "RAGLINE_MILVUS_URI": str(workdir / "milvus.db"),
            "RAGLINE_MILVUS_COLLECTION": "chunks_" + uuid.uuid4().hex[:8],
            "RAGLINE_GATEWAY_ADDRESS": self.addresses["gateway"],
            "RAGLINE_CHUNKER_ADDRESS": self.addresses["chunker"],
            "RAGLINE_EMBEDDER_ADDRESS": self.addresses["embedder"],
            "RAGLINE_INDEXER_ADDRESS": self.addresses["indexer"],
            "RAGLINE_HTTP_ADDRESS": self.http_address,
            "RAGLINE_HTTP_CORS_ORIGINS": self.web_origin,
            "RAGLINE_TORCH_THREADS": TORCH_THREADS,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **{f"RAGLINE_{k.upper()}": v for k, v in settings.items()},
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        # How each process was launched, by name, so that a supervisor can start it again.
        self.launched: dict[str, tuple[str, dict[str, str]]] = {}

    @property
    def gateway(self) -> str:
        return self.addresses["gateway"]

    @property
    def http_url(self) -> str:
        """The gateway's HTTP/JSON API, e.g. http://127.0.0.1:PORT (https with TLS on)."""
        scheme = "https" if self.env.get("RAGLINE_TLS_CERT_FILE") else "http"
        return f"{scheme}://{self.http_address}"

    def log_path(self, stage: str) -> Path:
        return self.workdir / f"{stage}.log"

    def start(self, *stages: str, timeout_s: float = 120.0, wait: bool = True) -> None:
        """Starts the stages (all by default) and, unless `wait` is false, waits until each
        reports SERVING."""
        for stage in stages or STAGES:
            self.launch(stage, stage, self.env)
        if wait:
            self.wait_serving(stages or STAGES, timeout_s)

    def launch(self, name: str, stage: str, env: dict[str, str]) -> None:
        """Starts one process of `stage`, known as `name` (its log is `name`.log)."""
        if self.metrics:
            # Kept across restarts: a restarted process serves its metrics where it did.
            address = self.metrics_addresses.setdefault(name, f"127.0.0.1:{free_port()}")
            env = {**env, "RAGLINE_METRICS_ADDRESS": address}
        if stage == "gateway" and env.get("RAGLINE_HTTP_ADDRESS") == self.http_address:
            # Kept across restarts, like the metrics address.
            address = self.http_addresses.setdefault(name, f"127.0.0.1:{free_port()}")
            env = {**env, "RAGLINE_HTTP_ADDRESS": address}
        self.launched[name] = (stage, env)
        with open(self.log_path(name), "ab") as log:
            self.processes[name] = subprocess.Popen(
                self.command(stage),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def command(self, stage: str) -> list[str]:
        """The command line that starts one process of `stage`."""
        return [sys.executable, "-m", "ragline.cli.main", "serve", stage]

    def wait_serving(self, names: Sequence[str], timeout_s: float) -> None:
        """Waits until each named process reports SERVING on its address, dialled as the gateway
        dials the stages (RAGLINE_TLS_CA_FILE and the client certificate, when set)."""
        deadline = time.monotonic() + timeout_s
        for name in names:
            env = self.launched[name][1]
            credentials = (
                channel_credentials(Settings.from_env(env))
                if env.get("RAGLINE_TLS_CA_FILE")
                else None
            )
            while not serving(self.addresses[name], credentials):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited during start-up:\n{self.tail(name)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not serving after {timeout_s}s:\n{self.tail(name)}")
                time.sleep(0.2)

    def add_replicas(self, stage: str, count: int, timeout_s: float = 120.0) -> list[str]:
        """Starts processes of `stage` until it has `count` (the first is `stage` itself), each
        with its own health port, as a deployment scales one stage; returns the new names."""
        names = [f"{stage}-{i}" for i in range(2, count + 1)]
        for name in names:
            self.addresses[name] = f"127.0.0.1:{free_port()}"
            env = {**self.env, f"RAGLINE_{stage.upper()}_ADDRESS": self.addresses[name]}
            self.launch(name, stage, env)
        self.wait_serving(names, timeout_s)
        return names

    def stop(self, stage: str, timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        process = self.processes[stage]
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout_s)  # on a timeout it stays listed, for kill()
        del self.processes[stage]
        return code

    def kill(self, stage: str) -> None:
        """SIGKILL: the stage dies holding whatever it was doing."""
        process = self.processes.pop(stage)
        process.kill()
        process.wait(10)

    def restart_dead(self) -> list[str]:
        """Starts again every stage whose process has exited (as a supervisor would); returns them."""
        dead = [s for s, p in self.processes.items() if p.poll() is not None]
        for name in dead:
            del self.processes[name]
            # Like a supervisor, do not wait for it: it may crash again straight away.
            self.launch(name, *self.launched[name])
        return dead

    def stop_all(self) -> None:
        """Stops every service, then removes the stack's keys and queues from the shared servers."""
        # The gateways first, so no new work arrives; then every stage (and replica, named
        # "chunker-2" and so on) at once: each drains on its own, and the clean-up below takes
        # whatever is still queued between them.
        gateways = [n for n in self.processes if n.split("-", 1)[0] == "gateway"]
        for names in (gateways, [n for n in self.processes if n not in gateways]):
            for name in names:
                self.processes[name].send_signal(signal.SIGTERM)
            for name in names:
                process = self.processes.pop(name)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        clean_servers(
            self.env["RAGLINE_REDIS_URL"], self.namespace, self.env.get("RAGLINE_BROKER", "redis")
        )

    def scrape(self, name: str) -> str:
        """The process's /metrics page (the stack must have been made with metrics=True)."""
        url = f"http://{self.metrics_addresses[name]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return str(reply.read().decode())

    def tail(self, stage: str, lines: int = 40) -> str:
        try:
            text = self.log_path(stage).read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def logs(self) -> str:
        return "\n".join(f"--- {s} ---\n{self.tail(s)}" for s in STAGES)


def clean_servers(redis_url: str, namespace: str, broker: str) -> None:
    """Removes a namespace's keys from Redis and, for RabbitMQ, its queues."""

    async def clean() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        except (redis.RedisError, OSError):
            pass  # a test that stopped its private Redis already took the keys with it
        finally:
            await client.aclose()
        if broker == "rabbitmq":
            await delete_rabbitmq_queues(namespace, ["chunk", "embed", "index"])

    asyncio.run(clean())


async def delete_rabbitmq_queues(namespace: str, queues: Iterable[str]) -> None:
    """Deletes a namespace's RabbitMQ queues (each stage queue with its limbo, dead-letter and
    delay queues) and its dead-letter exchange. Messages in them are lost: for tests only."""
    names = RabbitMQBroker(RABBITMQ_URL, namespace=namespace)  # never connected: for its names
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            for name in (
                names.queue_name(queue),
                names.limbo_name(queue),
                names.dlq_name(queue),
                *(names.delay_name(queue, bucket) for bucket in DELAY_BUCKETS_MS),
            ):
                await channel.queue_delete(name)
        await channel.exchange_delete(names.dlx_name)
