"""`ragline doctor`: finds stuck jobs and says why each is stuck; with --repair, also publishes
again the tasks found missing (as the gateways' repair loop does on its own).

It reads the job store and the broker directly, with the deployment's RAGLINE_* settings (as
`ragline serve` does), so run it where the services run.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from ragline.broker.factory import make_broker
from ragline.config import Settings
from ragline.gateway.outbox import chunk_outbox
from ragline.jobs.repair import Examination, Repair, Repairer, examine
from ragline.jobs.store import JobStore


def run_doctor(args: argparse.Namespace) -> int:
    """Prints one paragraph per stuck job; exits 1 when there is any, 0 when there is none."""
    settings = Settings.from_env(os.environ)
    stuck_after = args.stuck_after or settings.stuck_after_s
    found, repairs = asyncio.run(
        _examine(settings, stuck_after, args.limit, getattr(args, "repair", False))
    )
    if not found.total:
        print(f"no stuck jobs: every unfinished job changed within the last {stuck_after:g} s")
        return 0
    done = {r.diagnosis.job.job_id: r for r in repairs}
    print(f"{found.total} stuck job(s): unfinished, and unchanged for {stuck_after:g} s or more")
    for d in found.diagnoses:
        print()
        print(
            f"job {d.job.job_id}  document {d.job.document_id} (version {d.job.document_version})"
        )
        print(f"  waits on: the {d.stage.value} stage ({d.reason.value})")
        print(f"  why:      {d.detail}")
        print(f"  do:       {d.advice}")
        if d.job.job_id in done:
            print(f"  repair:   {done[d.job.job_id].message}")
    if found.total > len(found.diagnoses):
        print(f"\n(and {found.total - len(found.diagnoses)} more: --limit shows more)")
    return 1


async def _examine(
    settings: Settings, stuck_after: float, limit: int, repair: bool
) -> tuple[Examination, list[Repair]]:
    jobs = JobStore.from_settings(settings)
    broker = make_broker(settings)
    try:
        await broker.connect()
        found = await examine(
            jobs, broker, stuck_after, limit=limit, max_repairs=settings.max_repairs
        )
        if not repair:
            return found, []
        # Into the same target as the gateways' own repairs: on RabbitMQ the outbox, which a
        # gateway's relay publishes from within a second.
        outbox = chunk_outbox(broker, jobs, settings)
        repairer = Repairer(
            jobs,
            broker,
            outbox.target,
            stuck_after_s=stuck_after,
            max_repairs=settings.max_repairs,
        )
        return found, await repairer.repair(found)
    finally:
        await broker.close()
        await jobs.close()
