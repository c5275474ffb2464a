"""Stopping a task (SIGTERM → on_kill, execution_timeout) and the per-credential rate-limit state."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowTaskTimeout

from atlassian_cleanup.client.retry import (
    AtlassianCallsCancelled,
    AtlassianRetryExhausted,
    CredentialState,
    RetryPolicy,
    StopsAtlassianCallsOnKill,
    begin_atlassian_calls,
    cancel_atlassian_calls,
    credential_state,
    interruptible_sleep,
    raise_if_cancelled,
)

PATH = "/admin/v2/orgs/o/directories/d/users/search"


def stopped() -> bool:
    """Whether the next Atlassian call would be refused because the task is being stopped."""
    try:
        raise_if_cancelled()
    except AtlassianCallsCancelled:
        return True
    return False


def response(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.headers.update(headers or {})
    resp._content = b"{}"
    return resp


class Task(StopsAtlassianCallsOnKill):
    task_id = "extract_users"


@pytest.mark.timeout(30)
def test_a_back_off_sleep_wakes_up_when_the_task_is_stopped() -> None:
    timer = threading.Timer(0.2, cancel_atlassian_calls, args=("stop",))
    timer.start()
    with pytest.raises(AtlassianCallsCancelled, match="stop"):
        interruptible_sleep(120)


def test_no_request_leaves_once_the_task_is_stopped() -> None:
    sent: list[int] = []
    cancel_atlassian_calls("test")
    with pytest.raises(AtlassianCallsCancelled, match=f"before POST {PATH}"):
        RetryPolicy().execute(
            lambda: sent.append(1) or response(200), method="POST", path=PATH, idempotent=True
        )
    assert sent == []


def test_a_new_task_clears_the_stop() -> None:
    cancel_atlassian_calls()
    Task().pre_execute({})
    assert not stopped()


def test_on_kill_from_the_sigterm_handler_raises_in_the_main_thread() -> None:
    with pytest.raises(AtlassianCallsCancelled, match="extract_users was stopped"):
        Task().on_kill()
    assert stopped()


def test_on_kill_after_an_execution_timeout_only_sets_the_flag() -> None:
    # Airflow calls on_kill inside ``except AirflowTaskTimeout``: the timeout stays the error.
    try:
        raise AirflowTaskTimeout("Timeout")
    except AirflowTaskTimeout:
        Task().on_kill()
    assert stopped()


def test_on_kill_from_another_thread_only_sets_the_flag() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Task().on_kill()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []
    assert stopped()


def test_the_stop_is_not_swallowed_by_per_user_exception_handlers() -> None:
    assert not issubclass(AtlassianCallsCancelled, Exception)


# -- one state per credential ---------------------------------------------------------------------


def test_hooks_with_the_same_credential_share_one_state_and_others_do_not() -> None:
    first = credential_state("https://x.atlassian.net", ("token-1",))
    assert credential_state("https://x.atlassian.net/", ("token-1",)) is first
    assert credential_state("https://x.atlassian.net", ("token-2",)) is not first
    assert credential_state("https://y.atlassian.net", ("token-1",)) is not first


def test_a_wait_announced_to_one_thread_holds_back_the_others() -> None:
    state = CredentialState(("secret",))
    throttled = RetryPolicy(base_delay=0.01, max_attempts=3, credential=state)
    answers = iter([response(429, {"Retry-After": "0.4"}), response(200)])
    first_sent: list[float] = []
    other_sent: list[float] = []

    def first() -> requests.Response:
        first_sent.append(time.monotonic())
        return next(answers)

    throttled.execute(first, method="POST", path=PATH, idempotent=True)
    # A second hook of another thread, same credential: it waits for what the first was told.
    other = RetryPolicy(credential=state)
    other.execute(
        lambda: other_sent.append(time.monotonic()) or response(200),
        method="POST",
        path=PATH,
        idempotent=True,
    )
    assert other_sent[0] - first_sent[0] >= 0.4


def test_a_wait_longer_than_allowed_is_not_slept_by_the_other_threads() -> None:
    state = CredentialState()
    state.announce("POST", PATH, 3600)
    sent: list[int] = []
    with pytest.raises(AtlassianRetryExhausted, match="more than the 300s"):
        RetryPolicy(credential=state).execute(
            lambda: sent.append(1) or response(200), method="POST", path=PATH, idempotent=True
        )
    assert sent == []


def test_other_endpoints_are_not_held_back() -> None:
    state = CredentialState()
    state.announce("POST", PATH, 3600)
    assert state.not_before("GET", PATH) == 0
    assert state.not_before("POST", "/admin/v2/other") == 0


def test_the_own_threads_back_off_is_not_waited_twice() -> None:
    slept: list[float] = []
    state = CredentialState()
    policy = RetryPolicy(credential=state, sleep=slept.append, max_attempts=3)
    answers: Any = iter([response(429, {"Retry-After": "2"}), response(200)])
    policy.execute(lambda: next(answers), method="GET", path=PATH, idempotent=True)
    assert len(slept) == 1
    assert slept[0] >= 2


def test_the_scrub_replaces_every_form() -> None:
    state = CredentialState(("tok-123456", "dXNlcjp0b2stMTIzNDU2"))
    assert state.scrub("a tok-123456 b dXNlcjp0b2stMTIzNDU2 c") == "a *** b *** c"
    assert CredentialState().scrub("nothing to hide") == "nothing to hide"


def test_begin_forgets_the_discovered_directory() -> None:
    state = credential_state("https://z.example", ("k-000000",))
    state.memos[("directory_id", "org")] = "dir"
    begin_atlassian_calls()
    assert state.memos == {}
