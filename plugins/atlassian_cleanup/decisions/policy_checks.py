"""Checking parsed policy data and building the :class:`Policy` from it.

:func:`problems_in` collects every problem at once: the JSON Schema's (worded for an admin, not
as jsonschema words them, each with the key path, the value seen and the fix) and the cross-field
rules the schema cannot express (lead days shorter than every threshold, product keys that collide
after canonicalisation) and, for scoped rules, their own lead days and thresholds and the rules
that can never apply (:func:`~.policy_rules.rule_conflicts`). :func:`build_policy` turns checked
data into the frozen dataclasses, taking every missing key from the dataclass defaults.
:func:`plausibility_warnings` names what a valid policy allows but is probably not meant.

This module imports neither Airflow nor an HTTP client.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from atlassian_cleanup.decisions.policy_model import (
    MAX_DAYS,
    PLAUSIBLE_DAYS,
    SECTIONS,
    InactivityPolicy,
    LicensingPolicy,
    NotificationsPolicy,
    Policy,
    ProtectedPolicy,
    RestorePolicy,
    SafetyPolicy,
    StateStorePolicy,
    WarningPolicy,
    default_value,
    policy_defaults,
)
from atlassian_cleanup.decisions.policy_rules import build_rule, rule_conflicts
from atlassian_cleanup.decisions.policy_schema import (
    DOMAIN_PATTERN,
    EMAIL_PATTERN,
    KNOWN_PATHS,
    PRODUCT_KEY_PATTERN,
    RULE_PATHS,
    SCHEMA,
    fix_for,
)
from atlassian_cleanup.decisions.products import _ALIASES as _PRODUCT_ALIASES
from atlassian_cleanup.decisions.products import KNOWN_PRODUCTS, canonical_product

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}

_PATTERN_WORDS = {
    EMAIL_PATTERN: "is not a valid e-mail address",
    DOMAIN_PATTERN: "is not a valid domain name",
    PRODUCT_KEY_PATTERN: "is not a lower-case product key",
}


@dataclass(frozen=True)
class Problem:
    """One problem of a policy document."""

    paths: tuple[str, ...]  # key paths involved, the first is the one reported
    text: str


def format_path(parts: Iterable[Any]) -> str:
    """``["warning", "lead_days", 2]`` -> ``"warning.lead_days[2]"``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _type_names(types: Any) -> str:
    names = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(name, name) for name in names if name != "null") or "null"


def describe(error: jsonschema.ValidationError) -> str:
    """Say what is wrong with a value in words an admin understands (not jsonschema's)."""
    kind, expected = error.validator, error.validator_value
    if kind == "type":
        return f"must be {_type_names(expected)}"
    if kind == "minimum":
        return f"must be at least {expected}"
    if kind == "maximum":
        if expected == MAX_DAYS:
            return f"must be at most {MAX_DAYS} days (100 years): a longer period cannot be meant"
        return f"must be at most {expected}"
    if kind == "exclusiveMinimum":
        return f"must be greater than {expected}"
    if kind == "enum":
        return f"must be one of {', '.join(str(v) for v in expected if v is not None)}"
    if kind == "uniqueItems":
        return "must not contain duplicates"
    if kind in ("minLength", "minProperties"):
        return "must not be empty"
    if kind == "minItems":
        return "must not be empty (an empty list selects nobody)"
    if kind == "required":
        missing = [key for key in expected if key not in error.instance]
        return f"is missing {', '.join(missing)}"
    if kind == "pattern":
        return _PATTERN_WORDS.get(str(expected), "has an invalid format")
    return str(error.message)  # pragma: no cover - every keyword the schemas use is handled above


def _suggest(key: str, siblings: Iterable[str], prefix: str) -> str:
    # The right key in the wrong section (``default_days`` at the top level) is a common slip;
    # within a scoped rule, the sections are the rule's own.
    rule = re.match(r"rules\[\d+\]\.", prefix)
    known = [rule.group(0) + path for path in RULE_PATHS] if rule else KNOWN_PATHS
    elsewhere = [path for path in known if path.rsplit(".", 1)[-1] == key]
    if elsewhere:
        return f"did you mean '{elsewhere[0]}'?"
    close = difflib.get_close_matches(key, list(siblings), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{prefix}{close[0]}'?"
    return f"remove it; known keys here: {', '.join(sorted(siblings))}"


def _schema_error_problems(error: jsonschema.ValidationError) -> list[Problem]:
    parts = list(error.absolute_path)
    path = format_path(parts)
    prefix = f"{path}." if parts else ""
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {})
        return [
            Problem((f"{prefix}{key}",), f"{prefix}{key}: unknown key; {_suggest(str(key), known, prefix)}")
            for key in sorted(set(error.instance) - set(known), key=str)
        ]
    if "propertyNames" in error.schema_path:
        key = error.instance
        key_path = f"{prefix}{key}"
        return [
            Problem(
                (key_path,),
                f"{key_path}: product key {key!r} is not a lower-case product key. "
                f"Fix: write it in lower case with letters, digits and '-', e.g. "
                f"{str(key).strip().lower()!r} or one of {', '.join(KNOWN_PRODUCTS)}",
            )
        ]
    return [Problem((path,), f"{path}: {describe(error)} (got {error.instance!r}). Fix: {fix_for(path)}")]


