"""A write is re-sent only after Atlassian was re-read and the write had clearly not happened."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from atlassian_cleanup.client.credentials import CredentialState
from atlassian_cleanup.client.errors import AtlassianApiError, AtlassianAuthError, AtlassianNotFoundError
from atlassian_cleanup.client.retry import (
    RatePacer,
    RetryPolicy,
    guard_write_replays,
    paced_call,
    replay_is_safe,
    shared_pacer,
    write_unless_done,
)


def writes(*outcomes: int | BaseException) -> tuple[Callable[[], int], list[int]]:
    """A write that plays the outcomes in order (a status to return, or an error to raise)."""
    calls: list[int] = []

    def write() -> int:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return write, calls


def looks(*answers: bool | BaseException) -> tuple[Callable[[], bool], list[int]]:
    calls: list[int] = []

    def happened() -> bool:
        calls.append(1)
        answer = answers[len(calls) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return happened, calls


DROPPED = AtlassianApiError("connection dropped", status=None)
BAD_GATEWAY = AtlassianApiError("bad gateway", status=502)


def test_a_clean_write_is_made_once_without_looking() -> None:
    write, sent = writes(204)
    happened, looked = looks()
    assert write_unless_done(write, happened, attempts=3) == 204
    assert (len(sent), len(looked)) == (1, 0)


def test_an_ambiguous_failure_whose_effect_is_there_is_not_sent_again() -> None:
    write, sent = writes(DROPPED)
    happened, looked = looks(True)
    assert write_unless_done(write, happened, attempts=3) is None
    assert (len(sent), len(looked)) == (1, 1)


def test_an_ambiguous_failure_whose_effect_is_absent_is_sent_again() -> None:
    write, sent = writes(BAD_GATEWAY, 200)
    happened, looked = looks(False)
    assert write_unless_done(write, happened, attempts=3) == 200
    assert (len(sent), len(looked)) == (2, 1)


def test_attempts_run_out_with_the_last_failure_after_a_last_look() -> None:
    last = AtlassianApiError("still down", status=503)
    write, sent = writes(BAD_GATEWAY, DROPPED, last)
    happened, looked = looks(False, False, False)
    with pytest.raises(AtlassianApiError) as info:
        write_unless_done(write, happened, attempts=3)
    assert info.value is last
    assert (len(sent), len(looked)) == (3, 3)


@pytest.mark.parametrize(
    "error",
    [AtlassianNotFoundError("gone", status=404), AtlassianAuthError("expired", status=401)],
)
def test_a_definite_refusal_is_neither_looked_at_nor_sent_again(error: AtlassianApiError) -> None:
    write, sent = writes(error)
    happened, looked = looks()
    with pytest.raises(type(error)):
        write_unless_done(write, happened, attempts=3)
    assert (len(sent), len(looked)) == (1, 0)


def test_a_failing_look_stops_without_sending_again() -> None:
    write, sent = writes(DROPPED)
    happened, _ = looks(AtlassianApiError("search failed", status=500))
    with pytest.raises(AtlassianApiError, match="search failed"):
        write_unless_done(write, happened, attempts=3)
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("status", "server_wait", "idempotent", "safe"),
    [
        (429, None, False, True),
        (503, 2.0, False, True),
        (503, None, False, False),
        (503, None, True, True),
        (500, None, True, True),
        (500, None, False, False),
        (409, None, True, False),
        (404, 1.0, True, False),
    ],
)
def test_which_failed_requests_may_be_sent_again(
    status: int, server_wait: float | None, idempotent: bool, safe: bool
) -> None:
    assert replay_is_safe(status, server_wait, idempotent=idempotent) is safe


class FakeHook:
    def __init__(self, policy: RetryPolicy) -> None:
        self.retry_policy = policy
        self.rate_limit = policy.rate_limit
        self.replay_ambiguous_writes = True


def test_hooks_of_one_credential_share_one_pacer_per_endpoint() -> None:
    shared = RetryPolicy.without_sleep(credential=CredentialState(("secret-token",)))
    one, two = FakeHook(shared), FakeHook(shared)
    assert shared_pacer(one, "users/search") is shared_pacer(two, "users/search")
    assert shared_pacer(one, "users/search") is not shared_pacer(one, "groups/remove")
    assert isinstance(shared_pacer(one, "users/search"), RatePacer)


def test_a_paced_call_reads_only_its_own_rate_limit_headers() -> None:
    hook = FakeHook(RetryPolicy.without_sleep())
    hook.rate_limit.remaining, hook.rate_limit.limit = 3, 100  # left from an earlier response

    def call() -> str:
        assert (hook.rate_limit.remaining, hook.rate_limit.limit) == (None, None)
        return "answer"

    assert paced_call(hook, "directory/suspend", call) == "answer"


def test_the_engine_turns_the_hooks_own_write_replay_off() -> None:
    hook = FakeHook(RetryPolicy.without_sleep())
    assert guard_write_replays(hook) is hook
    assert hook.replay_ambiguous_writes is False
