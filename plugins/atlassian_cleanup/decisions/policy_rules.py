"""Scoped rules as policy data: building them, their effective policies, and the rules that cannot apply.

A rule's selector names a population (:class:`~.policy_model.RuleSelector`); the rule sets a few
keys (:data:`~.policy_model.RULE_SETTINGS`) and inherits the rest from the top level. Rules apply
in order, first match wins, so a rule whose population an earlier rule already selects in full is
never used: :func:`rule_conflicts` reports it, with every other rule that cannot select anybody.
Selectors are independent dimensions (a key the selector leaves out allows everybody), so "every
user rule B selects is selected by rule A" holds exactly when each key of A is also a key of B
with B's values inside A's.

Matching users against selectors is :mod:`~atlassian_cleanup.decisions.scopes` (numpy); this module
is plain Python, because the loader imports it. It imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from atlassian_cleanup.decisions.policy_model import (
    DEFAULT_RULE,
    RULE_SETTINGS,
    InactivityPolicy,
    Policy,
    RuleSelector,
    ScopedRule,
)
from atlassian_cleanup.decisions.products import canonical_product

#: (key paths involved, the problem in words); the loader turns them into its problems.
Conflict = tuple[tuple[str, ...], str]


def _lower(values: Iterable[Any] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(dict.fromkeys(str(v).strip().lower() for v in values))


def build_selector(match: Mapping[str, Any]) -> RuleSelector:
    """The selector of checked ``match`` data; names compare in lower case, products canonical."""
    managed = match.get("managed")
    products = match.get("products")
    return RuleSelector(
        groups=_lower(match.get("groups")),
        email_domains=_lower(match.get("email_domains")),
        managed=None if managed is None else bool(managed),
        products=None
        if products is None
        else tuple(dict.fromkeys(canonical_product(str(p)) for p in products)),
    )


def build_rule(data: Mapping[str, Any], products: Mapping[str, int] | None) -> ScopedRule:
    """The rule of checked data; ``products`` are its per-product thresholds under canonical keys."""
    settings: dict[str, Any] = {}
    for path in RULE_SETTINGS:
        section, _, key = path.rpartition(".")
        source = (data.get(section) or {}) if section else data
        if key in source:
            settings[path] = source[key]
    if "inactivity.products" in settings:
        settings["inactivity.products"] = dict(sorted((products or {}).items()))
    if "warning.lead_days" in settings:
        settings["warning.lead_days"] = tuple(sorted(settings["warning.lead_days"], reverse=True))
    return ScopedRule(name=str(data["name"]), match=build_selector(data["match"]), settings=settings)


def effective_policy(policy: Policy, rule: ScopedRule | None) -> Policy:
    """The policy that decides for ``rule``'s population: the top level with the rule's settings.

    ``None`` is the default rule (the top level itself, without rules). Per-product thresholds of
    the rule are merged over the top level's: a product the rule leaves out keeps its threshold.
    """
    if rule is None:
        return replace(policy, rules=()) if policy.rules else policy
    settings = rule.settings
    products = {**policy.inactivity.products, **settings.get("inactivity.products", {})}
    return replace(
        policy,
        rules=(),
        inactivity=InactivityPolicy(
            int(settings.get("inactivity.default_days", policy.inactivity.default_days)),
            dict(sorted(products.items())),
        ),
        warning=replace(
            policy.warning, lead_days=settings.get("warning.lead_days", policy.warning.lead_days)
        ),
        action=settings.get("action", policy.action),
        review=bool(settings.get("review", policy.review)),
        delete_after_days=settings.get("delete_after_days", policy.delete_after_days),
    )


def _domain_within(domain: str, entries: Iterable[str]) -> bool:
    return any(domain == entry or domain.endswith(f".{entry}") for entry in entries)


def covers(earlier: RuleSelector, later: RuleSelector) -> bool:
    """Every user ``later`` selects is selected by ``earlier`` (same or wider selector)."""
    if earlier.managed is not None and later.managed != earlier.managed:
        return False
    for key in ("groups", "products"):
        mine, theirs = getattr(earlier, key), getattr(later, key)
        if mine is not None and (theirs is None or not set(theirs) <= set(mine)):
            return False
    if earlier.email_domains is not None:
        if later.email_domains is None:
            return False
        return all(_domain_within(domain, earlier.email_domains) for domain in later.email_domains)
    return True


def _never_selected(rule: ScopedRule, policy: Policy) -> str | None:
    """Why nobody the rule selects can ever be actioned under it, or None."""
    selector = rule.match
    protected = {group.lower() for group in policy.protected.groups}
    admin = [pattern.lower() for pattern in policy.admin_groups]
    if selector.groups is not None and all(
        group in protected or any(fnmatch.fnmatchcase(group, p) for p in admin) for group in selector.groups
    ):
        return (
            "every group it selects is protected (protected.groups or admin_groups), whose members "
            "are never touched"
        )
    if selector.email_domains is not None and all(
        _domain_within(domain, policy.protected.domains) for domain in selector.email_domains
    ):
        return "every e-mail domain it selects is in protected.domains, whose users are never touched"
    return None


def rule_conflicts(policy: Policy) -> list[Conflict]:
    """Rules that can never apply: a reserved or repeated name, a population an earlier rule takes
    in full, or one that is protected anyway. Each with the fix."""
    conflicts: list[Conflict] = []
    first_named: dict[str, int] = {}
    for index, rule in enumerate(policy.rules):
        path = f"rules[{index}]"
        if rule.name == DEFAULT_RULE:
            conflicts.append(
                (
                    (f"{path}.name",),
                    f"{path}.name: {DEFAULT_RULE!r} is the name of the top-level settings "
                    "(the rule of everybody no rule selects). Fix: choose another name",
                )
            )
        elif rule.name in first_named:
            conflicts.append(
                (
                    (f"{path}.name",),
                    f"{path}.name: {rule.name!r} is already the name of "
                    f"rules[{first_named[rule.name]}]; the audit could not tell them apart. Fix: give each "
                    "rule its own name",
                )
            )
        first_named.setdefault(rule.name, index)
        for before, earlier in enumerate(policy.rules[:index]):
            if covers(earlier.match, rule.match):
                conflicts.append(
                    (
                        (f"{path}.match", f"rules[{before}].match"),
                        f"{path} ({rule.name}) can never match: "
                        f"rules[{before}] ({earlier.name}) comes first and selects everybody it selects "
                        f"(match {earlier.match.to_dict()} is the same or wider than "
                        f"{rule.match.to_dict()}). "
                        f"Fix: move {rule.name!r} above {earlier.name!r}, narrow {earlier.name!r}, or remove "
                        f"{rule.name!r}",
                    )
                )
                break
        why = _never_selected(rule, policy)
        if why is not None:
            conflicts.append(
                (
                    (f"{path}.match",),
                    f"{path} ({rule.name}) can never apply: {why}. Fix: select "
                    "people who are not protected, or remove the rule",
                )
            )
    return conflicts
