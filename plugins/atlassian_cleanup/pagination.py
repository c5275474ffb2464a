"""Every pagination style Atlassian uses, in one place (contract §9.11).

=====================  ==========================================  ===============================
generator              API                                         how the next page is found
=====================  ==========================================  ===============================
iter_v1_links_next     Admin v1 ``/orgs/{id}/users``               ``links.next`` is a full URL
iter_v2_cursor         Admin v2 (search, directories, roles)       ``links.next`` is an opaque token
iter_jira_offset_array Jira ``users/search``                       bare array; stop at an empty page
iter_jira_is_last      Jira ``group/bulk``, ``group/member``       ``startAt`` + ``isLast``
iter_jsm_pages         JSM ``servicedeskapi``                      ``start``/``limit`` + ``isLastPage``
iter_jql_token         Jira ``search/jql``                         ``nextPageToken`` + ``isLast``
=====================  ==========================================  ===============================

The generators know nothing about HTTP: each takes a small ``fetch`` callable that returns one
decoded JSON page, and yields the items. ``on_page(page_number, items_so_far)`` is called after each
page is fetched (before its items are yielded) so callers can log progress on long extractions.
A server that hands back a cursor it already gave (or the same offset page again) would make a
naive loop spin forever; that raises :class:`~atlassian_cleanup.retry.AtlassianPaginationError`.

:func:`prefetch` runs any of them in a background thread a few pages ahead of the caller, so the
next request is on the wire while the caller works on the current page: with a cursor API that is
the only overlap possible (each cursor comes from the previous page).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from atlassian_cleanup.retry import AtlassianPaginationError

Page = Mapping[str, Any]
OnPage = Callable[[int, int], None]
T = TypeVar("T")
_END = object()


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
            ok, item = handoff.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


class _Progress:
    """Counts pages and items and notifies ``on_page``."""

    def __init__(self, on_page: OnPage | None) -> None:
        self.on_page = on_page
        self.pages = 0
        self.items = 0

    def page(self, items: Sequence[Any]) -> None:
        self.pages += 1
        self.items += len(items)
        if self.on_page is not None:
            self.on_page(self.pages, self.items)


class _CursorGuard:
    """Remembers every cursor followed so a repeated one is caught instead of looping."""

    def __init__(self, style: str) -> None:
        self.style = style
        self.seen: set[str] = set()

    def check(self, cursor: str, page_number: int) -> None:
        if cursor in self.seen:
            raise AtlassianPaginationError(
                f"the server returned a {self.style} cursor it had already returned (after page "
                f"{page_number}); stopping instead of looping forever",
                detail="This is a server-side paging bug; retry later or report it",
            )
        self.seen.add(cursor)


def items_of(page: Any, key: str) -> list[Any]:
    """The list under ``key`` of one decoded page (empty when absent); a non-object page is an error."""
    if not isinstance(page, Mapping):
        raise AtlassianPaginationError(f"expected a JSON object page with '{key}', got {type(page).__name__}")
    items = page.get(key)
    return list(items) if items else []


def _next_link(page: Page) -> str | None:
    links = page.get("links")
    if not isinstance(links, Mapping):
        return None
    value = links.get("next")
    return str(value) if value else None


def pages_v1_links_next(
    fetch: Callable[[str | None], Page], *, on_page: OnPage | None = None
) -> Iterator[Page]:
    """
    Yield the pages of an Admin v1 list whose ``links.next`` is a full URL.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(url)`` the page at ``url`` (as-is).
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of pages.
    """
    progress, guard = _Progress(on_page), _CursorGuard("links.next URL")
    next_url: str | None = None
    while True:
        page = fetch(next_url)
        progress.page(items_of(page, "data"))
        yield page
        next_url = _next_link(page)
        if not next_url:
            return
        guard.check(next_url, progress.pages)


def iter_v1_links_next(
    fetch: Callable[[str | None], Page], *, on_page: OnPage | None = None
) -> Iterator[Any]:
    """
    Yield the ``data`` items of an Admin v1 list, following ``links.next`` URLs until absent.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(url)`` the page at ``url`` (as-is).
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of items.
    """
    for page in pages_v1_links_next(fetch, on_page=on_page):
        yield from items_of(page, "data")


def pages_v2_cursor(fetch: Callable[[str | None], Page], *, on_page: OnPage | None = None) -> Iterator[Page]:
    """
    Yield the pages of an Admin v2 list whose ``links.next`` is an opaque cursor token.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(cursor)`` the next one; the caller
        decides where the cursor goes (JSON body for ``POST .../search``, query for ``GET``).
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of pages.
    """
    progress, guard = _Progress(on_page), _CursorGuard("links.next")
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        data = page.get("data") if isinstance(page, Mapping) else None
        progress.page(data if isinstance(data, list) else [])
        yield page
        cursor = _next_link(page)
        if not cursor:
            return
        guard.check(cursor, progress.pages)


def iter_v2_cursor(fetch: Callable[[str | None], Page], *, on_page: OnPage | None = None) -> Iterator[Any]:
    """
    Yield the ``data`` items of an Admin v2 list, passing ``links.next`` back as ``cursor``.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(cursor)`` the next one.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of items.
    """
    for page in pages_v2_cursor(fetch, on_page=on_page):
        yield from items_of(page, "data")


def iter_jira_offset_array(
    fetch: Callable[[int, int], Sequence[Any]],
    *,
    page_size: int = 1000,
    on_page: OnPage | None = None,
) -> Iterator[Any]:
    """
    Yield the items of a Jira list answered as a bare JSON array (``/rest/api/3/users/search``).

    There is no ``total`` or ``isLast``, and Jira may return fewer than ``maxResults`` items while
    more exist, so the offset advances by what was received and only an empty page ends the list.

    :param fetch: ``fetch(start_at, max_results)`` returns one page (a list).
    :param page_size: ``maxResults`` to request.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of items.
    """
    progress = _Progress(on_page)
    start_at = 0
    previous: list[Any] | None = None
    while True:
        page = fetch(start_at, page_size)
        if not isinstance(page, list):
            raise AtlassianPaginationError(f"expected a JSON array page, got {type(page).__name__}")
        progress.page(page)
        if not page:
            return
        # Compared as decoded objects (C-level equality), not re-encoded: a 1000-user page encoded
        # with sorted keys costs ~15 ms of GIL-holding work per page, which stalls other threads.
        if page == previous:
            raise AtlassianPaginationError(
                f"the server ignored startAt={start_at} and returned the previous page again; "
                "stopping instead of looping forever"
            )
        previous = page
        yield from page
        start_at += len(page)


def iter_jira_is_last(
    fetch: Callable[[int, int], Page],
    *,
    page_size: int = 50,
    on_page: OnPage | None = None,
) -> Iterator[Any]:
    """
    Yield ``values`` of a Jira ``startAt`` list that reports ``isLast`` (``group/bulk``, ``group/member``).

    :param fetch: ``fetch(start_at, max_results)`` returns one page object.
    :param page_size: ``maxResults`` to request (``group/member`` allows at most 50).
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of items.
    """
    progress = _Progress(on_page)
    start_at = 0
    while True:
        page = fetch(start_at, page_size)
        values = items_of(page, "values")
        progress.page(values)
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
) -> Iterator[Any]:
    """
    Yield ``values`` of a JSM ``servicedeskapi`` list (``start``/``limit``, ``isLastPage``).

    :param fetch: ``fetch(start, limit)`` returns one page object.
    :param page_size: ``limit`` to request.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of items.
    """
    progress = _Progress(on_page)
    start = 0
    while True:
        page = fetch(start, page_size)
        values = items_of(page, "values")
        progress.page(values)
        yield from values
        if page.get("isLastPage", True) or not values:
            return
        size = page.get("size")
        start += size if isinstance(size, int) and size > 0 else len(values)


def iter_jql_token(
    fetch: Callable[[str | None], Page],
    *,
    on_page: OnPage | None = None,
) -> Iterator[Any]:
    """
    Yield ``issues`` of a Jira ``/rest/api/3/search/jql`` query, following ``nextPageToken``.

    :param fetch: ``fetch(None)`` returns the first page, ``fetch(token)`` the next one.
    :param on_page: progress callback ``(page_number, items_so_far)``.
    :return: an iterator of issues.
    """
    progress, guard = _Progress(on_page), _CursorGuard("nextPageToken")
    token: str | None = None
    while True:
        page = fetch(token)
        issues = items_of(page, "issues")
        progress.page(issues)
        yield from issues
        token = page.get("nextPageToken")
        if page.get("isLast") is True or not token:
            return
        guard.check(str(token), progress.pages)
