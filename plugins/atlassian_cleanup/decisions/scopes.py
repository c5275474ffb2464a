"""Which scoped rule applies to each user: the policy's selectors matched against the user table.

Every selector key reads what ``extract_users`` really reads from Atlassian: ``groups`` the user's
group names (Admin API v2 ``groups``), ``email_domains`` the domain of the e-mail (hidden e-mails
match no domain), ``managed`` the claim status (``managed`` / ``unmanaged``; a user whose claim
status Atlassian does not report matches neither), ``products`` the products the user has access
to (the keys of ``product_access``, canonical). Column-wise: one pass per selector key over the
table's codes, never per user.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from atlassian_cleanup.decisions.plan_arrays import Coded
from atlassian_cleanup.decisions.policy_model import DEFAULT_RULE, Policy, RuleSelector, ScopedRule
from atlassian_cleanup.decisions.products import canonical_product
from atlassian_cleanup.decisions.user_table import PRODUCTS, UserTable


def _any_listed(table: UserTable, name: str, wanted: Callable[[Any], bool]) -> np.ndarray:
    """Per user: some value of list column ``name`` (``groups``, ``product_access``) is ``wanted``."""
    n = len(table)
    good = np.array([bool(wanted(value)) for value in table.values(name)], dtype=bool)
    out = np.zeros(n, dtype=bool)
    codes = table.array(f"{name}.codes")
    if len(codes) and good.any():
        users = np.repeat(np.arange(n, dtype=np.int64), table.array(f"{name}.counts"))
        out[users[good[codes]]] = True
    return out


def _coded_is(table: UserTable, name: str, wanted: Callable[[Any], bool]) -> np.ndarray:
    return Coded(table, name).mask(wanted) if len(table) else np.zeros(0, dtype=bool)


def _in_domains(domain: Any, entries: Sequence[str]) -> bool:
    text = str(domain or "").strip().lower()
    return bool(text) and any(text == entry or text.endswith(f".{entry}") for entry in entries)


def _email_domains(table: UserTable, entries: Sequence[str]) -> np.ndarray:
    hit = _coded_is(table, "email_domain", lambda domain: _in_domains(domain, entries))
    # A hand-built record may carry the e-mail without its domain column.
    missing = _coded_is(table, "email_domain", lambda domain: domain is None)
    emails = table.objects("email")
    for i in np.flatnonzero(missing).tolist():
        address = str(emails[i] or "")
        hit[i] = "@" in address and _in_domains(address.rsplit("@", 1)[-1], entries)
    return hit


def selects(table: UserTable, selector: RuleSelector) -> np.ndarray:
    """Per user: ``selector`` selects them (every key it gives holds)."""
    hit = np.ones(len(table), dtype=bool)
    if selector.groups is not None:
        groups = set(selector.groups)
        hit &= _any_listed(table, "groups", lambda group: str(group).strip().lower() in groups)
    if selector.email_domains is not None:
        hit &= _email_domains(table, selector.email_domains)
    if selector.managed is not None:
        claim = "managed" if selector.managed else "unmanaged"
        hit &= _coded_is(table, "claim_status", lambda value: str(value or "").lower() == claim)
    if selector.products is not None:
        products = set(selector.products)
        hit &= _any_listed(table, PRODUCTS, lambda product: canonical_product(str(product)) in products)
    return hit


def rule_of_users(table: UserTable, rules: Sequence[ScopedRule]) -> np.ndarray:
    """Per user, the index of the first rule that selects them; ``len(rules)``: the default rule."""
    chosen = np.full(len(table), len(rules), dtype=np.int64)
    undecided = np.ones(len(table), dtype=bool)
    for index, rule in enumerate(rules):
        hit = undecided & selects(table, rule.match)
        chosen[hit] = index
        undecided &= ~hit
    return chosen


def rule_names(policy: Policy) -> list[str]:
    """The names :func:`rule_of_users` indexes: the scoped rules in order, then the default rule."""
    return [*(rule.name for rule in policy.rules), DEFAULT_RULE]
