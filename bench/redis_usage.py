"""What a bench run costs Redis: the server's memory and CPU over the run, and the bytes the run's
own keys hold. Redis is shared here, so the server-wide figures count anyone else's traffic too;
the namespace's bytes are the run's alone."""

from __future__ import annotations

import threading
from typing import Any

import redis

KEYS_PER_ROUND_TRIP = 1000


class RedisUsage:
    """Samples the server's used_memory every `interval_s` from `__enter__` to `__exit__` (one
    INFO a sample, next to nothing for Redis) and reads its CPU seconds at both ends."""

    def __init__(self, redis_url: str, interval_s: float = 0.5) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-usage", daemon=True)
        self.start_memory = self.peak_memory = self.end_memory = 0
        self._start_cpu = self._end_cpu = 0.0

    def __enter__(self) -> RedisUsage:
        self.start_memory = self.peak_memory = self._used_memory()
        self._start_cpu = self._cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.end_memory = self._used_memory()
        self.peak_memory = max(self.peak_memory, self.end_memory)
        self._end_cpu = self._cpu_seconds()
        self._redis.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.peak_memory = max(self.peak_memory, self._used_memory())
            except redis.RedisError:
                continue  # one missed sample; the next one counts

    def _used_memory(self) -> int:
        return int(self._redis.info("memory")["used_memory"])

    def _cpu_seconds(self) -> float:
        cpu = self._redis.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def figures(self) -> dict[str, Any]:
        """Server-wide: memory at the start, its sampled peak above the start, at the end; CPU."""
        return {
            "used_memory_start_bytes": self.start_memory,
            "used_memory_peak_delta_bytes": self.peak_memory - self.start_memory,
            "used_memory_end_delta_bytes": self.end_memory - self.start_memory,
            "server_cpu_seconds": round(self._end_cpu - self._start_cpu, 2),
        }


def used_memory(redis_url: str) -> int:
    """The server's used_memory now."""
    r = redis.Redis.from_url(redis_url)
    try:
        return int(r.info("memory")["used_memory"])
    finally:
        r.close()


def namespace_bytes(redis_url: str, namespace: str) -> dict[str, int]:
    """How many `{namespace}:*` keys there are and their MEMORY USAGE summed (SAMPLES 0: every
    entry of a stream or hash counted, not an estimate from five)."""
    r = redis.Redis.from_url(redis_url)
    try:
        keys = list(r.scan_iter(match=f"{namespace}:*", count=KEYS_PER_ROUND_TRIP))
        total = 0
        for i in range(0, len(keys), KEYS_PER_ROUND_TRIP):
            pipe = r.pipeline(transaction=False)
            for key in keys[i : i + KEYS_PER_ROUND_TRIP]:
                pipe.memory_usage(key, samples=0)
            total += sum(int(n or 0) for n in pipe.execute())
        return {"keys": len(keys), "bytes": total}
    finally:
        r.close()
