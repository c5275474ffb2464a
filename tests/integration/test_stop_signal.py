"""SIGTERM (Airflow's kill, and what follows an ``execution_timeout``) stops a task within seconds.

Airflow 3 answers SIGTERM in the task process by calling the operator's ``on_kill`` from the signal
handler, and nothing more; each child process below installs exactly that handler. The task is
caught where it used to hang: a back-off sleep in the page-prefetch thread, an endless but valid
listing, the concurrent Jira reader, and the enforcement engine's write pool. Time is bounded with
generous limits (the point is "seconds, not minutes or never"), not measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fake_atlassian import (
    NOT_FOUND,
    SEARCH,
    Directory,
    FakeAtlassian,
    Reply,
    Request,
    page,
    rows,
    user,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
JIRA_USERS = "/rest/api/3/users/search"
#: Long enough that a task still sleeping through it is obviously not stopped.
LONG_WAIT = {"Retry-After": "120"}
#: Real waits (the default sleep), short exponential steps, the default 300 s cap.
REAL_RETRY = {"base_delay": 0.05, "max_backoff": 0.2, "max_attempts": 5}
STOPPED_WITHIN = 15  # seconds: generous; without on_kill the task sleeps 120 s or pages forever

_EXTRACT = """
import signal, sys
from atlassian_cleanup.operators.cleanup import ExtractUsersOperator

site = sys.argv[1] or None
operator = ExtractUsersOperator(task_id="extract_users", policy_path="unused", site_conn_id=site)
signal.signal(signal.SIGTERM, lambda _signum, _frame: operator.on_kill())  # as Airflow's task runner does
print("READY", flush=True)
table, stats = operator.extract()
print("FINISHED", len(table), flush=True)
"""

_APPLY = """
import json, signal, sys
from datetime import datetime
from atlassian_cleanup.actions.enforcement import Enforcer
from atlassian_cleanup.client.hooks import AtlassianAdminHook
from atlassian_cleanup.operators.cleanup import ApplyActionsOperator
from atlassian_cleanup.actions.state import StateStore

