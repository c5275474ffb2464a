"""Stopping a task: one process-wide flag that every Atlassian call and wait obeys.

A task being stopped (Airflow's SIGTERM calls the operator's ``on_kill``, or its
``execution_timeout`` fires) sets one process-wide flag (:func:`cancel_atlassian_calls`): every
back-off or pacing wait (:func:`interruptible_sleep`) wakes at once, and no further request is sent
(:func:`raise_if_cancelled`), in any thread.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from airflow.sdk.exceptions import AirflowTaskTerminated, AirflowTaskTimeout

from atlassian_cleanup.client.credentials import forget_all_task_memos

_CANCELLED = threading.Event()
_cancel_reason: list[str] = []


class AtlassianCallsCancelled(AirflowTaskTerminated):
    """The task was asked to stop (SIGTERM, ``execution_timeout``); no further Atlassian call is made.

    A ``BaseException`` (like Airflow's own), so per-user ``except Exception`` handlers do not
    swallow it: a write whose intent is journalled but whose result is not stays *uncertain*, and
    the next run re-checks it in Atlassian before doing anything.
    """


def begin_atlassian_calls() -> None:
    """A task that calls Atlassian starts: clear the stop flag and what was memoised for one task."""
    _CANCELLED.clear()
    _cancel_reason.clear()
    forget_all_task_memos()


def cancel_atlassian_calls(reason: str = "the task was asked to stop") -> None:
    """Make every Atlassian call, back-off and pacing wait of this process stop as soon as possible."""
    _cancel_reason[:] = [reason]
    _CANCELLED.set()


def atlassian_calls_cancelled() -> bool:
    """Whether :func:`cancel_atlassian_calls` was called since the task began."""
    return _CANCELLED.is_set()


def raise_if_cancelled(where: str = "") -> None:
    """
    Raise :class:`AtlassianCallsCancelled` when the task is being stopped.

    :param where: what was about to happen (``POST /admin/...``), for the message.
    """
    if _CANCELLED.is_set():
        reason = _cancel_reason[0] if _cancel_reason else "the task was asked to stop"
        before = f" before {where}" if where else ""
        raise AtlassianCallsCancelled(f"Stopped{before}: {reason}")


def interruptible_sleep(seconds: float) -> None:
    """``time.sleep`` that returns at once when the task is being stopped (then raises)."""
    if seconds > 0:
        _CANCELLED.wait(seconds)
    raise_if_cancelled()


class StopsAtlassianCallsOnKill:
    """
    Operator mixin: ``on_kill`` stops this task's Atlassian calls within seconds.

    Airflow 3 answers SIGTERM by calling ``on_kill`` from the signal handler, in the main thread,
    and nothing else: a task blocked in a page loop, a back-off sleep or a thread pool would run on.
    Here the process-wide stop flag is set (every thread's waits wake up, no new request leaves),
    and, when called from that signal handler, :class:`AtlassianCallsCancelled` is raised in the
    main thread so whatever it was waiting for is abandoned. After an ``execution_timeout`` Airflow
    calls ``on_kill`` with the timeout already raised: only the flag is set then.
    """

    def pre_execute(self, context: Any) -> Any:
        begin_atlassian_calls()  # a new task: a stop requested for an earlier one no longer applies
        parent = getattr(super(), "pre_execute", None)
        return parent(context) if parent is not None else None

    def on_kill(self) -> None:
        task_id = getattr(self, "task_id", "task")
        cancel_atlassian_calls(f"task {task_id} was stopped (SIGTERM or execution_timeout)")
        handling = sys.exc_info()[1]
        if threading.current_thread() is threading.main_thread() and not isinstance(
            handling, AirflowTaskTimeout | AirflowTaskTerminated
        ):
            raise_if_cancelled()
