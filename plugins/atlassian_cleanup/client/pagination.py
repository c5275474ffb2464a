"""Every pagination style Atlassian uses, in one place (contract §9.11).

=====================  ==========================================  ===============================
generator              API                                         how the next page is found
=====================  ==========================================  ===============================
iter_v2_cursor         Admin v2 (search, directories, roles)       ``links.next`` is an opaque token
iter_jira_offset_array Jira ``users/search``                       bare array; stop at an empty page
iter_jira_is_last      Jira ``group/bulk``, ``group/member``       ``startAt`` + ``isLast``
iter_jsm_pages         JSM ``servicedeskapi``                      ``start``/``limit`` + ``isLastPage``
iter_jql_token         Jira ``search/jql``                         ``nextPageToken`` + ``isLast``
=====================  ==========================================  ===============================

The generators know nothing about HTTP: each takes a small ``fetch`` callable that returns one
decoded JSON page, and yields the items. ``on_page(page_number, items_so_far)`` is called after each
page is fetched (before its items are yielded) so callers can log progress on long extractions.
Every listing is bounded (:class:`_Bounds`); each of these raises
:class:`~atlassian_cleanup.client.errors.AtlassianPaginationError` naming the endpoint instead of paging on:

* a cursor (or ``links.next`` URL, or ``nextPageToken``) the server already gave, or the same
  offset page again: following it would loop forever;
* more than :data:`MAX_EMPTY_PAGES` empty pages in a row that still carry a cursor (a directory
  search that answers ``{"data": [], "links": {"next": <new cursor>}}`` forever);
* more items than the total the server itself reported allows (``meta.total`` / ``total``, with a
  margin of :data:`TOTAL_MARGIN_SHARE` and :data:`TOTAL_MARGIN_ITEMS` for users added meanwhile);
* more than ``max_pages`` pages (default :data:`MAX_PAGES`), whatever the server says.

:func:`prefetch` runs any of them in a background thread a few pages ahead of the caller, so the
next request is on the wire while the caller works on the current page: with a cursor API that is
the only overlap possible (each cursor comes from the previous page).
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from atlassian_cleanup.client.errors import AtlassianPaginationError
from atlassian_cleanup.client.stopping import cancel_atlassian_calls, raise_if_cancelled

Page = Mapping[str, Any]
OnPage = Callable[[int, int], None]
T = TypeVar("T")
_END = object()

#: Empty pages in a row that still carry a cursor before the listing is declared broken.
MAX_EMPTY_PAGES = 3
#: Pages one listing may have at most: 10 million users at 100 per page (a ceiling, not a limit
#: anyone should meet; a listing that reaches it is broken).
MAX_PAGES = 100_000
#: Items a listing may return beyond the total it reported: this share of the total ...
TOTAL_MARGIN_SHARE = 0.1
#: ... and at least this many (users created while the listing is read).
TOTAL_MARGIN_ITEMS = 100


def prefetch(items: Iterator[T], *, ahead: int = 2, name: str = "atlassian-prefetch") -> Iterator[T]:
    """
    Yield ``items`` while a background thread already produces the next ones (at most ``ahead``).

    The producing iterator runs entirely in that thread (an HTTP session must not be shared
    between threads, so give it one of its own). Its exceptions are re-raised here, at the point
    the caller reaches them; when the caller stops early, the producer stops after its current item.

    :param items: an iterator, typically of pages.
    :param ahead: how many items may wait for the caller.
    :param name: the thread's name (shows in logs).
    :return: the same items, in order.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the caller, who decides
            put((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            try:
                ok, item = handoff.get(timeout=0.2)
            except queue.Empty:
                raise_if_cancelled("the next page")  # a stopped task does not wait for the producer
                continue
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        if _task_is_ending(sys.exc_info()[1]):
            # A timeout or a kill is unwinding the task: wake the producer from a back-off sleep
            # instead of waiting for it (the stop flag is the task's, so nothing else runs on).
            cancel_atlassian_calls("the task is being stopped")
        worker.join(timeout=5)


def _task_is_ending(error: BaseException | None) -> bool:
    """Whether ``error`` ends the task whatever happens (a timeout, a kill), unlike an ordinary error."""
    return error is not None and not isinstance(error, Exception | GeneratorExit)


class _Bounds:
    """
    Counts pages and items, notifies ``on_page`` and stops a listing that would never end.

    :param on_page: progress callback.
    :param endpoint: ``METHOD /path`` of the listing, named in every error.
    :param style: the cursor's name (``links.next``, ``nextPageToken``), for messages.
    :param max_pages: the ceiling of pages.
    """

    def __init__(self, on_page: OnPage | None, endpoint: str, style: str, max_pages: int | None) -> None:
        self.on_page = on_page
        self.endpoint = endpoint or "a paged list"
        self.style = style
        self.max_pages = MAX_PAGES if max_pages is None else max(1, int(max_pages))
        self.pages = 0
        self.items = 0
        self.empty_in_a_row = 0
        self.total: int | None = None
        self.seen: set[str] = set()

    def error(self, message: str, detail: str) -> AtlassianPaginationError:
        return AtlassianPaginationError(message, path=self.endpoint, detail=detail)

    def repeated_page(self, offset: str) -> AtlassianPaginationError:
        """The error for a server that answered the offset ``offset`` with the previous page again."""
        return self.error(
            f"the server ignored {offset} and returned the previous page again; "
            "stopping instead of looping forever",
            "This is a server-side paging bug; retry later or report it",
        )

    def page(self, items: Sequence[Any], total: Any = None) -> None:
        """Count one fetched page; raise when the listing is past what it may be."""
        self.pages += 1
        self.items += len(items)
        self.empty_in_a_row = 0 if items else self.empty_in_a_row + 1
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            self.total = total if self.total is None else max(self.total, total)
        if self.on_page is not None:
            self.on_page(self.pages, self.items)
        if self.total is not None:
            allowed = self.total + max(TOTAL_MARGIN_ITEMS, int(self.total * TOTAL_MARGIN_SHARE))
            if self.items > allowed:
                raise self.error(
                    f"{self.items} items after {self.pages} pages, but the server reported a total of "
                    f"{self.total}; stopping instead of reading an endless list",
                    "The listing is inconsistent; nothing was changed. Retry later or report it",
                )
        if self.pages > self.max_pages:
            raise self.error(
                f"more than {self.max_pages} pages ({self.items} items); stopping at the ceiling",
                "A listing this long is broken or not the one configured; nothing was changed",
            )

    def follow(self, cursor: str) -> None:
        """Check the cursor about to be followed: not one seen before, not after too many empty pages."""
        if cursor in self.seen:
            raise self.error(
                f"the server returned a {self.style} cursor it had already returned (after page "
                f"{self.pages}); stopping instead of looping forever",
                "This is a server-side paging bug; retry later or report it",
            )
        self.seen.add(cursor)
        if self.empty_in_a_row > MAX_EMPTY_PAGES:
            raise self.error(
                f"{self.empty_in_a_row} empty pages in a row that still carry a {self.style} cursor "
                f"(after {self.items} items); stopping instead of paging forever",
                "The listing is broken; nothing was changed. Retry later or report it",
            )


def _reported_total(page: Any) -> Any:
    """``meta.total`` (Admin v1) or ``total`` (Jira), when the page reports one."""
    if not isinstance(page, Mapping):
        return None
    meta = page.get("meta")
    if isinstance(meta, Mapping) and "total" in meta:
        return meta.get("total")
    return page.get("total")


def items_of(page: Any, key: str, endpoint: str = "") -> list[Any]:
    """The list under ``key`` of one decoded page (empty when absent); anything else is an error."""
    if not isinstance(page, Mapping):
        raise AtlassianPaginationError(
            f"expected a JSON object page with '{key}', got {type(page).__name__}", path=endpoint or None
        )
    items = page.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise AtlassianPaginationError(
            f"expected a list under '{key}', got {type(items).__name__}", path=endpoint or None
        )
    return items


def _next_link(page: Page) -> str | None:
    links = page.get("links")
    if not isinstance(links, Mapping):
        return None
    value = links.get("next")
    return str(value) if value else None


def _follow_links_next(
    fetch: Callable[[str | None], Page], bounds: _Bounds, data_of: Callable[[Page], Sequence[Any]]
) -> Iterator[Page]:
    """Fetch pages, passing each page's ``links.next`` (a URL or a cursor) back to ``fetch``."""
    following: str | None = None
    while True:
        page = fetch(following)
        bounds.page(data_of(page), _reported_total(page))
        yield page
        following = _next_link(page)
        if not following:
            return
        bounds.follow(following)


def _cursor_page_data(page: Page, endpoint: str) -> Sequence[Any]:
    """A v2 page's ``data``, counted as a list even when a single object or absent."""
    if not isinstance(page, Mapping):
        items_of(page, "data", endpoint)  # raises the clear error
    data = page.get("data")
    return data if isinstance(data, list) else ([] if data is None else [data])


def pages_v2_cursor(
    fetch: Callable[[str | None], Page],
    *,
    on_page: OnPage | None = None,
    endpoint: str = "",
    max_pages: int | None = None,
) -> Iterator[Page]:
    """
    Yield the pages of an Admin v2 list whose ``links.next`` is an opaque cursor token.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(cursor)`` the next one; the caller
        decides where the cursor goes (JSON body for ``POST .../search``, query for ``GET``).
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :param endpoint: ``METHOD /path`` of the list, named in errors.
    :param max_pages: ceiling of pages (default :data:`MAX_PAGES`).
    :return: an iterator of pages.
    """
    bounds = _Bounds(on_page, endpoint, "links.next", max_pages)
    yield from _follow_links_next(fetch, bounds, lambda page: _cursor_page_data(page, endpoint))


def iter_v2_cursor(
    fetch: Callable[[str | None], Page],
    *,
    on_page: OnPage | None = None,
    endpoint: str = "",
    max_pages: int | None = None,
) -> Iterator[Any]:
    """
    Yield the ``data`` items of an Admin v2 list, passing ``links.next`` back as ``cursor``.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(cursor)`` the next one.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :param endpoint: ``METHOD /path`` of the list, named in errors.
    :param max_pages: ceiling of pages (default :data:`MAX_PAGES`).
    :return: an iterator of items.
    """
    for page in pages_v2_cursor(fetch, on_page=on_page, endpoint=endpoint, max_pages=max_pages):
        yield from items_of(page, "data", endpoint)


def iter_jira_offset_array(
    fetch: Callable[[int, int], Sequence[Any]],
    *,
    page_size: int = 1000,
    on_page: OnPage | None = None,
    endpoint: str = "",
    max_pages: int | None = None,
) -> Iterator[Any]:
    """
    Yield the items of a Jira list answered as a bare JSON array (``/rest/api/3/users/search``).

    There is no ``total`` or ``isLast``, and Jira may return fewer than ``maxResults`` items while
    more exist, so the offset advances by what was received and only an empty page ends the list.

    :param fetch: ``fetch(start_at, max_results)`` returns one page (a list).
    :param page_size: ``maxResults`` to request.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :param endpoint: ``METHOD /path`` of the list, named in errors.
    :param max_pages: ceiling of pages (default :data:`MAX_PAGES`).
    :return: an iterator of items.
    """
    bounds = _Bounds(on_page, endpoint, "startAt", max_pages)
    start_at = 0
    previous: list[Any] | None = None
    while True:
        page = fetch(start_at, page_size)
        if not isinstance(page, list):
            raise bounds.error(
                f"expected a JSON array page, got {type(page).__name__}",
                "The answer is not a user list; nothing was changed",
            )
        bounds.page(page)
        if not page:
            return
        # Compared as decoded objects (C-level equality), not re-encoded: a 1000-user page encoded
        # with sorted keys costs ~15 ms of GIL-holding work per page, which stalls other threads.
        if page == previous:
            raise bounds.repeated_page(f"startAt={start_at}")
        previous = page
        yield from page
        start_at += len(page)


def iter_jira_is_last(
    fetch: Callable[[int, int], Page],
    *,
    page_size: int = 50,
    on_page: OnPage | None = None,
    endpoint: str = "",
    max_pages: int | None = None,
) -> Iterator[Any]:
    """
    Yield ``values`` of a Jira ``startAt`` list that reports ``isLast`` (``group/bulk``, ``group/member``).

    :param fetch: ``fetch(start_at, max_results)`` returns one page object.
    :param page_size: ``maxResults`` to request (``group/member`` allows at most 50).
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :param endpoint: ``METHOD /path`` of the list, named in errors.
    :param max_pages: ceiling of pages (default :data:`MAX_PAGES`).
    :return: an iterator of items.
    """
    bounds = _Bounds(on_page, endpoint, "startAt", max_pages)
    start_at = 0
    while True:
        page = fetch(start_at, page_size)
        values = items_of(page, "values", endpoint)
        bounds.page(values, _reported_total(page))
        yield from values
        if page.get("isLast") is True or not values:
            return
        total = page.get("total")
        start_at += len(values)
        if page.get("isLast") is None and isinstance(total, int) and start_at >= total:
            return


def iter_jsm_pages(
    fetch: Callable[[int, int], Page],
    *,
    page_size: int = 50,
    on_page: OnPage | None = None,
    endpoint: str = "",
    max_pages: int | None = None,
) -> Iterator[Any]:
    """
    Yield ``values`` of a JSM ``servicedeskapi`` list (``start``/``limit``, ``isLastPage``).

    :param fetch: ``fetch(start, limit)`` returns one page object.
    :param page_size: ``limit`` to request.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :param endpoint: ``METHOD /path`` of the list, named in errors.
    :param max_pages: ceiling of pages (default :data:`MAX_PAGES`).
    :return: an iterator of items.
    """
    bounds = _Bounds(on_page, endpoint, "start", max_pages)
    start = 0
    previous: list[Any] | None = None
    while True:
        page = fetch(start, page_size)
        values = items_of(page, "values", endpoint)
        bounds.page(values)
        if values and values == previous:
            raise bounds.repeated_page(f"start={start}")
        previous = values
        yield from values
        if page.get("isLastPage", True) or not values:
            return
        size = page.get("size")
        start += size if isinstance(size, int) and size > 0 else len(values)


def iter_jql_token(
    fetch: Callable[[str | None], Page],
    *,
    on_page: OnPage | None = None,
    endpoint: str = "",
    max_pages: int | None = None,
) -> Iterator[Any]:
    """
    Yield ``issues`` of a Jira ``/rest/api/3/search/jql`` query, following ``nextPageToken``.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(token)`` the next one.
    :param on_page: progress callback ``(page_number, issues_so_far)``.
    :param endpoint: ``METHOD /path`` of the list, named in errors.
    :param max_pages: ceiling of pages (default :data:`MAX_PAGES`).
    :return: an iterator of issues.
    """
    bounds = _Bounds(on_page, endpoint, "nextPageToken", max_pages)
    token: str | None = None
    while True:
        page = fetch(token)
        issues = items_of(page, "issues", endpoint)
        bounds.page(issues)
        yield from issues
        token = page.get("nextPageToken")
        if page.get("isLast") is True or not token:
            return
        bounds.follow(str(token))
