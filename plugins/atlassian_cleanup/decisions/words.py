"""Small wording helpers of the plan's reasons: day counts, lists of products, action nouns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from atlassian_cleanup.action_kinds import KINDS
from atlassian_cleanup.decisions.products import product_label


def noun(action: str) -> str:
    """The action as a noun in reasons ("suspension"); an action without one is named as it is."""
    kind = KINDS.get(action)
    return (kind.noun if kind else None) or action


def days_text(value: float) -> str:
    count = int(value)
    return f"{count} day" if count == 1 else f"{count} days"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def labels_and(products: Iterable[str]) -> str:
    """Products as people read them, joined by "and" ("Jira and Confluence")."""
    return join_and([product_label(p) for p in products])


def labels_or(products: Iterable[str]) -> str:
    """Products as people read them, joined by "or" ("Jira or Confluence")."""
    return join_or([product_label(p) for p in products])


def join_or(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


def join_and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"
