"""A deliberately small JQL subset over the JSM requests.

Enough for the restore DAG's query shape
(``project = ITH AND "Request Type" = "Restore my access" AND statusCategory != Done ORDER BY
created ASC``): ``AND``-joined clauses with ``= != ~ IN / NOT IN >= <= > <`` on project, request
type, status, statusCategory, reporter, key and created. Anything else is a 400, so a client
relying on unsupported syntax fails loudly instead of silently matching everything.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from atlassian_sandbox.model import STATUS_CATEGORY, CustomerRequest
from atlassian_sandbox.state import OrgState

TOKEN = re.compile(
    r"""\s*(?:(?P<punct>[(),])|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<op>!=|>=|<=|!~|=|~|>|<)|(?P<word>[^\s(),=!<>~"']+))"""
)
CATEGORY_NAMES = {"NEW": ("to do", "new", "2"), "INDETERMINATE": ("in progress", "indeterminate", "4"),
                  "DONE": ("done", "3")}  # fmt: skip
FIELDS = {
    "project": "project",
    "request type": "requesttype",
    "requesttype": "requesttype",
    "customer request type": "requesttype",
    "status": "status",
    "statuscategory": "statuscategory",
    "reporter": "reporter",
    "key": "key",
    "issuekey": "key",
    "issue": "key",
    "created": "created",
    "createddate": "created",
}


class JqlError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise JqlError(f"Error in the JQL Query: unexpected character at position {pos}.")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
    return out


def parse(text: str) -> tuple[list[tuple[str, str, list[str]]], list[tuple[str, bool]]]:
    tokens = _tokens(text)
    clauses: list[tuple[str, str, list[str]]] = []
    order: list[tuple[str, bool]] = []
    i = 0

    def peek_word(offset: int = 0) -> str:
        if i + offset < len(tokens) and tokens[i + offset][0] in ("word",):
            return tokens[i + offset][1].lower()
        return ""

    while i < len(tokens):
        if peek_word() == "order" and peek_word(1) == "by":
            i += 2
            while i < len(tokens):
                field = FIELDS.get(tokens[i][1].lower(), tokens[i][1].lower())
                i += 1
                descending = False
                if peek_word() in ("asc", "desc"):
                    descending = peek_word() == "desc"
                    i += 1
                order.append((field, descending))
                if i < len(tokens) and tokens[i] == ("punct", ","):
                    i += 1
            break
        if clauses:
            if peek_word() != "and":
                raise JqlError("The sandbox JQL supports only AND between clauses.")
            i += 1
        if i >= len(tokens):
            raise JqlError("Error in the JQL Query: expecting a field name.")
        name = tokens[i][1].lower()
        field = FIELDS.get(name)
        if field is None:
            raise JqlError(f"Field '{tokens[i][1]}' does not exist or you do not have permission to view it.")
        i += 1
        if peek_word() == "not" and peek_word(1) == "in":
            op, i = "not in", i + 2
        elif peek_word() == "in":
            op, i = "in", i + 1
        elif i < len(tokens) and tokens[i][0] == "op":
            op, i = tokens[i][1], i + 1
        else:
            raise JqlError(f"Error in the JQL Query: expecting an operator after '{name}'.")
        values: list[str] = []
        if op in ("in", "not in"):
            if i >= len(tokens) or tokens[i] != ("punct", "("):
                raise JqlError("Error in the JQL Query: expecting '(' after IN.")
            i += 1
            while i < len(tokens) and tokens[i] != ("punct", ")"):
                if tokens[i] != ("punct", ","):
                    values.append(tokens[i][1])
                i += 1
            i += 1
        else:
            if i >= len(tokens):
                raise JqlError("Error in the JQL Query: expecting a value.")
            values.append(tokens[i][1])
            i += 1
        clauses.append((field, op, values))
    return clauses, order


def _relative(value: str, now: datetime) -> datetime:
    match = re.fullmatch(r"([-+]?\d+)([dwhm])", value.strip().lower())
    if match:
        amount = int(match.group(1))
        unit = {"d": "days", "w": "weeks", "h": "hours", "m": "minutes"}[match.group(2)]
        return now + timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("/", "-"))
    except ValueError:
        raise JqlError(f"Date value '{value}' for field 'created' is invalid.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _field_values(state: OrgState, request: CustomerRequest, field: str) -> list[str]:
    if field == "project":
        desk = next(d for d in state.service_desks if d["id"] == request.service_desk_id)
        return [desk["projectKey"].lower(), desk["projectName"].lower(), desk["projectId"]]
    if field == "requesttype":
        rtype = next(t for t in state.request_types if t["id"] == request.request_type_id)
        return [rtype["name"].lower(), rtype["id"]]
    if field == "status":
        return [request.status.lower()]
    if field == "statuscategory":
        return list(CATEGORY_NAMES[STATUS_CATEGORY[request.status]])
    if field == "reporter":
        user = state.users.get(request.reporter)
        return [request.reporter.lower()] + ([user.email.lower()] if user and user.email else [])
    if field == "key":
        return [request.key.lower(), request.issue_id]
    return []


def _matches(state: OrgState, request: CustomerRequest, clause: tuple[str, str, list[str]]) -> bool:
    field, op, values = clause
    if field == "created":
        threshold = _relative(values[0], state.now())
        compare = {">=": request.created >= threshold, "<=": request.created <= threshold,
                   ">": request.created > threshold, "<": request.created < threshold}  # fmt: skip
        if op not in compare:
            raise JqlError(f"The operator '{op}' is not supported for 'created'.")
        return compare[op]
    actual = _field_values(state, request, field)
    wanted = [v.lower() for v in values]
    if op in ("=", "in"):
        return any(v in actual for v in wanted)
    if op in ("!=", "not in"):
        return not any(v in actual for v in wanted)
    if op == "~":
        return any(w in a for w in wanted for a in actual)
    if op == "!~":
        return not any(w in a for w in wanted for a in actual)
    raise JqlError(f"The operator '{op}' is not supported for '{field}'.")


def run(state: OrgState, text: str) -> list[CustomerRequest]:
    clauses, order = parse(text) if text.strip() else ([], [])
    now = time.monotonic()
    # Search is eventually consistent: a just-created issue may not be indexed yet (§9.12).
    candidates = [state.requests[k] for k in state.request_order if state.requests[k].visible_at <= now]
    result = [r for r in candidates if all(_matches(state, r, c) for c in clauses)]
    for field, descending in reversed(order or [("created", True)]):
        keys: dict[str, Any] = {
            "created": lambda r: (r.created, int(r.issue_id)),
            "key": lambda r: int(r.issue_id),
            "updated": lambda r: r.status_history[-1][1] if r.status_history else r.created,
            "status": lambda r: r.status,
        }
        if field not in keys:
            raise JqlError(f"Field '{field}' cannot be used in ORDER BY in the sandbox.")
        result.sort(key=keys[field], reverse=descending)
    return result
