"""Organisations with several user directories: which ones to read, and one account per merged user.

An organisation can have a local directory and one synced from an identity provider, and an
account may be a member of both. Each directory is read with its own cursor (concurrently, see
:meth:`~atlassian_cleanup.client.admin_hook.AtlassianAdminHook.iter_directory_user_pages`) and the
answers are merged here so that each account appears once, with its facts combined as the Admin
API's ``-`` (all directories) search combines them:

* ``membershipStatus``: ``active`` when the membership is active in any directory, ``suspended``
  only when it is suspended in every directory that lists the account (the API documents
  ``suspended`` as "suspended in all directories"), else ``no_membership``.
* ``status`` (the composite): the account-level states ``for_deletion`` and ``deactivated`` win
  (they are the same in every directory); otherwise ``active`` beats ``suspended`` beats
  ``not_invited``: someone who may still work in one directory is not suspended.
* ``productAccess``: one entry per product instance, with the latest ``lastActiveTimestamp`` any
  directory reports (the date is the product's, not the directory's).
* ``groups`` and ``platformRoles``: the union. ``addedToOrg``: the earliest.
* ``directoryIds`` (added here): the directories that list the account, in the configured order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import TYPE_CHECKING, Any

from atlassian_cleanup.client.errors import (
    AtlassianConfigurationError,
    AtlassianNotFoundError,
    AtlassianPaginationError,
)
from atlassian_cleanup.client.pagination import OnPage

if TYPE_CHECKING:
    from atlassian_cleanup.client.admin_hook import AtlassianAdminHook

#: The ``directory_id`` extra's value meaning "every directory the organisation has".
ALL_DIRECTORIES = "*"

_STATUS_RANK = {"for_deletion": 5, "deactivated": 4, "active": 3, "suspended": 2, "not_invited": 1}
_MEMBERSHIP_RANK = {"active": 3, "suspended": 2, "no_membership": 1}


def configured_directories(value: Any, conn_id: str) -> list[str] | None:
    """The directory ids the ``directory_id`` extra names, or None for all (absent, empty or ``*``).

    :param value: the extra's value: one id, a list of ids, ``"*"`` or nothing.
    :param conn_id: the connection, named in the error.
    :raises AtlassianConfigurationError: for anything else (a number, an object, a list with blanks).
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", ALL_DIRECTORIES)):
        return None
    items = value.split(",") if isinstance(value, str) else value  # the UI form's field is text
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise AtlassianConfigurationError(
            f"Connection '{conn_id}': extra 'directory_id' must be one directory id, a list of ids or "
            f'"*" for every directory of the organisation (got {value!r})'
        )
    ids = list(dict.fromkeys(item.strip() for item in items))
    if ALL_DIRECTORIES in ids:
        raise AtlassianConfigurationError(
            f"Connection '{conn_id}': extra 'directory_id' lists \"*\" beside ids ({value!r}); "
            'use "*" alone for every directory, or list the ids'
        )
    return ids


def directory_listing(directories: Iterable[Mapping[str, Any]]) -> str:
    """``'Acme' = d-1; 'Okta' = d-2`` for error messages."""
    return "; ".join(f"{d.get('name')!r} = {d.get('directoryId')}" for d in directories)


