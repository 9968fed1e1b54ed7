"""Supervised jobs: a failure is logged and becomes the worker's fault, never silence."""

from __future__ import annotations

import asyncio
import logging

import pytest

from matrixhpc.runtime.supervisor import Supervisor


async def _boom() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("disk on fire")


@pytest.mark.asyncio
async def test_a_failing_job_is_logged_and_becomes_the_fault(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = Supervisor()
    with caplog.at_level(logging.ERROR):
        sup.start(_boom(), "hand-off watcher")
        reason = await asyncio.wait_for(sup.fault, 2)
    assert reason == "hand-off watcher: RuntimeError: disk on fire"
    assert "hand-off watcher failed" in caplog.text
    assert "Traceback" in caplog.text
    assert not sup.jobs


@pytest.mark.asyncio
async def test_the_first_fault_wins_and_cancelled_jobs_are_not_faults() -> None:
    sup = Supervisor()
    forever = sup.start(asyncio.Event().wait(), "loop")
    forever.cancel()
    await asyncio.gather(forever, return_exceptions=True)
    assert not sup.fault.done()
    sup.fail("journal: no space left on device")
    sup.fail("something later")
    assert sup.fault.result() == "journal: no space left on device"


@pytest.mark.asyncio
async def test_cancel_all_stops_every_job() -> None:
    sup = Supervisor()
    jobs = [sup.start(asyncio.Event().wait(), f"j{i}") for i in range(3)]
    await sup.cancel_all()
    assert all(j.cancelled() for j in jobs)
    assert not sup.jobs
    assert not sup.fault.done()
