"""`ragline doctor`: finds stuck jobs and says why each is stuck.

It reads the job store and the broker directly, with the deployment's RAGLINE_* settings (as
`ragline serve` does), so run it where the services run.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from ragline.broker.base import DeadLetterAdmin
from ragline.broker.factory import make_broker
from ragline.config import Settings
from ragline.jobs.doctor import Diagnosis, StageFacts, diagnose
from ragline.jobs.model import Stage
from ragline.jobs.store import JobStore
from ragline.stage import envelope

# Most dead letters read per stage to match them with stuck jobs.
MAX_DEAD_LETTERS = 10_000


def run_doctor(args: argparse.Namespace) -> int:
    """Prints one paragraph per stuck job; exits 1 when there is any, 0 when there is none."""
    settings = Settings.from_env(os.environ)
    stuck_after = args.stuck_after or settings.stuck_after_s
    diagnoses, total = asyncio.run(_examine(settings, stuck_after, args.limit))
    if not total:
        print(f"no stuck jobs: every unfinished job changed within the last {stuck_after:g} s")
        return 0
    print(f"{total} stuck job(s): unfinished, and unchanged for {stuck_after:g} s or more")
    for d in diagnoses:
        print()
        print(
            f"job {d.job.job_id}  document {d.job.document_id} (version {d.job.document_version})"
        )
        print(f"  waits on: the {d.stage.value} stage ({d.reason.value})")
        print(f"  why:      {d.detail}")
        print(f"  do:       {d.advice}")
    if total > len(diagnoses):
        print(f"\n(and {total - len(diagnoses)} more: --limit shows more)")
    return 1


async def _examine(
    settings: Settings, stuck_after: float, limit: int
) -> tuple[list[Diagnosis], int]:
    jobs = JobStore.from_settings(settings)
    broker = make_broker(settings)
    try:
        await broker.connect()
        total = await jobs.count_stuck(stuck_after)
        ids = await jobs.stuck_jobs(stuck_after, limit=limit)
        found = [j for j in await jobs.get_many(ids) if j is not None]
        facts = {stage: await _stage_facts(broker, stage) for stage in Stage}
        now_stuck = [j for j in found if not j.state.is_terminal]
        return [diagnose(j, facts) for j in now_stuck], total
    finally:
        await broker.close()
        await jobs.close()


async def _stage_facts(broker: DeadLetterAdmin, stage: Stage) -> StageFacts:
    queue = envelope.queue_name(stage)
    letters: dict[str, str] = {}
    after = ""
    while len(letters) < MAX_DEAD_LETTERS:
        page = await broker.list_dead_letters(queue, limit=1000, after=after)
        for letter in page:
            if letter.job_id:
                letters[letter.job_id] = f"{letter.error_type}: {letter.error_message}"
        if len(page) < 1000:
            break
        after = page[-1].dead_letter_id
    return StageFacts(consumers=await broker.consumer_count(queue), dead_letters=letters)
