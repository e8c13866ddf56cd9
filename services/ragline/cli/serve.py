"""`ragline serve STAGE`: one service in the foreground, as a container runs it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ragline.config import Settings
from ragline.errors import ConfigurationError, RaglineError
from ragline.telemetry import configure_logging
from ragline.tracing import configure_tracing, shutdown_tracing

STAGE_MODULES = {
    "gateway": "ragline.gateway.main",
    "chunker": "ragline.chunker.main",
    "embedder": "ragline.embedder.main",
    "indexer": "ragline.indexer.main",
}


def prepare_environment() -> None:
    """Model weights come from local files only: never reach for a hub at run time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_serve(args: argparse.Namespace) -> int:
    prepare_environment()
    settings = Settings.from_env(os.environ, listen_address=getattr(args, "listen", None))
    configure_logging(args.stage, settings.log_level, settings.log_format)
    module = importlib.import_module(STAGE_MODULES[args.stage])
    return run_stage(args.stage, settings, module.run)


def run_stage(
    stage: str, settings: Settings, run: Callable[[Settings], Coroutine[Any, Any, None]]
) -> int:
    """Runs one stage's `run` coroutine in the foreground, as `ragline serve STAGE` does (logging
    configured first); returns the exit code."""
    log = logging.getLogger("ragline.serve")
    code = 0
    try:
        configure_tracing(stage, os.environ)
        _run(run(settings))
    except ConfigurationError as exc:
        log.error("%s cannot start: %s", stage, exc)
        code = 2
    except RaglineError as exc:
        log.error("%s stopped: %s", stage, exc)
        code = 1
    except KeyboardInterrupt:
        pass
    finally:
        # The spans still buffered (the last jobs' ends) leave before the process does.
        shutdown_tracing()
    stuck = _busy_threads(grace_s=2.0)
    if stuck:
        # Python would wait for it at exit (a cut of a huge document can take minutes), which
        # outlasts the grace period the operator set; its message goes back to the queue.
        log.warning(
            "%s: exiting without waiting for %d worker thread(s) still busy; their messages "
            "will be redelivered",
            stage,
            len(stuck),
        )
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)
    return code


def _busy_threads(grace_s: float) -> list[threading.Thread]:
    """Worker threads still alive after `grace_s`: idle pool threads, told to stop when their
    loop or encoder closed, end within it; busy ones hold abandoned work."""
    deadline = time.monotonic() + grace_s
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in others if t.is_alive()]


def _run(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, except that it does not wait for the default executor's threads: work
    abandoned after the shutdown grace period must not hold the process."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # shuts the executor down without waiting for its threads
