"""A second user directory (synced from an identity provider) beside the org's own one.

With ``idp_directory_share`` > 0 the org has a second directory, "Okta directory", whose members
are that share of the directory users (every n-th in the org's order, so the same seed gives the
same members). An account in both directories has a membership in each: the second directory
copies the first's, except that every fifth member there is suspended while still active in the
first one (someone whose IdP account was suspended but who keeps local access).

Reads answer per directory as the contract says (§2.3, §3.4): ``GET .../directories`` lists both
(and only the ones an ``accountId`` belongs to), a directory's ``users/search`` lists its members
with their membership there, and the ``-`` id lists every account once, ``membershipStatus``
``suspended`` only when suspended in every directory. Groups stay the org's (the second directory
lists the same groups). Suspend, restore and remove in the second directory change the membership
there only.
"""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING

from atlassian_sandbox.model import SandboxError, User

if TYPE_CHECKING:
    from atlassian_sandbox.state import OrgState

#: Every directory's id: ``-`` means all of them (reads only).
ALL = "-"


class ExtraDirectory:
    __slots__ = ("id", "members", "name", "share")

    def __init__(self, directory_id: str, name: str, share: float) -> None:
        self.id = directory_id
        self.name = name
        self.share = share
        self.members: dict[str, str] = {}  # account id -> membership there: active | suspended


def set_idp_directory(state: OrgState, share: float) -> None:
    """Give the org its second directory with ``share`` of the directory users (0: none)."""
    current = next(iter(state.extra_directories.values()), None)
    if current is not None and current.share == share:
        return  # already so: keep the memberships later writes made
    state.extra_directories.clear()
    if share <= 0:
        return
    directory = ExtraDirectory(
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-idp:{state.org_id}")), "Okta directory", share
    )
    picked = 0
    for index, account_id in enumerate(state.user_order):
        user = state.users.get(account_id)
        if user is None or user.account_type == "customer" or user.membership == "none":
            continue
        if int((index + 1) * share) == int(index * share):
            continue
        picked += 1
        suspended_here = picked % 5 == 0 and user.membership == "active"
        directory.members[account_id] = "suspended" if suspended_here else user.membership
    state.extra_directories[directory.id] = directory
    state._version += 1


def directory_list(state: OrgState) -> list[tuple[str, str]]:
    """``(id, name)`` of every directory, the org's own first."""
    return [(state.directory_id, state.directory_name)] + [
        (d.id, d.name) for d in state.extra_directories.values()
    ]


def is_known(state: OrgState, directory_id: str) -> bool:
    return directory_id == state.directory_id or directory_id in state.extra_directories


def directories_of(state: OrgState, account_id: str) -> list[str]:
    """The directories the account is a member of (suspended counts; removed does not)."""
    user = state.users.get(account_id)
    found = [state.directory_id] if user is not None and user.membership != "none" else []
    return found + [d.id for d in state.extra_directories.values() if account_id in d.members]


def membership_in(state: OrgState, user: User, directory_id: str) -> str:
    """The user's membership in one directory, or combined over all of them for ``-``."""
    if directory_id == state.directory_id or not state.extra_directories:
        return user.membership
    if directory_id != ALL:
        return state.extra_directories[directory_id].members.get(user.account_id, "none")
    memberships = {user.membership} | {
        d.members[user.account_id] for d in state.extra_directories.values() if user.account_id in d.members
    }
    for wanted in ("active", "suspended"):
        if wanted in memberships:
            return wanted
    return "none"


def in_directory(state: OrgState, user: User, directory_id: str) -> User:
    """The user as ``directory_id`` shows them (the same object for the org's own directory)."""
    membership = membership_in(state, user, directory_id)
    if membership == user.membership:
        return user
    view = copy.copy(user)
    view.membership = membership
    return view


def member_ids(state: OrgState, directory_id: str) -> set[str] | None:
    """The accounts a second directory lists (None: no restriction, the org's own directory or ``-``)."""
    if directory_id in state.extra_directories:
        return set(state.extra_directories[directory_id].members)
    return None


def write(state: OrgState, directory_id: str, account_id: str, action: str) -> None:
    """Suspend, restore or remove in a second directory."""
    directory = state.extra_directories[directory_id]
    state.directory_user(account_id)
    if account_id not in directory.members:
        raise SandboxError("not_found", f"User {account_id} is not a member of directory {directory_id}")
    if action == "remove":
        del directory.members[account_id]
    else:
        directory.members[account_id] = "suspended" if action == "suspend" else "active"
    state._version += 1
