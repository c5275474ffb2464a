"""Restore on demand: the accounts an admin names in the restore DAG's trigger form.

Pure: the operators read the directory and pass the users found here. Everything an admin typed is
checked before the run's first write, and every problem is reported at once, naming the entry and
what to fix, so a run with one bad entry restores nobody (nothing is half-applied).

An entry is an Atlassian account id or an e-mail address. Entries are separated by commas,
semicolons, spaces or new lines (or given as a JSON list through ``--conf``). An e-mail must match
exactly one directory account; an account id must be listed by the directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atlassian_cleanup.restore.rules import RestoreRequest

#: The prefix of an on-demand request key (a JSM key never has a colon).
ON_DEMAND = "on-demand"
#: Longest reason kept (it goes into the journal and the audit CSV).
MAX_REASON_CHARS = 500

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
# Atlassian account ids: 24 hex digits, or "<number>:<uuid>"-like ids of letters, digits, ':' and '-'.
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_-]{5,127}")
_SEPARATORS = re.compile(r"[,;\s]+")


class OnDemandError(ValueError):
    """The form's accounts cannot all be restored as asked; one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("Restore on demand: nothing was changed, because:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class Entry:
    """One entry of the form, classified."""

    text: str
    kind: str  # "email" or "account_id"


def is_on_demand(request_key: str) -> bool:
    """Whether a request key names an on-demand restore (not a JSM request)."""
    return request_key.startswith(f"{ON_DEMAND}:")


def _filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value != []


def wants_on_demand(accounts: Any, reason: Any = None) -> bool:
    """Whether the run is a restore on demand (both params untouched or empty: a scheduled run).

    A reason without accounts is refused: the admin meant to restore someone and would otherwise
    get an ordinary JSM run.
    """
    if _filled(accounts):
        return True
    if _filled(reason):
        raise OnDemandError(
            ["restore_reason is set but accounts is empty. Fix: name the accounts to restore, or clear "
             "the reason for an ordinary run of the JSM requests"]
        )  # fmt: skip
    return False


def _texts(accounts: Any) -> list[str]:
    if isinstance(accounts, str):
        return [t for t in _SEPARATORS.split(accounts) if t]
    if isinstance(accounts, (list, tuple)):
        texts: list[str] = []
        for item in accounts:
            if not isinstance(item, str):
                raise OnDemandError(
                    [f"accounts: {item!r} is not text. Fix: give account ids or e-mail addresses as text"]
                )
            texts.extend(t for t in _SEPARATORS.split(item) if t)
        return texts
    raise OnDemandError(
        [f"accounts: {accounts!r} is neither text nor a list. Fix: one account id or e-mail per line"]
    )


def parse_entries(accounts: Any, reason: Any, max_accounts: int) -> list[Entry]:
    """The form's entries, in order and without repeats; :class:`OnDemandError` lists every problem."""
    entries, problems = read_form(accounts, reason, max_accounts)
    if problems:
        raise OnDemandError(problems)
    return entries


def read_form(accounts: Any, reason: Any, max_accounts: int) -> tuple[list[Entry], list[str]]:
    """The well-formed entries (in order, without repeats) and the problems of the others.

    The caller looks the entries up and reports these problems with the lookup's
    (:func:`resolve_entries`), so an admin sees every problem of the form at once. More entries than
    ``max_accounts`` raise :class:`OnDemandError` at once: such a form is not looked up at all.

    :param accounts: the ``accounts`` param (text or a list of texts).
    :param reason: the ``restore_reason`` param; required, because the audit must say why.
    :param max_accounts: ``restore.max_restores_per_run``.
    """
    problems = []
    entries: list[Entry] = []
    seen: set[str] = set()
    for text in _texts(accounts):
        if "@" in text:
            if not _EMAIL.fullmatch(text):
                problems.append(f"accounts: {text!r} is not an e-mail address. Fix: write it as name@domain")
                continue
            key, kind = text.lower(), "email"
        elif _ACCOUNT_ID.fullmatch(text):
            key, kind = text, "account_id"
        else:
            problems.append(
                f"accounts: {text!r} is neither an account id nor an e-mail address. Fix: copy the "
                "account id from admin.atlassian.com (Directory > Users) or use the e-mail address"
            )
            continue
        if key not in seen:
            seen.add(key)
            entries.append(Entry(text=text, kind=kind))
    if not isinstance(reason, str) or not reason.strip():
        problems.append(
            "restore_reason: empty. Fix: say why these accounts are restored (it goes into the audit)"
        )
    elif len(reason.strip()) > MAX_REASON_CHARS:
        problems.append(f"restore_reason: longer than {MAX_REASON_CHARS} characters. Fix: shorten it")
    if len(entries) > max_accounts:
        problems.append(
            f"accounts: {len(entries)} accounts, more than restore.max_restores_per_run ({max_accounts}). "
            "Fix: split them over several runs, or raise the cap in the policy"
        )
        raise OnDemandError(problems)
    return entries, problems


def resolve_entries(
    entries: Sequence[Entry],
    *,
    by_id: Mapping[str, Mapping[str, Any]],
    by_email: Mapping[str, Iterable[Mapping[str, Any]]],
    earlier: Sequence[str] = (),
) -> list[Mapping[str, Any]]:
    """The directory user of each entry (one per account, form order); every problem at once.

    :param by_id: directory users by account id (ids the directory does not list are absent).
    :param by_email: every directory user whose e-mail is the key (lower case).
    :param earlier: the form's other problems (:func:`read_form`), reported with these.
    """
    problems = list(earlier)
    users: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if entry.kind == "account_id":
            user = by_id.get(entry.text)
            if user is None:
                problems.append(
                    f"accounts: account id {entry.text!r} is not in the organisation's directory (unknown, "
                    "or deleted for good). Fix: check the id in admin.atlassian.com, or use the e-mail"
                )
                continue
        else:
            found = {str(u.get("accountId")): u for u in by_email.get(entry.text.lower(), ())}
            if len(found) != 1:
                what = "no account" if not found else f"{len(found)} accounts ({', '.join(sorted(found))})"
                problems.append(
                    f"accounts: e-mail {entry.text!r} matches {what}. Fix: "
                    + ("check the spelling" if not found else "give the account id of the one to restore")
                )
                continue
            user = next(iter(found.values()))
        users.setdefault(str(user.get("accountId")), user)
    if problems:
        raise OnDemandError(problems)
    return list(users.values())


def on_demand_requests(
    users: Iterable[Mapping[str, Any]], *, run_id: str, requested_by: str, reason: str
) -> list[RestoreRequest]:
    """One request per account; the key holds the run id, so a re-run of this run is journalled once."""
    return [
        RestoreRequest(
            key=f"{ON_DEMAND}:{run_id}:{user['accountId']}",
            reporter_account_id=str(user["accountId"]),
            reporter_email=user.get("email") or None,
            reporter_name=user.get("name") or None,
            summary=reason.strip(),
            requested_by=requested_by,
        )
        for user in users
    ]


def unrestorable(decisions: Iterable[Mapping[str, Any]], refused_verdicts: Iterable[str]) -> list[str]:
    """One line per on-demand decision that cannot restore (e.g. never actioned by this tool)."""
    refused = set(refused_verdicts)
    return [
        f"accounts: {row.get('email') or row.get('account_id')} cannot be restored by this tool "
        f"({row['verdict']}): {row['reason']} Fix: remove it from accounts and handle it in Atlassian "
        "administration"
        for row in decisions
        if row["verdict"] in refused
    ]
