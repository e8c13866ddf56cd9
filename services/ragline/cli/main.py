"""`ragline`: the command-line entry point. Parses arguments and dispatches to a subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ragline import __version__
from ragline.cli import client_commands, dlq_commands, keys_commands
from ragline.cli.client_commands import UsageError
from ragline.config import Settings
from ragline.errors import RaglineError
from ragline_client import DEFAULT_GATEWAY, RaglineClientError

STAGES = ("gateway", "chunker", "embedder", "indexer")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="ragline",
        description="Non-blocking document ingestion for RAG: ingest documents through the "
        "gateway, follow their jobs and search the index.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ragline {__version__}")
    _add_gateway_option(parser, default=None)
    _add_api_key_option(parser, default=None)
    _add_tls_options(parser, default=None)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = subparsers.add_parser(
        "up", help="start the whole stack locally: Redis if needed, the gateway and every stage"
    )
    p.add_argument(
        "--broker",
        choices=("redis", "rabbitmq"),
        help="which broker carries the queues (default: $RAGLINE_BROKER, else redis)",
    )
    p.add_argument(
        "--no-redis-start",
        action="store_true",
        help="never start a Redis server; fail when none answers",
    )
    p.set_defaults(handler=_run_up)

    p = subparsers.add_parser("serve", help="run one service in the foreground")
    p.add_argument("stage", choices=STAGES, metavar="STAGE", help=f"one of {', '.join(STAGES)}")
    p.add_argument("--listen", metavar="ADDRESS", help="the host:port to listen on")
    p.set_defaults(handler=_run_serve)

    client_commands.register(subparsers)
    dlq_commands.register(subparsers)
    keys_commands.register(subparsers)

    p = subparsers.add_parser(
        "doctor",
        help="find stuck jobs (unfinished, unchanged for RAGLINE_STUCK_AFTER_S) and say why; "
        "reads Redis and the broker with the RAGLINE_* settings, as `serve` does",
    )
    p.add_argument(
        "--stuck-after",
        type=float,
        metavar="SECONDS",
        help="a job is stuck after this long without a change "
        "(default: $RAGLINE_STUCK_AFTER_S, else 600)",
    )
    p.add_argument("--limit", type=int, default=100, help="most stuck jobs to explain (100)")
    p.add_argument(
        "--repair",
        action="store_true",
        help="also publish again, now, the task of each job whose task is missing (the "
        "gateways do it by themselves every RAGLINE_STUCK_AFTER_S / 4)",
    )
    p.set_defaults(handler=_run_doctor)

    p = subparsers.add_parser(
        "migrate-vectors",
        help="once, after upgrading from a release without tenants: move the Milvus collection "
        "into the current schema, every chunk to tenant 'default' (stop the indexer first)",
    )
    p.set_defaults(handler=_run_migrate_vectors)
    # Also accept --gateway after the subcommand; SUPPRESS keeps an absent one from hiding the global.
    for subparser in _subparsers(parser):
        _add_gateway_option(subparser, default=argparse.SUPPRESS)
        _add_api_key_option(subparser, default=argparse.SUPPRESS)
        # Those talk to no gateway.
        if subparser.prog.split()[1] not in ("up", "serve", "doctor", "keys", "migrate-vectors"):
            _add_tls_options(subparser, default=argparse.SUPPRESS)
    return parser


def _settings_help() -> str:
    """The services' settings, for `ragline --help`; README.md says what each one does."""
    rows = [f"  {name:<32} {default or '(empty)'}" for name, default in Settings.variables()]
    return "\n".join(
        [
            "settings (environment variables read by `ragline serve`, `up` and `doctor`; "
            "README.md explains each), with their defaults:",
            *rows,
            "tracing reads OpenTelemetry's own OTEL_* variables and is off by default;",
            "  OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER=otlp) turns it on "
            '(README.md, "Tracing and logs").',
        ]
    )


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand's parser under `parser`, nested ones (`dlq list`) included."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                found += [subparser, *_subparsers(subparser)]
    return found


def _add_gateway_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--gateway",
        metavar="ADDRESS",
        default=default,
        help=f"the gateway's host:port (default: $RAGLINE_GATEWAY, else {DEFAULT_GATEWAY})",
    )


def _add_api_key_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=default,
        help="the API key sent to the gateway as `authorization: Bearer KEY` (default: "
        "$RAGLINE_API_KEY, which keeps it out of the process list; none when unset)",
    )


def _add_tls_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    group = parser.add_argument_group(
        "TLS", "connect to a gateway that serves TLS (any of these turns TLS on)"
    )
    group.add_argument(
        "--ca",
        metavar="FILE",
        default=default,
        help="PEM certificate of the CA that signed the gateway's (default: $RAGLINE_TLS_CA_FILE; "
        "none: the system's CAs)",
    )
    group.add_argument(
        "--cert",
        metavar="FILE",
        default=default,
        help="PEM client certificate, for a gateway that requires mutual TLS "
        "(default: $RAGLINE_TLS_CLIENT_CERT_FILE)",
    )
    group.add_argument(
        "--key",
        metavar="FILE",
        default=default,
        help="the client certificate's PEM private key (default: $RAGLINE_TLS_CLIENT_KEY_FILE)",
    )


def _run_up(args: argparse.Namespace) -> int:
    from ragline.cli.stack import run_up

    return run_up(args)


def _run_serve(args: argparse.Namespace) -> int:
    from ragline.cli.serve import run_serve

    return run_serve(args)


def _run_doctor(args: argparse.Namespace) -> int:
    from ragline.cli.doctor import run_doctor

    return run_doctor(args)


def _run_migrate_vectors(args: argparse.Namespace) -> int:
    from ragline.cli.migrate import run_migrate_vectors

    return run_migrate_vectors(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line in `argv` (default: sys.argv[1:]) and returns the exit code:
    0 success, 1 failure, 2 a usage error, 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if args.gateway is None:
        args.gateway = os.environ.get("RAGLINE_GATEWAY") or DEFAULT_GATEWAY
    if args.api_key is None:
        args.api_key = os.environ.get("RAGLINE_API_KEY") or None
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    # The command as typed, for messages: "ragline dlq list: ...".
    name = " ".join(filter(None, [args.command, getattr(args, "subcommand", None)]))
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"ragline {name}: error: {exc}", file=sys.stderr)
        return 2
    except (RaglineClientError, RaglineError, OSError) as exc:
        print(f"ragline {name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ragline {name}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
