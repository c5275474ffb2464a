"""Each Atlassian pagination style (contract §9.11), driven by fake ``fetch`` callables."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atlassian_cleanup.client.errors import AtlassianPaginationError
from atlassian_cleanup.client.pagination import (
    iter_jira_is_last,
    iter_jira_offset_array,
    iter_jql_token,
    iter_jsm_pages,
    iter_v2_cursor,
    pages_v2_cursor,
    prefetch,
)

BASE = "https://api.atlassian.com/admin/v1/orgs/o/users"


class Recorder:
    """Collects ``on_page`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, page: int, items: int) -> None:
        self.calls.append((page, items))


# -- Admin v2: links.next is an opaque cursor -------------------------------------------------------


def test_v2_passes_cursor_tokens_back_and_stops_without_next() -> None:
    pages = {
        None: {"data": [1, 2], "links": {"self": "c1", "next": "c2"}},
        "c2": {"data": [3, 4], "links": {"self": "c2", "prev": "c1", "next": "c3"}},
        "c3": {"data": [], "links": {"self": "c3", "prev": "c2"}},
    }
    asked: list[str | None] = []

    def fetch(cursor: str | None) -> dict[str, Any]:
        asked.append(cursor)
        return pages[cursor]

    progress = Recorder()
    assert list(iter_v2_cursor(fetch, on_page=progress)) == [1, 2, 3, 4]
    assert asked == [None, "c2", "c3"]
    assert progress.calls == [(1, 2), (2, 4), (3, 4)]


def test_v2_repeated_cursor_raises_instead_of_looping() -> None:
    pages = iter(
        [
            {"data": [1], "links": {"next": "A"}},
            {"data": [2], "links": {"next": "B"}},
            {"data": [3], "links": {"next": "A"}},
        ]
    )
    seen: list[int] = []
    with pytest.raises(AtlassianPaginationError, match=r"links\.next"):
        seen.extend(iter_v2_cursor(lambda _cursor: next(pages)))
    assert seen == [1, 2, 3]


def test_v2_pages_work_for_object_data() -> None:
    pages = iter(
        [
            {"data": {"product_access": [1]}, "links": {"next": "n"}},
            {"data": {"product_access": [2]}, "links": {}},
        ]
    )
    assert [page["data"]["product_access"] for page in pages_v2_cursor(lambda _c: next(pages))] == [[1], [2]]


# -- Jira users/search: bare array, offset, stop at an empty page --------------------------------


def test_jira_offset_array_advances_by_received_count_and_stops_at_empty_page() -> None:
    users = [{"accountId": str(n)} for n in range(8)]
    served = [users[0:3], users[3:5], users[5:8], []]  # a short page does not mean the end
    asked: list[tuple[int, int]] = []

    def fetch(start_at: int, max_results: int) -> list[dict[str, str]]:
        asked.append((start_at, max_results))
        return served[len(asked) - 1]

    progress = Recorder()
    result = list(iter_jira_offset_array(fetch, page_size=3, on_page=progress))

    assert result == users
    assert asked == [(0, 3), (3, 3), (5, 3), (8, 3)]
    assert progress.calls == [(1, 3), (2, 5), (3, 8), (4, 8)]


def test_jira_offset_array_detects_a_server_ignoring_start_at() -> None:
    page = [{"accountId": "1"}, {"accountId": "2"}]
    with pytest.raises(AtlassianPaginationError, match="startAt=2"):
        list(iter_jira_offset_array(lambda _s, _m: page, page_size=2))


@given(st.lists(st.integers(min_value=1, max_value=7), max_size=8))
def test_jira_offset_array_yields_everything_in_order_for_any_page_split(sizes: list[int]) -> None:
    items = list(range(sum(sizes)))
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    by_start = {bounds[i]: items[bounds[i] : bounds[i + 1]] for i in range(len(sizes))}
    assert list(iter_jira_offset_array(lambda start, _m: by_start.get(start, []), page_size=7)) == items


# -- Jira group/bulk, group/member: startAt + isLast ------------------------------------------------


def test_jira_is_last_pages() -> None:
    served = {
        0: {"startAt": 0, "maxResults": 2, "isLast": False, "values": [{"name": "a"}, {"name": "b"}]},
        2: {"startAt": 2, "maxResults": 2, "isLast": False, "values": [{"name": "c"}, {"name": "d"}]},
        4: {"startAt": 4, "maxResults": 2, "isLast": True, "values": [{"name": "e"}]},
    }
    asked: list[tuple[int, int]] = []

    def fetch(start_at: int, max_results: int) -> dict[str, Any]:
        asked.append((start_at, max_results))
        return served[start_at]

    progress = Recorder()
    assert [g["name"] for g in iter_jira_is_last(fetch, page_size=2, on_page=progress)] == list("abcde")
    assert asked == [(0, 2), (2, 2), (4, 2)]
    assert progress.calls == [(1, 2), (2, 4), (3, 5)]


def test_jira_is_last_stops_on_empty_values_even_if_is_last_is_false() -> None:
    served = [
        {"isLast": False, "values": [1]},
        {"isLast": False, "values": [2]},
        {"isLast": False, "values": []},
    ]
    calls: list[int] = []

    def fetch(start_at: int, _max: int) -> dict[str, Any]:
        calls.append(start_at)
        return served[len(calls) - 1]

    assert list(iter_jira_is_last(fetch)) == [1, 2]
    assert calls == [0, 1, 2]


def test_jira_is_last_missing_falls_back_to_total() -> None:
    served = {0: {"total": 3, "values": [1, 2]}, 2: {"total": 3, "values": [3]}}
    assert list(iter_jira_is_last(lambda start, _m: served[start], page_size=2)) == [1, 2, 3]


# -- JSM: start/limit + isLastPage ----------------------------------------------------------------


def test_jsm_pages() -> None:
    served = {
        0: {"size": 2, "start": 0, "limit": 2, "isLastPage": False, "values": ["r1", "r2"]},
        2: {"size": 2, "start": 2, "limit": 2, "isLastPage": False, "values": ["r3", "r4"]},
        4: {"size": 0, "start": 4, "limit": 2, "isLastPage": True, "values": []},
    }
    asked: list[tuple[int, int]] = []

    def fetch(start: int, limit: int) -> dict[str, Any]:
        asked.append((start, limit))
        return served[start]

    progress = Recorder()
    assert list(iter_jsm_pages(fetch, page_size=2, on_page=progress)) == ["r1", "r2", "r3", "r4"]
    assert asked == [(0, 2), (2, 2), (4, 2)]
    assert progress.calls == [(1, 2), (2, 4), (3, 4)]


# -- Jira search/jql: nextPageToken ---------------------------------------------------------------


def test_jql_token_pages() -> None:
    served = {
        None: {"issues": [{"key": "ITH-1"}], "nextPageToken": "t2", "isLast": False},
        "t2": {"issues": [{"key": "ITH-2"}, {"key": "ITH-3"}], "nextPageToken": "t3", "isLast": False},
        "t3": {"issues": [{"key": "ITH-4"}], "isLast": True},
    }
    asked: list[str | None] = []

    def fetch(token: str | None) -> dict[str, Any]:
        asked.append(token)
        return served[token]

    progress = Recorder()
    assert [i["key"] for i in iter_jql_token(fetch, on_page=progress)] == ["ITH-1", "ITH-2", "ITH-3", "ITH-4"]
    assert asked == [None, "t2", "t3"]
    assert progress.calls == [(1, 1), (2, 3), (3, 4)]


def test_jql_stops_when_is_last_even_with_a_token_and_on_empty_result() -> None:
    assert list(iter_jql_token(lambda _t: {"issues": [], "nextPageToken": "x", "isLast": True})) == []
    assert list(iter_jql_token(lambda _t: {"issues": []})) == []


def test_jql_repeated_token_raises() -> None:
    with pytest.raises(AtlassianPaginationError, match="nextPageToken"):
        list(
            iter_jql_token(lambda _t: {"issues": [{"key": "A-1"}], "nextPageToken": "same", "isLast": False})
        )


def test_unexpected_page_shape_is_a_clear_error() -> None:
    with pytest.raises(AtlassianPaginationError, match="JSON array"):
        list(iter_jira_offset_array(lambda _s, _m: {"values": []}))  # type: ignore[arg-type,return-value]


# -- prefetch: the next pages are fetched while the caller works ------------------------------------


def test_prefetch_yields_every_item_in_order() -> None:
    assert list(prefetch(iter(range(50)), ahead=3)) == list(range(50))
    assert list(prefetch(iter([]))) == []


def test_prefetch_raises_the_producers_error_where_the_caller_reaches_it() -> None:
    def pages() -> Any:
        yield 1
        yield 2
        raise AtlassianPaginationError("cursor repeated")

    stream = prefetch(pages(), ahead=1)
    assert [next(stream), next(stream)] == [1, 2]
    with pytest.raises(AtlassianPaginationError, match="cursor repeated"):
        next(stream)


def test_prefetch_stops_the_producer_when_the_caller_stops() -> None:
    produced: list[int] = []
    closed: list[bool] = []

    def pages() -> Any:
        try:
            for number in range(1_000):
                produced.append(number)
                yield number
        finally:
            closed.append(True)

    stream = prefetch(pages(), ahead=2)
    assert next(stream) == 0
    stream.close()  # joins the producer thread
    assert closed == [True]
    assert len(produced) < 10  # it stopped after at most a few pages ahead


# -- bounds: every listing ends, with an error naming the endpoint ---------------------------------

ENDPOINT = "POST /admin/v2/orgs/o/directories/d/users/search"


def endless_v2(items_per_page: int, **extra: Any) -> Any:
    count = {"n": 0}

    def fetch(_cursor: str | None) -> dict[str, Any]:
        count["n"] += 1
        n = count["n"]
        return {"data": list(range(items_per_page)), "links": {"next": f"c{n}"}, **extra}

    fetch.count = count  # type: ignore[attr-defined]
    return fetch


def test_three_empty_pages_with_a_cursor_are_tolerated_the_fourth_stops() -> None:
    pages = iter([{"data": [], "links": {"next": f"c{i}"}} for i in range(3)] + [{"data": [1], "links": {}}])
    assert list(iter_v2_cursor(lambda _c: next(pages), endpoint=ENDPOINT)) == [1]

    fetch = endless_v2(0)
    with pytest.raises(AtlassianPaginationError) as raised:
        list(iter_v2_cursor(fetch, endpoint=ENDPOINT))
    assert fetch.count["n"] == 4  # type: ignore[attr-defined]
    assert str(raised.value).startswith(f"Atlassian API {ENDPOINT}: paging stopped: 4 empty pages in a row")


def test_an_empty_page_between_full_ones_resets_the_count() -> None:
    pattern = [[], [], [], [1], [], [], [], [2]]
    pages = iter([{"data": d, "links": {"next": f"c{i}"}} for i, d in enumerate(pattern)] + [{"data": []}])
    assert list(iter_v2_cursor(lambda _c: next(pages), endpoint=ENDPOINT)) == [1, 2]


def test_the_page_ceiling_stops_an_endless_valid_listing() -> None:
    fetch = endless_v2(1)
    with pytest.raises(AtlassianPaginationError) as raised:
        list(iter_v2_cursor(fetch, endpoint=ENDPOINT, max_pages=5))
    assert fetch.count["n"] == 6  # type: ignore[attr-defined]
    assert "more than 5 pages" in str(raised.value)
    assert ENDPOINT in str(raised.value)


def test_the_default_ceiling_is_far_above_a_real_org() -> None:
    from atlassian_cleanup.client.pagination import MAX_PAGES

    assert MAX_PAGES * 100 >= 1_000_000  # a 1M-user org at 100 per page fits


def test_more_items_than_the_reported_total_allows_stops_with_a_margin() -> None:
    # total 200: the margin is max(100, 10 %) = 100 items, so 300 items are fine and 301 are not.
    ok = iter(
        [{"data": list(range(100)), "meta": {"total": 200}, "links": {"next": f"c{i}"}} for i in range(2)]
    )
    last = iter([{"data": list(range(100)), "meta": {"total": 200}, "links": {}}])
    pages = iter([*ok, *last])
    assert len(list(iter_v2_cursor(lambda _c: next(pages), endpoint="POST /admin/v2/users/search"))) == 300

    fetch = endless_v2(100, meta={"total": 200})
    with pytest.raises(AtlassianPaginationError) as raised:
        list(iter_v2_cursor(fetch, endpoint="POST /admin/v2/users/search"))
    assert fetch.count["n"] == 4  # type: ignore[attr-defined]
    assert "400 items after 4 pages, but the server reported a total of 200" in str(raised.value)


def test_a_total_on_jira_pages_bounds_them_too() -> None:
    def fetch(start: int, _size: int) -> dict[str, Any]:
        return {"values": [start], "isLast": False, "total": 5}

    with pytest.raises(AtlassianPaginationError, match="GET /rest/api/3/group/member: paging stopped"):
        list(iter_jira_is_last(fetch, endpoint="GET /rest/api/3/group/member"))


def test_a_cursor_loop_over_several_pages_is_caught() -> None:
    cursors = iter(["a", "b", "c", "a"])
    with pytest.raises(AtlassianPaginationError, match="already returned"):
        list(iter_v2_cursor(lambda _c: {"data": [1], "links": {"next": next(cursors)}}, endpoint=ENDPOINT))


def test_a_jsm_server_ignoring_start_is_caught() -> None:
    with pytest.raises(AtlassianPaginationError, match="ignored start=1"):
        list(iter_jsm_pages(lambda _s, _l: {"values": ["same"], "isLastPage": False}, endpoint="GET /x"))


def test_a_wrongly_typed_list_field_is_an_error_not_its_keys() -> None:
    with pytest.raises(AtlassianPaginationError, match="expected a list under 'values', got dict"):
        list(iter_jira_is_last(lambda _s, _m: {"values": {"a": 1}, "isLast": True}, endpoint="GET /x"))


def test_prefetch_caller_stops_waiting_when_the_task_is_stopped() -> None:
    import threading

    from atlassian_cleanup.client.stopping import AtlassianCallsCancelled, cancel_atlassian_calls

    release = threading.Event()

    def stuck() -> Any:
        release.wait(30)  # a producer blocked in a call that ignores the flag
        yield 1

    timer = threading.Timer(0.2, cancel_atlassian_calls)
    timer.start()
    try:
        with pytest.raises(AtlassianCallsCancelled):
            list(prefetch(stuck(), ahead=1))
    finally:
        release.set()
        timer.cancel()
