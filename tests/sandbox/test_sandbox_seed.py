"""The seeded generator: determinism, populations, proportions and scale."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from atlassian_sandbox.seed import BUCKETS, CONTRACTOR_DOMAIN, MANAGED_DOMAIN, generate_org
from atlassian_sandbox.state import CONFLUENCE, JIRA, ORG_ADMIN, SITE_ADMIN

AS_OF = date(2026, 11, 26)
REQUIRED = {
    "api_user", "org_admin", "site_admin", "product_admin", "app_service", "app_agent", "customer",
    "unmanaged_contractor", "vip", "idp_synced", "suspended", "deactivated", "for_deletion", "new_joiner",
    "never_logged_in", "jsm_agent", "jira_active_confluence_dormant", "active", "inactive_30", "inactive_60",
    "inactive_90", "inactive_180", "inactive_400", "special_name_html", "special_name_unicode",
    "restore_requester",
}  # fmt: skip


def dump(users: int, seed: int, as_of: date = AS_OF) -> str:
    return json.dumps(generate_org(users, seed, as_of).canonical_dump(), sort_keys=True, ensure_ascii=False)


def test_same_inputs_give_byte_identical_state() -> None:
    assert dump(300, 42) == dump(300, 42)


def test_different_seed_or_date_changes_the_state() -> None:
    base = dump(300, 42)
    assert dump(300, 43) != base
    assert dump(300, 42, date(2026, 12, 1)) != base


def test_org_and_directory_ids_depend_only_on_the_seed() -> None:
    small, large, other = (
        generate_org(50, 42, AS_OF),
        generate_org(500, 42, AS_OF),
        generate_org(50, 1, AS_OF),
    )
    assert (small.org_id, small.directory_id) == (large.org_id, large.directory_id)
    assert small.org_id != other.org_id
    assert len(small.org_id) == 36
    assert small.org_id.count("-") == 4


@pytest.mark.parametrize("size", [50, 300])
def test_every_population_is_present(size: int) -> None:
    state = generate_org(size, 42, AS_OF)
    assert len(state.users) == size
    present = {p for u in state.users.values() for p in u.populations}
    assert present >= REQUIRED, REQUIRED - present


@pytest.mark.parametrize("size", [50, 300])
def test_population_markers_match_the_account_shape(size: int) -> None:
    state = generate_org(size, 42, AS_OF)
    now = state.now()
    groups = {g.name: g for g in state.groups.values()}
    for user in state.users.values():
        kind = user.populations[0]
        names = {state.groups[g].name for g in user.groups}
        if kind in ("app_service", "app_agent"):
            assert user.account_type == "app"
            assert user.app_type == ("service" if kind == "app_service" else "agent")
        elif kind == "customer":
            assert user.account_type == "customer"
            assert user.account_id.startswith("qm:")
            assert not user.groups
        elif kind == "unmanaged_contractor":
            assert user.claim_status == "unmanaged"
            assert user.email.endswith("@" + CONTRACTOR_DOMAIN)
        elif kind == "vip":
            assert "vip-executives" in names
        elif kind == "idp_synced":
            assert "idp-engineering" in names
            assert user.scim_managed
        elif kind == "org_admin":
            assert ORG_ADMIN in user.platform_roles
        elif kind == "site_admin":
            assert SITE_ADMIN in user.platform_roles
            assert "site-admins" in names
        elif kind == "api_user":
            assert user.email == "automation@acme.example"
            assert "site-admins" in names
            assert state.api_account_id == user.account_id
        elif kind == "never_logged_in":
            assert not user.last_active
            assert now - user.added_to_org > timedelta(days=100)
        elif kind == "new_joiner":
            assert not user.last_active
            assert now - user.added_to_org < timedelta(days=14)
        elif kind == "jira_active_confluence_dormant":
            assert (now - user.last_active[JIRA]).days < 30
            assert (now - user.last_active[CONFLUENCE]).days >= 200
        elif kind == "jsm_agent":
            assert names == {"jira-servicemanagement-users-acme"}
        elif kind == "suspended":
            assert user.membership == "suspended"
            assert user.groups, "suspended users keep their groups"
        elif kind == "deactivated":
            assert user.account_status == "inactive"
            assert user.status == "deactivated"
        elif kind == "for_deletion":
            assert user.status == "for_deletion"
            assert user.deletion_scheduled_at > now
        if user.account_type == "atlassian" and user.claim_status == "managed":
            assert user.email.endswith("@" + MANAGED_DOMAIN)
    assert groups["idp-engineering"].external_synced
    assert groups["idp-engineering"].members


def test_activity_buckets_match_days_since_last_activity() -> None:
    state = generate_org(300, 42, AS_OF)
    midnight = datetime(2026, 11, 26, tzinfo=UTC)
    checked = 0
    for user in state.users.values():
        buckets = [p for p in user.populations if p in BUCKETS]
        if not buckets or user.populations[0] == "jira_active_confluence_dormant":
            continue
        low, high = BUCKETS[buckets[0]]
        latest = max(user.last_active.values())
        assert low <= (midnight.date() - latest.date()).days <= high, (user.populations, latest)
        checked += 1
    assert checked > 150


def test_service_desk_has_an_open_restore_request_from_a_suspended_user() -> None:
    state = generate_org(50, 42, AS_OF)
    restore = [r for r in state.requests.values() if r.request_type_id == "25" and r.category != "DONE"]
    assert restore
    assert any(state.users[r.reporter].membership == "suspended" for r in restore)
    assert state.service_desks[0]["projectKey"] == "ITH"


def test_special_names_include_html_and_non_ascii() -> None:
    state = generate_org(50, 42, AS_OF)
    names = [u.name for u in state.users.values()]
    assert any("<script>" in n and "'" in n for n in names)
    assert any(not n.isascii() for n in names)


@pytest.mark.parametrize("size", [0, 1, 10])
def test_tiny_orgs_generate_without_error(size: int) -> None:
    state = generate_org(size, 3, AS_OF)
    assert len(state.users) == size


@pytest.mark.integration
def test_hundred_thousand_users_keep_their_proportions() -> None:
    # How fast this is belongs to `make bench` (it seeds 100,000 users), not to a timed assertion.
    state = generate_org(100_000, 42, AS_OF)
    assert len(state.users) == 100_000
    customers = sum(1 for u in state.users.values() if u.account_type == "customer")
    assert 4000 < customers < 8000  # proportions scale, minimums do not dominate