args = json.loads(open(sys.argv[1]).read())
operator = ApplyActionsOperator(task_id="apply_actions", plan=[], run_policy={}, policy_path="unused")
signal.signal(signal.SIGTERM, lambda _signum, _frame: operator.on_kill())
store = StateStore(args["db"])
at = datetime.fromisoformat(args["at"])
engine = Enforcer(AtlassianAdminHook, store, run_id="stopped", at=at, concurrency=4)
print("READY", flush=True)
engine.apply(args["rows"])
print("FINISHED", flush=True)
"""


def _env(fake: FakeAtlassian) -> dict[str, str]:
    env = dict(os.environ)
    env.update(fake.connections(retry=REAL_RETRY))
    paths = [str(REPO / "plugins"), str(REPO / "include"), str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def _start(code: str, arg: str, fake: FakeAtlassian) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", code, arg],
        env=_env(fake),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "READY"
    return child


def _wait_for(condition: Callable[[], bool], child: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert child.poll() is None, child.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the scenario never started"
        time.sleep(0.02)


def _terminate(child: subprocess.Popen[str]) -> str:
    """SIGTERM the child; it must exit well before the wait it was in would end. Returns stderr."""
    child.send_signal(signal.SIGTERM)
    try:
        _out, err = child.communicate(timeout=STOPPED_WITHIN)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"the task was still running {STOPPED_WITHIN}s after SIGTERM")
    assert child.returncode != 0
    assert "AtlassianCallsCancelled" in err, err[-3000:]
    return err


def _calls(fake: FakeAtlassian, path: str) -> int:
    return len([c for c in fake.calls if c.path == path])


def _endless_directory(request: Request) -> Reply:
    if request.path != SEARCH:
        return NOT_FOUND
    return Reply(body=page([user(f"u{request.seen}")], f"c{request.seen + 1}"), delay=0.01)


@pytest.mark.timeout(120)
def test_sigterm_during_a_back_off_sleep_in_the_page_thread() -> None:
    def script(request: Request) -> Reply:
        return (
            Reply(429, {"message": "slow down"}, headers=LONG_WAIT) if request.path == SEARCH else NOT_FOUND
        )

    with FakeAtlassian(script) as fake:
        child = _start(_EXTRACT, "", fake)
        _wait_for(lambda: _calls(fake, SEARCH) >= 1, child)
        time.sleep(0.3)  # well inside the 120 s back-off
        _terminate(child)
        assert _calls(fake, SEARCH) == 1  # nothing was sent after the stop


@pytest.mark.timeout(120)
def test_sigterm_during_an_endless_valid_listing() -> None:
    with FakeAtlassian(_endless_directory) as fake:
        child = _start(_EXTRACT, "", fake)
        _wait_for(lambda: _calls(fake, SEARCH) >= 20, child)
        _terminate(child)
        settled = _calls(fake, SEARCH)
        time.sleep(0.5)
        assert _calls(fake, SEARCH) == settled  # the page thread is gone too


@pytest.mark.timeout(120)
def test_sigterm_while_the_jira_reader_backs_off() -> None:
    def script(request: Request) -> Reply:
        if request.path == JIRA_USERS:
            return Reply(429, {"errorMessages": ["slow down"]}, headers=LONG_WAIT)
        return _endless_directory(request)

    with FakeAtlassian(script) as fake:
        child = _start(_EXTRACT, "atlassian_site", fake)
        _wait_for(lambda: _calls(fake, JIRA_USERS) >= 1 and _calls(fake, SEARCH) >= 5, child)
        _terminate(child)
        assert _calls(fake, JIRA_USERS) == 1


@pytest.mark.timeout(120)
def test_empty_pages_with_new_cursors_stop_on_their_own_naming_the_endpoint() -> None:
    empty = lambda r: Reply(body=page([], f"c{r.seen + 1}")) if r.path == SEARCH else NOT_FOUND  # noqa: E731
    with FakeAtlassian(empty) as fake:
        child = _start(_EXTRACT, "", fake)
        _out, err = child.communicate(timeout=60)
        assert child.returncode != 0
        assert f"POST {SEARCH}: paging stopped" in err
        assert "empty pages in a row" in err
        assert _calls(fake, SEARCH) <= 5


@pytest.mark.timeout(180)
def test_sigterm_during_the_write_pool_leaves_the_journal_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atlassian_cleanup.actions.enforcement import Enforcer
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.client.hooks import AtlassianAdminHook

    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    directory = Directory(
        count=12, suspend=lambda d, a, r: Reply(429, {"message": "later"}, headers=LONG_WAIT)
    )
    planned = rows(*directory.status)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"db": db, "at": at.isoformat(), "rows": planned}))
    with FakeAtlassian(directory) as fake:
        child = _start(_APPLY, str(args), fake)
        _wait_for(lambda: len(fake.writes()) >= 4, child)  # every worker is backing off
        time.sleep(0.3)
        _terminate(child)
        throttled = {w.path.split("/")[-2] for w in fake.writes()}
        assert len(throttled) == 4  # the queued users were dropped, not worked through

        with StateStore(db) as store:
            open_intents = {entry.account_id for entry in store.uncertain_entries()}
            assert open_intents == throttled  # intent written, no result: uncertain
            assert store.write_counts() == {}

        # The next run (Atlassian answering again) finishes the job, each user suspended once.
        directory.suspend = None
        for key, value in fake.connections().items():
            monkeypatch.setenv(key, value)
        with StateStore(db) as store:
            done = Enforcer(AtlassianAdminHook, store, run_id="next", at=at, concurrency=4).apply(planned)
            assert {o.result for o in done} == {"done"}
            assert store.uncertain_entries() == []
        assert set(directory.status.values()) == {"suspended"}
        suspends = [w.path.split("/")[-2] for w in fake.writes() if w.path.endswith("/suspend")]
        assert len(suspends) == len(throttled) + len(planned)  # 4 refused by the 429, then one each


# -- execution_timeout: Airflow raises AirflowTaskTimeout in the main thread, then calls on_kill ----


def _extract_under_timeout(operator: Any, timeout: Any, timed_out: type[BaseException]) -> None:
    try:
        with timeout(2):
            operator.extract()
    except timed_out:
        operator.on_kill()
        raise


# Airflow's timeout uses SIGALRM, so the test's own limit runs in a thread.
@pytest.mark.timeout(120, method="thread")
def test_execution_timeout_does_not_wait_for_the_page_threads_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    from atlassian_cleanup.operators.cleanup import ExtractUsersOperator

    def script(request: Request) -> Reply:
        return (
            Reply(429, {"message": "slow down"}, headers=LONG_WAIT) if request.path == SEARCH else NOT_FOUND
        )

    operator = ExtractUsersOperator(task_id="extract_users", policy_path="unused", site_conn_id=None)
    with FakeAtlassian(script) as fake:
        for key, value in fake.connections(retry=REAL_RETRY).items():
            monkeypatch.setenv(key, value)
        started = time.monotonic()
        # What Airflow's task runner does with execution_timeout: SIGALRM raises in the main
        # thread, then on_kill is called while the timeout is being handled.
        with pytest.raises(AirflowTaskTimeout):
            _extract_under_timeout(operator, timeout, AirflowTaskTimeout)
        elapsed = time.monotonic() - started
        # The page thread was woken from its back-off, not abandoned asleep.
        assert not [
            t for t in threading.enumerate() if t.name == "atlassian-directory-pages" and t.is_alive()
        ]
        assert _calls(fake, SEARCH) == 1
    assert elapsed < 30  # not the 120 s back-off; generous against a loaded machine


@pytest.mark.timeout(120, method="thread")
def test_a_timeout_in_the_write_pool_does_not_wait_for_the_workers_back_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    from atlassian_cleanup.actions.enforcement import Enforcer
    from atlassian_cleanup.actions.state import StateStore
    from atlassian_cleanup.client.hooks import AtlassianAdminHook

    directory = Directory(
        count=8, suspend=lambda d, a, r: Reply(429, {"message": "later"}, headers=LONG_WAIT)
    )
    with FakeAtlassian(directory) as fake, StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        for key, value in fake.connections(retry=REAL_RETRY).items():
            monkeypatch.setenv(key, value)
        engine = Enforcer(
            AtlassianAdminHook, store, run_id="timed-out", at=datetime(2026, 11, 26, tzinfo=UTC)
        )
        started = time.monotonic()
        with pytest.raises(AirflowTaskTimeout), timeout(2):  # what Airflow wraps execute in
            engine.apply(rows(*directory.status))
        assert time.monotonic() - started < 30
        assert len(fake.writes()) == 4  # one per worker; the queued users were dropped
        assert {e.account_id for e in store.uncertain_entries()} == {
            w.path.split("/")[-2] for w in fake.writes()
        }
