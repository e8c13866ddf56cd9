"""`ragline dlq`: list, requeue and purge a stage's dead-letter queue through the gateway."""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
from collections.abc import Sequence
from typing import Any

from ragline.cli.client_commands import UsageError, connect, excerpt
from ragline_client import DeadLetter, Stage

STAGE_NAMES = tuple(stage.value for stage in Stage)
DEFAULT_LIMIT = 100
# The gateway serves at most this many dead letters a page.
MAX_PAGE_SIZE = 1000
# Table columns that are cut with an ellipsis beyond this width (ids never are: they are copied).
_DOCUMENT_WIDTH = 40
_ERROR_TYPE_WIDTH = 28
_MIN_MESSAGE_WIDTH = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the `dlq` subcommand and its `list`, `requeue` and `purge` commands."""
    dlq = subparsers.add_parser(
        "dlq",
        help="list, requeue or purge a stage's dead-letter queue",
        description="A stage puts a task in its dead-letter queue when it gives up on it: a "
        "permanent error, or too many failed attempts. List them, requeue them once the cause is "
        f"fixed, or purge them. STAGE is one of {', '.join(STAGE_NAMES)}.",
    )
    commands = dlq.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="show a stage's dead letters, oldest first")
    _add_stage(p)
    p.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N dead letters (default {DEFAULT_LIMIT})",
    )
    p.add_argument("--json", action="store_true", help="print the dead letters as a JSON array")
    p.set_defaults(handler=cmd_dlq_list)

    p = commands.add_parser(
        "requeue",
        help="put dead letters back on their stage's queue and reopen their jobs",
        description="Put dead letters back on their stage's queue with a fresh attempt count, "
        "and reopen their jobs. Name the dead letters (see `ragline dlq list STAGE`) or give --all.",
    )
    _add_stage(p)
    _add_selection(p, "requeue")
    p.add_argument("--json", action="store_true", help="print the count as JSON")
    p.set_defaults(handler=cmd_dlq_requeue)

    p = commands.add_parser(
        "purge",
        help="delete dead letters for good",
        description="Delete dead letters for good; their jobs stay failed. Name the dead letters "
        "(see `ragline dlq list STAGE`) or give --all, which asks first on a terminal.",
    )
    _add_stage(p)
    _add_selection(p, "purge")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask before purging --all")
    p.add_argument("--json", action="store_true", help="print the count as JSON")
    p.set_defaults(handler=cmd_dlq_purge)


def _add_stage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "stage",
        type=str.lower,
        choices=STAGE_NAMES,
        metavar="STAGE",
        help=f"one of {', '.join(STAGE_NAMES)}",
    )


def _add_selection(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help=f"a dead letter to {verb}")
    parser.add_argument(
        "--all", action="store_true", help=f"{verb} every dead letter in the stage's queue"
    )


def _limit(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {raw}")
    return value


# ---------------------------------------------------------------------------------------------
# Output formatting


def format_dead_letters(letters: Sequence[DeadLetter], width: int = 100) -> str:
    """Dead letters as a table, one a line; the error message is cut to fit `width`."""
    rows = [
        [
            d.dead_letter_id,
            d.job_id or "-",
            excerpt(d.document_id, _DOCUMENT_WIDTH) if d.document_id else "-",
            excerpt(d.error_type, _ERROR_TYPE_WIDTH) if d.error_type else "-",
            str(d.attempts),
            _local_time(d),
        ]
        for d in letters
    ]
    header = ["ID", "JOB", "DOCUMENT", "ERROR TYPE", "ATTEMPTS", "LAST FAILURE"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    used = sum(widths) + 2 * len(widths)
    message_width = max(_MIN_MESSAGE_WIDTH, width - used)

    def line(cells: Sequence[str], message: str) -> str:
        padded = [
            cell.rjust(w) if i == 4 else cell.ljust(w)  # attempts: a number, right-aligned
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join([*padded, message]).rstrip()

    lines = [line(header, "ERROR")]
    for row, letter in zip(rows, letters, strict=True):
        lines.append(line(row, excerpt(letter.error_message, message_width) or "-"))
    return "\n".join(lines)


def _local_time(letter: DeadLetter) -> str:
    when = letter.last_failure_time
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _count(n: int) -> str:
    return f"{n} dead letter" if n == 1 else f"{n} dead letters"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------
# Commands


def cmd_dlq_list(args: argparse.Namespace) -> int:
    """`ragline dlq list`: show up to --limit dead letters of a stage, following pages."""
    page_size = min(args.limit + 1, MAX_PAGE_SIZE)  # one more than shown says whether more remain
    with connect(args) as client:
        found = client.iter_dead_letters(args.stage, page_size=page_size)
        letters = list(itertools.islice(found, args.limit + 1))
    more = len(letters) > args.limit
    letters = letters[: args.limit]
    if args.json:
        _print_json([d.to_dict() for d in letters])
    elif not letters:
        print(f"the {args.stage} dead-letter queue is empty")
    else:
        print(format_dead_letters(letters, width=shutil.get_terminal_size().columns))
    if more:
        print(
            f"showing the oldest {_count(args.limit)}; more remain (raise --limit to see them)",
            file=sys.stderr,
        )
    return 0


def cmd_dlq_requeue(args: argparse.Namespace) -> int:
    """`ragline dlq requeue`: put the named dead letters, or all of them, back on the queue."""
    ids = _selection(args)
    with connect(args) as client:
        requeued = client.requeue_dead_letters(args.stage, ids)
    if args.json:
        _print_json({"stage": args.stage, "requeued": requeued})
    elif requeued == 0:
        print(_nothing_done("requeued", args.stage, ids))
    else:
        print(
            f"requeued {_done_of(requeued, ids)} to the {args.stage} stage{_missing(requeued, ids)}"
        )
        print("their jobs run again: watch the jobs with `ragline job ID --watch`")
    return 1 if requeued < len(ids) else 0


def cmd_dlq_purge(args: argparse.Namespace) -> int:
    """`ragline dlq purge`: delete the named dead letters, or all of them, for good."""
    ids = _selection(args)
    if not ids and not args.yes and sys.stdin.isatty():
        question = f"purge every dead letter in the {args.stage} queue? This cannot be undone."
        if not _confirm(question):
            print("nothing purged", file=sys.stderr)
            return 1
    with connect(args) as client:
        purged = client.purge_dead_letters(args.stage, ids)
    if args.json:
        _print_json({"stage": args.stage, "purged": purged})
    elif purged == 0:
        print(_nothing_done("purged", args.stage, ids))
    else:
        print(f"purged {_done_of(purged, ids)} from the {args.stage} stage{_missing(purged, ids)}")
        print("their jobs stay failed: ingest those documents again to retry them")
    return 1 if purged < len(ids) else 0


def _selection(args: argparse.Namespace) -> list[str]:
    """The ids given, without repeats; [] for --all. UsageError unless exactly one was given."""
    if args.all and args.ids:
        raise UsageError("give dead-letter ids or --all, not both")
    if not args.all and not args.ids:
        raise UsageError(
            f"give the dead-letter ids to {args.subcommand} "
            f"(see `ragline dlq list {args.stage}`), or --all"
        )
    return list(dict.fromkeys(args.ids))


def _done_of(done: int, ids: Sequence[str]) -> str:
    return f"{done} of {_count(len(ids))}" if done < len(ids) else _count(done)


def _missing(done: int, ids: Sequence[str]) -> str:
    return " (the others were not in the dead-letter queue)" if done < len(ids) else ""


def _nothing_done(verb: str, stage: str, ids: Sequence[str]) -> str:
    if ids:
        return (
            f"nothing {verb}: no such dead letter in the {stage} dead-letter queue "
            f"(see them with `ragline dlq list {stage}`)"
        )
    return f"nothing {verb}: the {stage} dead-letter queue is empty"


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")