def check_known(
    wanted: Sequence[str], directories: Sequence[Mapping[str, Any]], conn_id: str, org: str
) -> None:
    """Refuse directory ids the organisation does not have, listing the ones it has."""
    known = {str(d.get("directoryId")) for d in directories}
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise AtlassianConfigurationError(
            f"Connection '{conn_id}': extra 'directory_id' names {', '.join(unknown)}, which "
            f"organisation {org} does not have; nothing was read or changed. Its directories: "
            + (directory_listing(directories) or "none")
        )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _later(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether product entry ``b`` was used later than ``a`` (a date beats no date)."""
    seen_a, seen_b = _timestamp(a.get("lastActiveTimestamp")), _timestamp(b.get("lastActiveTimestamp"))
    return seen_b is not None and (seen_a is None or seen_b > seen_a)


def _union(first: Any, second: Any, key: Any) -> list[Any]:
    merged: dict[Any, Any] = {}
    for item in list(first or []) + list(second or []):
        merged.setdefault(key(item), item)
    return list(merged.values())


def merge_user(seen: dict[str, Any], other: Mapping[str, Any], directory_id: str) -> None:
    """Fold ``other`` (the same account, as directory ``directory_id`` lists it) into ``seen``."""
    if _STATUS_RANK.get(str(other.get("status")), 0) > _STATUS_RANK.get(str(seen.get("status")), 0):
        seen["status"] = other.get("status")
    if _MEMBERSHIP_RANK.get(str(other.get("membershipStatus")), 0) > _MEMBERSHIP_RANK.get(
        str(seen.get("membershipStatus")), 0
    ):
        seen["membershipStatus"] = other.get("membershipStatus")
    added = [t for t in (seen.get("addedToOrg"), other.get("addedToOrg")) if _timestamp(t) is not None]
    if added:
        seen["addedToOrg"] = min(added, key=lambda t: _timestamp(t) or datetime.max)
    if "productAccess" in other or "productAccess" in seen:
        products: dict[Any, dict[str, Any]] = {}
        for entry in list(seen.get("productAccess") or []) + list(other.get("productAccess") or []):
            key = entry.get("id") or entry.get("key")
            if key not in products or _later(products[key], entry):
                products[key] = entry
        seen["productAccess"] = list(products.values())
    if "groups" in other or "groups" in seen:
        seen["groups"] = _union(seen.get("groups"), other.get("groups"), lambda g: g.get("id"))
    if "platformRoles" in other or "platformRoles" in seen:
        seen["platformRoles"] = _union(seen.get("platformRoles"), other.get("platformRoles"), str)
    seen["forDeletion"] = bool(seen.get("forDeletion")) or bool(other.get("forDeletion"))
    seen["deactivatedOn"] = seen.get("deactivatedOn") or other.get("deactivatedOn")
    seen["directoryIds"] = [*seen.get("directoryIds", []), directory_id]


class DirectoryMerge:
    """Users of several directories, one entry per account (insertion order = first seen)."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self._listed: dict[str, set[str]] = {}  # directory -> accounts it listed

    def add(self, directory_id: str, users: Iterable[Mapping[str, Any]], endpoint: str) -> None:
        """Add one page of directory ``directory_id``; an account listed twice by one directory fails."""
        listed = self._listed.setdefault(directory_id, set())
        for user in users:
            account_id = str(user["accountId"])
            if account_id in listed:
                raise AtlassianPaginationError(
                    f"directory {directory_id} listed account {account_id} on more than one page; "
                    "the listing changed while it was read or is broken",
                    path=endpoint,
                    detail="Nothing was planned; the task retry reads it again",
                )
            listed.add(account_id)
            seen = self.users.get(account_id)
            if seen is None:
                self.users[account_id] = {**user, "directoryIds": [directory_id]}
            else:
                merge_user(seen, user, directory_id)

    def pages(self, size: int) -> list[list[dict[str, Any]]]:
        """The merged users in pages of ``size`` (order: the first directory's, then the next's new ones)."""
        users = list(self.users.values())
        return [users[start : start + size] for start in range(0, len(users), max(1, size))]


#: Most directories read at the same time (each on its own connection and cursor).
MAX_CONCURRENT_DIRECTORIES = 4


def read_concurrently(
    directory_ids: Sequence[str], read: Callable[[str, threading.Event], list[list[dict[str, Any]]]]
) -> dict[str, list[list[dict[str, Any]]]]:
    """Run ``read(directory_id, stop)`` for every directory in a bounded thread pool.

    All or nothing: the first failure sets ``stop`` (the other readers give up at their next page)
    and is raised here, so a directory that could not be read never looks like a directory whose
    users are all gone.

    :return: each directory's pages, by directory id.
    """
    stop = threading.Event()
    workers = max(1, min(len(directory_ids), MAX_CONCURRENT_DIRECTORIES))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlassian-directory") as pool:
        futures = {pool.submit(read, directory_id, stop): directory_id for directory_id in directory_ids}
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            raise
    return {directory_id: future.result() for future, directory_id in futures.items()}


def resolve_directories(hook: AtlassianAdminHook, wanted: list[str] | None) -> list[str]:
    """``wanted`` checked against the organisation's directories, or all of them (None).

    Looked up once per process and credential: each worker thread has its own hook, and without
    this every one of them would list the directories (under a 429, each on its own schedule).
    """
    credential = hook.retry_policy.credential
    if credential is None:
        return _resolve(hook, wanted)
    key = ("directory_ids", hook.org_id, tuple(wanted or ()))
    with credential.memo_lock:  # the other threads wait for the first one's answer
        found = credential.memos.get(key)
        if found is None:
            found = credential.memos[key] = _resolve(hook, wanted)
        return list(found)


def _resolve(hook: AtlassianAdminHook, wanted: list[str] | None) -> list[str]:
    directories = hook.list_directories()
    if wanted:
        check_known(wanted, directories, hook.conn_id, hook.org_id)
        return wanted
    if not directories:
        raise AtlassianConfigurationError(
            f"The API key of connection '{hook.conn_id}' sees no user directory in organization "
            f"{hook.org_id}; check that the key belongs to this organization"
        )
    hook.log.info(
        "Connection '%s' reads every directory of organization %s: %s",
        hook.conn_id,
        hook.org_id,
        directory_listing(directories),
    )
    return [str(d["directoryId"]) for d in directories]


def missing_directory_error(
    hook: AtlassianAdminHook, directory: str, exc: AtlassianNotFoundError
) -> AtlassianConfigurationError:
    """A 404 under a configured directory: when the org has no such directory, say which it has.

    Re-raises ``exc`` itself when the directory exists (the 404 was about something else) or the
    directories cannot be listed.
    """
    try:
        directories = hook.list_directories()
    except Exception:
        raise exc from None
    if any(str(d.get("directoryId")) == directory for d in directories):
        raise exc
    return AtlassianConfigurationError(
        f"Connection '{hook.conn_id}': organization {hook.org_id} has no directory {directory}; "
        "nothing was read or changed. Set extra 'directory_id' to one of: "
        + (directory_listing(directories) or "none")
    )


def merged_user_pages(
    hook: AtlassianAdminHook,
    expand: Sequence[str],
    limit: int,
    filters: Mapping[str, Any] | None,
    on_page: OnPage | None,
) -> Iterator[list[dict[str, Any]]]:
    """Every directory of ``hook`` read concurrently (a hook each), then merged in the configured order.

    Every call still goes through the connection's retry policy and the credential's shared rate
    pacer: the per-directory hooks share the process's credential state.
    """
    lock = threading.Lock()
    totals = [0, 0]  # pages, users (progress across every directory)

    def read(directory_id: str, stop: threading.Event) -> list[list[dict[str, Any]]]:
        pages: list[list[dict[str, Any]]] = []
        with hook.sibling(directory_id) as own:
            for page in own.iter_directory_user_pages(
                expand=expand, limit=limit, filters=filters, directory_id=directory_id
            ):
                if stop.is_set():  # another directory failed: the listing is void anyway
                    return pages
                pages.append(page)
                with lock:
                    totals[0] += 1
                    totals[1] += len(page)
                    if on_page is not None:
                        on_page(totals[0], totals[1])
        return pages

    hook.get_conn()
    directory_ids = hook.directory_ids
    by_directory = read_concurrently(directory_ids, read)
    merge = DirectoryMerge()
    for directory_id in directory_ids:
        endpoint = f"POST {directory_id} users/search"
        for page in by_directory.pop(directory_id):
            merge.add(directory_id, page, endpoint)
    yield from merge.pages(max(1, min(100, int(limit))))


def account_directories(hook: AtlassianAdminHook, account_id: str) -> list[str]:
    """The hook's directories that list ``account_id`` (``GET .../directories?accountId=``).

    :raises AtlassianNotFoundError: when none of them does (nothing to act on).
    """
    listing = {str(d.get("directoryId")) for d in hook.list_directories(account_id=account_id)}
    found = [d for d in hook.directory_ids if d in listing]
    if not found:
        raise AtlassianNotFoundError(
            f"account {account_id} is in none of the directories {hook.directory_label}",
            status=404,
            path=f"GET /admin/v2/orgs/{hook.org_id}/directories?accountId={account_id}",
        )
    return found
