"""`ragline serve STAGE`: one service in the foreground, as a container runs it."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os

from ragline.config import Settings
from ragline.errors import ConfigurationError, RaglineError
from ragline.telemetry import configure_logging

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
    configure_logging(args.stage, settings.log_level)
    log = logging.getLogger("ragline.serve")
    module = importlib.import_module(STAGE_MODULES[args.stage])
    try:
        asyncio.run(module.run(settings))
    except ConfigurationError as exc:
        log.error("%s cannot start: %s", args.stage, exc)
        return 2
    except RaglineError as exc:
        log.error("%s stopped: %s", args.stage, exc)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