def _schema_problems(data: Any) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [problem for error in errors for problem in _schema_error_problems(error)]


def _section_of(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def canonical_products(
    raw: Mapping[str, Any], prefix: str = "inactivity.products"
) -> tuple[dict[str, int], list[Problem]]:
    """Per-product thresholds under canonical keys, and the keys that collide or look mistyped.

    ``prefix``: the key path of ``raw`` in the document, for the problems.
    """
    products: dict[str, int] = {}
    origin: dict[str, str] = {}
    problems: list[Problem] = []
    known = sorted(set(KNOWN_PRODUCTS) | set(_PRODUCT_ALIASES))
    for key, days in raw.items():
        path = f"{prefix}.{key}"
        canonical = canonical_product(str(key))
        if canonical in origin:
            problems.append(
                Problem(
                    (path,),
                    f"{path}: duplicates '{origin[canonical]}' (both mean product '{canonical}'; "
                    f"got {days!r} and {raw[origin[canonical]]!r}). Fix: keep only one of them",
                )
            )
            continue
        if canonical not in KNOWN_PRODUCTS:
            # Any product key is allowed (Bitbucket, Trello, ...), but a near miss of a known key
            # would silently leave that product on the default threshold.
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
            if close:
                problems.append(
                    Problem(
                        (path,),
                        f"{path}: unknown product key {key!r}; did you mean '{close[0]}'? "
                        f"Fix: use one of {', '.join(KNOWN_PRODUCTS)} or the exact key Atlassian reports",
                    )
                )
                continue
        origin[canonical] = str(key)
        if isinstance(days, int) and not isinstance(days, bool):
            products[canonical] = days
    return products, problems


def _is_days(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cross_field_problems(data: Mapping[str, Any]) -> list[Problem]:
    inactivity = _section_of(data, "inactivity")
    raw_products = inactivity.get("products") or {}
    problems: list[Problem] = []
    products: dict[str, int] = {}
    if isinstance(raw_products, Mapping):
        products, problems = canonical_products(raw_products)

    default_days = inactivity.get("default_days", default_value("inactivity.default_days"))
    thresholds: dict[str, int] = {}
    if _is_days(default_days) and default_days >= 1:
        thresholds["inactivity.default_days"] = default_days
    for product, days in products.items():
        if days >= 1:
            thresholds[f"inactivity.products.{product}"] = days

    lead_days = _section_of(data, "warning").get("lead_days", default_value("warning.lead_days"))
    problems.extend(_lead_day_problems(thresholds, lead_days, "warning.lead_days"))
    return problems


def _lead_day_problems(
    thresholds: Mapping[str, int], lead_days: Any, path: str, label: str | None = None
) -> list[Problem]:
    """Lead days at ``path`` that are not shorter than every threshold (key path -> days).

    ``label``: how the problem names the lead days, when not by their path.
    """
    if not thresholds or not isinstance(lead_days, list | tuple):
        return []
    smallest_key = min(thresholds, key=lambda k: thresholds[k])
    smallest = thresholds[smallest_key]
    too_long = sorted({d for d in lead_days if _is_days(d) and d >= smallest}, reverse=True)
    if not too_long:
        return []
    return [
        Problem(
            (path, smallest_key),
            f"{label or path}: {', '.join(map(str, too_long))} must be shorter than the smallest "
            f"inactivity threshold ({smallest_key} = {smallest} days), or the warning would "
            f"go out before the user is even inactive (got {list(lead_days)!r}). Fix: use lead days "
            f"below {smallest}, or raise {smallest_key}",
        )
    ]


def problems_in(data: Any) -> list[Problem]:
    """Every problem of parsed policy data (``None`` is an empty document); ``[]`` when it is valid."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return [
            Problem(
                ("(top level)",),
                f"(top level): the policy must be a mapping of keys (got {type(data).__name__}). "
                "Fix: start from include/policy.yaml",
            )
        ]
    problems = _schema_problems(data)
    problems.extend(_cross_field_problems(data))
    if not problems and data.get("rules"):
        # Rules are judged against the top level they inherit from, so that must be sound first.
        problems.extend(_rule_problems(data))
        if not problems:
            policy = build_policy(data)
            problems.extend(Problem(paths, text) for paths, text in rule_conflicts(policy))
    return problems


def _rule_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Per rule: its product keys, and its lead days against its own thresholds (inherited or not)."""
    inactivity = _section_of(data, "inactivity")
    top_products, _ = canonical_products(inactivity.get("products") or {})
    top_days = inactivity.get("default_days", default_value("inactivity.default_days"))
    top_lead = _section_of(data, "warning").get("lead_days", default_value("warning.lead_days"))
    problems: list[Problem] = []
    for index, rule in enumerate(data["rules"]):
        path = f"rules[{index}]"
        problems.extend(_product_typos(rule["match"].get("products") or (), f"{path}.match.products"))
        own = _section_of(rule, "inactivity")
        products, product_problems = canonical_products(
            own.get("products") or {}, f"{path}.inactivity.products"
        )
        problems.extend(product_problems)
        thresholds = {
            f"inactivity.products.{p}": days for p, days in top_products.items() if p not in products
        }
        thresholds.update({f"{path}.inactivity.products.{p}": days for p, days in products.items()})
        days_path = f"{path}.inactivity.default_days" if "default_days" in own else "inactivity.default_days"
        thresholds[days_path] = own.get("default_days", top_days)
        if "lead_days" in _section_of(rule, "warning"):
            problems.extend(
                _lead_day_problems(thresholds, rule["warning"]["lead_days"], f"{path}.warning.lead_days")
            )
        else:
            label = f"warning.lead_days (inherited by {path})"
            problems.extend(_lead_day_problems(thresholds, top_lead, "warning.lead_days", label))
    return problems


def _product_typos(keys: Iterable[Any], path: str) -> list[Problem]:
    """Selector product keys that look like a mistyped known product (they would select nobody)."""
    known = sorted(set(KNOWN_PRODUCTS) | set(_PRODUCT_ALIASES))
    problems = []
    for key in keys:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
        if canonical_product(str(key)) not in KNOWN_PRODUCTS and close:
            problems.append(
                Problem(
                    (path,),
                    f"{path}: unknown product key {key!r}; did you mean '{close[0]}'? "
                    f"Fix: use one of {', '.join(KNOWN_PRODUCTS)} or the exact key Atlassian reports",
                )
            )
    return problems


def _lower_unique(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v).strip().lower() for v in values or ()))


