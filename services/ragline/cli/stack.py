"""`ragline up`: the whole stack on this machine, each service its own process.

Makes sure Redis answers (starting a local redis-server when none does and one is installed),
starts the gateway and the three stages, prints a line with `ready` once all of them serve, and on
Ctrl-C or SIGTERM stops them all, each draining its in-flight work first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ragline.config import Settings
from ragline.tls import PLAINTEXT, channel_credentials, server_mode

STAGES = ("indexer", "embedder", "chunker", "gateway")
# With RAGLINE_METRICS_ADDRESS host:port, each service serves its metrics on port + its offset.
METRICS_PORT_OFFSETS = {"gateway": 0, "chunker": 1, "embedder": 2, "indexer": 3}
STARTUP_TIMEOUT_S = 180.0
STOP_GRACE_S = 40.0


@dataclass
class Child:
    name: str
    address: str
    process: subprocess.Popen[bytes]


def say(message: str) -> None:
    print(f"ragline: {message}", flush=True)


def run_up(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if getattr(args, "broker", None):
        env["RAGLINE_BROKER"] = args.broker
    if "RAGLINE_HTTP_ADDRESS" not in env:
        env["RAGLINE_HTTP_ADDRESS"] = http_address(env)
    settings = Settings.from_env(env)
    problem = _tls_problem(settings)
    if problem:
        say(problem)
        return 1
    # What the health checks below dial with: the same as the gateway's calls to the stages.
    credentials = channel_credentials(settings)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    children: list[Child] = []
    redis_child = None
    try:
        if not _redis_answers(settings.redis_url):
            if getattr(args, "no_redis_start", False):
                say(
                    f"no Redis answers at {settings.redis_url}. Start one, or drop --no-redis-start."
                )
                return 1
            redis_child = _start_redis(settings.redis_url)
            if redis_child is None:
                return 1
        if settings.broker == "rabbitmq" and not _rabbitmq_answers(settings.rabbitmq_url):
            say(
                f"RabbitMQ does not answer at {_without_password(settings.rabbitmq_url)}. Start it "
                "(Debian/Ubuntu: sudo rabbitmq-server -detached) or use --broker redis."
            )
            return 1
        addresses = {
            "gateway": settings.gateway_address,
            "chunker": settings.chunker_address,
            "embedder": settings.embedder_address,
            "indexer": settings.indexer_address,
        }
        metrics = metrics_addresses(settings.metrics_address)
        for name in STAGES:
            child_env = {**env, "RAGLINE_METRICS_ADDRESS": metrics.get(name, "")}
            process = subprocess.Popen(
                [sys.executable, "-m", "ragline.cli.main", "serve", name], env=child_env
            )
            children.append(Child(name, addresses[name], process))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        waiting = {c.name for c in children}
        while waiting and not stopping:
            for child in children:
                if child.process.poll() is not None:
                    say(
                        f"the {child.name} exited during start-up (code {child.process.returncode}); "
                        "its log is above. Stopping the others."
                    )
                    return 1
                if child.name in waiting and _serving(child.address, credentials):
                    waiting.discard(child.name)
            if time.monotonic() > deadline:
                say(
                    f"not ready after {STARTUP_TIMEOUT_S:.0f}s: still waiting for {', '.join(sorted(waiting))}"
                )
                return 1
            time.sleep(0.3)
        if stopping:
            return 0
        if settings.http_address:  # before `ready`, which is the line scripts wait for
            scheme = "https" if settings.tls_cert_file else "http"
            say(f"HTTP/JSON API: {scheme}://{settings.http_address} (docs/http.md)")
        if metrics:
            say("metrics: " + ", ".join(f"{n} http://{a}/metrics" for n, a in metrics.items()))
        say(
            f"ready: gateway at {settings.gateway_address} over {server_mode(settings)} "
            f"(broker {settings.broker}, "
            f"Redis {settings.redis_url}, Milvus {settings.milvus_uri}). Ctrl-C stops everything."
        )
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    say(
                        f"the {child.name} stopped unexpectedly (code {child.process.returncode}); "
                        "stopping the others."
                    )
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop(children)
        if redis_child is not None:
            redis_child.terminate()
            redis_child.wait(10)
        if children:
            say("stopped")


def http_address(env: dict[str, str]) -> str:
    """Where the gateway serves HTTP under `ragline up` when RAGLINE_HTTP_ADDRESS is unset: its
    gRPC host, on the port after the last stage's (127.0.0.1:50055 with the defaults), so the
    four gRPC ports and this one are consecutive."""
    defaults = Settings()
    host, _, port = env.get("RAGLINE_GATEWAY_ADDRESS", defaults.gateway_address).rpartition(":")
    return f"{host}:{int(port) + len(STAGES)}" if port.isdigit() else ""


def metrics_addresses(address: str) -> dict[str, str]:
    """Each service's metrics address under `ragline up`: RAGLINE_METRICS_ADDRESS's host, its
    port for the gateway and the next three for the stages; none when it is empty."""
    if not address:
        return {}
    host, _, port = address.rpartition(":")
    return {n: f"{host}:{int(port) + i}" for n, i in METRICS_PORT_OFFSETS.items()}


def _stop(children: list[Child]) -> None:
    # Gateway first, so no new work arrives while the stages drain.
    for child in reversed(children):
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"the {child.name} did not stop within {STOP_GRACE_S:.0f}s; killing it")
            child.process.kill()
            child.process.wait()


def _tls_problem(settings: Settings) -> str:
    """Why one set of TLS settings cannot serve a whole stack: every service gets the same
    environment, so each must trust (and, with mutual TLS, be trusted by) the others."""
    if server_mode(settings) != PLAINTEXT and not settings.tls_ca_file:
        return (
            "RAGLINE_TLS_CERT_FILE makes every service serve TLS, so the gateway (and up's health "
            "checks) must trust it: set RAGLINE_TLS_CA_FILE to the CA that signed it."
        )
    if settings.tls_client_ca_file and not settings.tls_client_cert_file:
        return (
            "RAGLINE_TLS_CLIENT_CA_FILE makes every service require a client certificate: set "
            "RAGLINE_TLS_CLIENT_CERT_FILE and RAGLINE_TLS_CLIENT_KEY_FILE to one that CA signed, "
            "for the gateway's calls to the stages and up's health checks."
        )
    return ""


def _serving(address: str, credentials: grpc.ChannelCredentials | None) -> bool:
    try:
        with (
            grpc.insecure_channel(address)
            if credentials is None
            else grpc.secure_channel(address, credentials)
        ) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def _rabbitmq_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 5672), timeout=2
        ):
            return True
    except OSError:
        return False


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return url.replace(f":{parsed.password}@", ":***@", 1)


def _start_redis(url: str) -> subprocess.Popen[bytes] | None:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(f"no Redis answers at {url}, and it is not on this machine; start it there.")
        return None
    server = shutil.which("redis-server")
    if server is None:
        say(
            f"no Redis answers at {url} and redis-server is not installed. Install it "
            "(Debian/Ubuntu: sudo apt-get install redis-server) or point RAGLINE_REDIS_URL at one."
        )
        return None
    data = Path("ragline-data/redis")
    data.mkdir(parents=True, exist_ok=True)
    say(f"no Redis answered at {url}; starting redis-server on port {port} (data in {data})")
    # The settings ragline needs: an append-only file synced every second, and no eviction.
    process = subprocess.Popen(
        [
            server,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(50):
        if _redis_answers(url):
            return process
        time.sleep(0.1)
    say("redis-server did not start; run it by hand to see why")
    process.terminate()
    return None