def _unique(values: Iterable[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values or ()))


def _over_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` over the defaults. A key given as null takes its default: in checked data null only
    appears where the default is null or empty, or for a whole section (all its defaults)."""
    merged = policy_defaults()
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, Mapping):
            merged[key].update({name: item for name, item in value.items() if item is not None})
        elif value is not None:
            merged[key] = value
    return merged


def build_policy(data: Mapping[str, Any]) -> Policy:
    """The :class:`Policy` of data that :func:`problems_in` found valid; missing keys take the defaults."""
    merged = _over_defaults(data)
    inactivity, warning, protected = merged["inactivity"], merged["warning"], merged["protected"]
    safety, restore, notifications = merged["safety"], merged["restore"], merged["notifications"]
    licensing = merged["licensing"]
    products, _ = canonical_products(inactivity["products"])
    return Policy(
        dry_run=bool(merged["dry_run"]),
        inactivity=InactivityPolicy(int(inactivity["default_days"]), dict(sorted(products.items()))),
        # Stored descending: the order warnings go out.
        warning=WarningPolicy(
            tuple(sorted(warning["lead_days"], reverse=True)),
            min_notice_days=warning["min_notice_days"],
            without_email=warning["without_email"],
        ),
        action=merged["action"],
        review=bool(merged["review"]),
        delete_after_days=merged["delete_after_days"],
        delete_notice_days=int(merged["delete_notice_days"]),
        new_user_grace_days=int(merged["new_user_grace_days"]),
        restored_grace_days=int(merged["restored_grace_days"]),
        protected=ProtectedPolicy(
            groups=_unique(protected["groups"]),
            account_ids=_unique(str(v).strip() for v in protected["account_ids"]),
            emails=_lower_unique(protected["emails"]),
            domains=_lower_unique(protected["domains"]),
        ),
        admin_groups=_unique(merged["admin_groups"]),
        safety=SafetyPolicy(
            max_actions_per_run=int(safety["max_actions_per_run"]),
            max_action_share=float(safety["max_action_share"]),
            on_cap_exceeded=safety["on_cap_exceeded"],
            min_user_count_ratio=float(safety["min_user_count_ratio"]),
            max_missing_activity_share=float(safety["max_missing_activity_share"]),
            write_concurrency=int(safety["write_concurrency"]),
            task_timeout_minutes=int(safety["task_timeout_minutes"]),
        ),
        restore=RestorePolicy(
            allowed_domains=_lower_unique(restore["allowed_domains"]),
            allowed_groups=_unique(restore["allowed_groups"]),
            schedule=str(restore["schedule"]),
            service_desk=restore["service_desk"],
            request_type=str(restore["request_type"]),
            max_restores_per_run=int(restore["max_restores_per_run"]),
            approval_timeout_hours=int(restore["approval_timeout_hours"]),
        ),
        notifications=NotificationsPolicy(
            smtp_conn_id=str(notifications["smtp_conn_id"]),
            from_email=notifications["from_email"],
            templates_dir=notifications["templates_dir"],
            request_access_url=notifications["request_access_url"],
            admin_emails=_lower_unique(notifications["admin_emails"]),
            audit_page_url=notifications["audit_page_url"],
        ),
        state_store=StateStorePolicy(conn_id=str(merged["state_store"]["conn_id"])),
        licensing=LicensingPolicy(
            billing=licensing["billing"],
            currency=str(licensing["currency"]),
            seat_price=float(licensing["seat_price"]),
            product_seat_prices={
                canonical_product(str(key)): float(value)
                for key, value in sorted(licensing["product_seat_prices"].items())
            },
        ),
        rules=tuple(
            build_rule(rule, canonical_products(_section_of(rule, "inactivity").get("products") or {})[0])
            for rule in merged["rules"]
        ),
    )


def plausibility_warnings(policy: Policy) -> list[str]:
    """What a valid policy allows but is probably not meant; one sentence per finding.

    These are accepted (the run goes on) and shown in the ``compute_inactivity`` log and the admin
    digest: a policy that protects nobody beyond the built-in protections, periods longer than ten
    years (:data:`PLAUSIBLE_DAYS`), a notice period without warnings. Values that cannot be meant
    (longer than :data:`MAX_DAYS`) are errors of :func:`policy_from_dict` instead. The warning
    about caps allowing more than half the org needs the org size:
    :func:`atlassian_cleanup.decisions.gates.cap_plausibility_warnings`.
    """
    warnings: list[str] = []
    protected = policy.protected
    if not (protected.groups or protected.account_ids or protected.emails or protected.domains):
        warnings.append(
            "protected: nobody is protected beyond the built-in protections (apps, customers, admins, "
            "admin groups, the API user, new and restored users). If that is not meant, list your "
            "VIP groups, break-glass accounts or partner domains under protected, e.g. "
            "protected.groups: [vip-executives]."
        )
    periods: list[tuple[str, int | None]] = [
        ("inactivity.default_days", policy.inactivity.default_days),
        *((f"inactivity.products.{p}", d) for p, d in sorted(policy.inactivity.products.items())),
        ("warning.min_notice_days", policy.warning.min_notice_days),
        ("delete_after_days", policy.delete_after_days),
        ("new_user_grace_days", policy.new_user_grace_days),
        ("restored_grace_days", policy.restored_grace_days),
    ]
    for key, days in periods:
        if days is not None and days > PLAUSIBLE_DAYS:
            warnings.append(
                f"{key}: {days} days is more than ten years ({PLAUSIBLE_DAYS} days); check that it "
                "is meant (a threshold in weeks or months is usual)."
            )
    for rule in policy.rules:
        if rule.match.managed is False and rule.settings.get("action", policy.action) == "deactivate":
            warnings.append(
                f"rules: {rule.name!r} selects unmanaged accounts and deactivates them, but Atlassian "
                "lets only the owner of a verified domain deactivate an account: its users will be "
                "suspended instead. Set action: suspend or remove_product_access on the rule to say so."
            )
    if policy.warning.min_notice_days is not None and not policy.warning.lead_days:
        warnings.append(
            "warning.min_notice_days is set but warning.lead_days is []: nobody is warned, so there is "
            "no notice period and users are actioned as soon as they are due."
        )
    return warnings
