"""Deterministic org generator: ``generate_org(users, seed, as_of)``.

Same inputs give a byte-identical state (all randomness comes from ``random.Random`` seeded from
the inputs, never from the clock or ``uuid4``). Every population the cleanup DAGs must handle is
present from 50 users up, and the proportions scale to 100,000 users in a few seconds.

Populations (``User.populations``; the first entry is the primary one):

* activity buckets: ``active`` (1-29 days), ``inactive_30``/``_60``/``_90``/``_180``/``_400``
  (days since the latest product activity, lower bound of the bucket), ``never_logged_in``
  (no activity, added long ago), ``new_joiner`` (added < 14 days ago, no activity);
* ``jira_active_confluence_dormant`` (Jira recent, Confluence 200+ days), ``jsm_agent`` (JSM only);
* protected or untouchable: ``api_user``, ``org_admin``, ``site_admin``, ``product_admin``,
  ``vip`` (group ``vip-executives``), ``app_service`` / ``app_agent`` (accountType app),
  ``customer`` (portal-only, ``qm:`` ids), ``unmanaged_contractor`` (``partner.example``),
  ``idp_synced`` (SCIM-managed, member of the externally synced ``idp-engineering``);
* already actioned: ``suspended``, ``deactivated``, ``for_deletion``;
* markers: ``special_name_html``, ``special_name_unicode``, ``restore_requester``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from atlassian_sandbox.config import SandboxConfig
from atlassian_sandbox.model import CONFLUENCE, JIRA, JSM, ORG_ADMIN, SITE_ADMIN, Group, Resource, User
from atlassian_sandbox.state import OrgState

ORG_NAME = "acme"
MANAGED_DOMAIN = "acme.example"
CONTRACTOR_DOMAIN = "partner.example"
CUSTOMER_DOMAINS = ("gmail.example", "outlook.example", "customer.example")

# (population, share of the org, minimum count). Order is priority when the org is tiny.
POPULATIONS: tuple[tuple[str, float, int], ...] = (
    ("api_user", 0.0, 1),
    ("org_admin", 0.002, 1),
    ("site_admin", 0.003, 1),
    ("product_admin", 0.003, 1),
    ("app_service", 0.004, 1),
    ("app_agent", 0.002, 1),
    ("customer", 0.06, 2),
    ("unmanaged_contractor", 0.04, 2),
    ("vip", 0.005, 2),
    ("idp_synced", 0.03, 2),
    ("suspended", 0.02, 3),
    ("deactivated", 0.015, 1),
    ("for_deletion", 0.005, 1),
    ("new_joiner", 0.02, 1),
    ("never_logged_in", 0.05, 2),
    ("jsm_agent", 0.02, 1),
    ("jira_active_confluence_dormant", 0.05, 2),
    ("inactive_30", 0.06, 2),
    ("inactive_60", 0.05, 2),
    ("inactive_90", 0.05, 2),
    ("inactive_180", 0.05, 2),
    ("inactive_400", 0.04, 2),
)
MIN_FULL_ORG = 50

# Bucket -> (min days, max days) since the latest activity.
BUCKETS = {
    "active": (1, 29),
    "inactive_30": (30, 59),
    "inactive_60": (60, 89),
    "inactive_90": (90, 179),
    "inactive_180": (180, 399),
    "inactive_400": (400, 900),
}

FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
    "Radia", "Tim", "Katherine", "John", "Hedy", "Claude", "Annie", "Donald", "Sophie", "Niklaus",
    "Joan", "Bjarne", "Karen", "Guido", "Lynn", "James", "Carol", "Brian", "Mary", "Leslie",
    "Adele", "Robert", "Evelyn", "Peter", "Susan", "Vint", "Jean", "Whitfield", "Shafi", "Yukihiro",
    "Priya", "Chidi", "Mei", "Omar", "Ingrid", "Mateo", "Aisha", "Lars", "Fatima", "Kenji",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
    "Dijkstra", "Perlman", "Berners-Lee", "Johnson", "McCarthy", "Lamarr", "Shannon", "Easley", "Knuth",
    "Wilson", "Wirth", "Clarke", "Stroustrup", "Jones", "Rossum", "Conway", "Gosling", "Shaw", "Kernighan",
    "Keller", "Lamport", "Goldberg", "Kahn", "Berezin", "Norvig", "Kare", "Cerf", "Sammet", "Diffie",
    "Goldwasser", "Matsumoto", "Raman", "Okafor", "Chen", "Haddad", "Larsen", "Garcia", "Bello", "Nilsson",
    "Rahman", "Sato",
)  # fmt: skip
JOB_TITLES = ("Engineer", "Senior Engineer", "Designer", "Product Manager", "Analyst", "Support Agent", None)
DEPARTMENTS = ("Engineering", "Design", "Product", "Finance", "Support", "Marketing", None)
TIMEZONES = (
    "Europe/London",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
LOCALES = ("en_GB", "en_US", "fr_FR", "de_DE", "ja_JP")

SPECIAL_NAMES = (
    # Names that break naive HTML e-mail templates and CSV writers.
    ("special_name_html", "Siobhán O'Brien <script>alert(1)</script>", "siobhan.obrien"),
    ("special_name_unicode", "Zoë Łukasiewicz-Müller", "zoe.lukasiewicz"),
    ("special_name_unicode", "渡辺 さくら", "sakura.watanabe"),
    ("special_name_html", '=HYPERLINK("http://evil.example","x") & Co', "formula.user"),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _population_counts(total: int) -> list[tuple[str, int]]:
    counts: list[tuple[str, int]] = []
    remaining = total
    for name, share, minimum in POPULATIONS:
        wanted = minimum if name == "api_user" else max(minimum, round(share * total))
        take = min(wanted, remaining)
        counts.append((name, take))
        remaining -= take
    counts.append(("active", remaining))
    return counts


def generate_org(
    users: int, seed: int, as_of: date, *, api_email: str = SandboxConfig.site_email
) -> OrgState:
    """Build the org. ``as_of`` is "today" for the seed data; the clock starts at 09:00 UTC."""
    org_rng = random.Random(f"atlassian-sandbox-org:{seed}")
    rng = random.Random(f"atlassian-sandbox-users:{seed}:{users}:{as_of.isoformat()}")
    state = OrgState(_uuid(org_rng), ORG_NAME, _uuid(org_rng), as_of, seed)
    state.cloud_id = _uuid(org_rng)
    host = f"https://{ORG_NAME}.atlassian.net"
    seats = max(100, 2 * users)
    for key in (JIRA, CONFLUENCE, JSM):
        state.resources[key] = Resource(key, state.cloud_id, host, seats)

    groups = _make_groups(state, org_rng)
    midnight = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)

    def days_ago(days: int) -> datetime:
        return midnight - timedelta(days=days) + timedelta(seconds=rng.randrange(86400))

    plan = [name for name, count in _population_counts(users) for _ in range(count)]
    api_first = plan[:1]
    rest = plan[1:]
    rng.shuffle(rest)
    plan = api_first + rest

    used_emails: set[str] = set()
    seen: dict[str, int] = {}

    def email_for(local: str, domain: str) -> str:
        candidate = f"{local}@{domain}"
        while candidate in used_emails:
            seen[local] = seen.get(local, 1) + 1
            candidate = f"{local}{seen[local]}@{domain}"
        used_emails.add(candidate)
        return candidate

    # 2,500 possible names: one string each, shared by every user who has it (at 1,000,000 users
    # that and the shared population tuples below save about 150 MB; the values are unchanged).
    people: dict[tuple[str, str], tuple[str, str]] = {}
    population_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}

    def person() -> tuple[str, str]:
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        known = people.get((first, last))
        if known is None:
            known = people[first, last] = (f"{first} {last}", f"{first}.{last}".lower().replace("-", ""))
        return known

    def join(user: User, *names: str) -> None:
        for name in names:
            group = groups[name]
            group.members.add(user.account_id)
            user.groups.add(group.id)

    def give_activity(user: User, products: list[str], bucket: str) -> int:
        """Latest activity lands in ``bucket``; other products are older or never used."""
        low, high = BUCKETS[bucket]
        days = rng.randint(low, high)
        primary = products[0] if len(products) == 1 else rng.choice(products)
        user.last_active[primary] = days_ago(days)
        for product in products:
            if product == primary:
                continue
            roll = rng.random()
            if roll < 0.2:
                continue  # has access, never opened this product: the null/absent entry case
            user.last_active[product] = days_ago(days + rng.randint(0, 60))
        return days

    counters: dict[str, int] = {}
    email_used_api = api_email.lower()
    used_emails.add(email_used_api)

    for population in plan:
        index = counters.get(population, 0)
        counters[population] = index + 1
        kind = "atlassian"
        if population == "customer":
            kind = "customer"
            account_id = f"qm:{_uuid(rng)}:{rng.getrandbits(64):016x}"
        elif population in ("app_service", "app_agent"):
            kind = "app"
            account_id = f"557058:{_uuid(rng)}"
        elif rng.random() < 0.3:
            account_id = f"{rng.getrandbits(96):024x}"  # classic 24-hex account id
        else:
            account_id = f"712020:{_uuid(rng)}"

        name, local = person()
        domain = MANAGED_DOMAIN
        if population == "unmanaged_contractor" or (population == "suspended" and index == 1):
            domain = CONTRACTOR_DOMAIN
        if population == "api_user":
            name, email = "Cleanup Automation", api_email
        elif kind == "customer":
            email = email_for(local, rng.choice(CUSTOMER_DOMAINS))
        elif kind == "app":
            email = None
        else:
            email = email_for(local, domain)

        user = User(account_id, kind, name, email)
        user.populations = (population,)
        user.job_title = rng.choice(JOB_TITLES)
        user.department = rng.choice(DEPARTMENTS)
        user.timezone = rng.choice(TIMEZONES)
        user.locale = rng.choice(LOCALES)
        user.mfa_enabled = rng.random() < 0.8
        user.jira_email_visible = rng.random() < 0.85
        if domain == CONTRACTOR_DOMAIN:
            user.claim_status = "unmanaged"
            if population != "unmanaged_contractor":
                user.populations += ("unmanaged_contractor",)

        base_products = _default_products(rng)
        bucket: str | None = None
        latest_days = 0
        if population == "api_user":
            user.platform_roles = [SITE_ADMIN]
            user.jira_email_visible = True
            join(user, "site-admins", "jira-software-users-acme", "jira-servicemanagement-users-acme")
            bucket = "active"
        elif population == "org_admin":
            user.platform_roles = [ORG_ADMIN]
            join(user, "jira-software-users-acme", "confluence-users-acme")
            bucket = _mixed_bucket(rng, index)
        elif population == "site_admin":
            user.platform_roles = [SITE_ADMIN]
            join(user, "site-admins", "jira-software-users-acme", "confluence-users-acme")
            bucket = _mixed_bucket(rng, index)
        elif population == "product_admin":
            join(user, "jira-software-users-acme", "confluence-users-acme")
            join(user, "jira-admins-acme" if index % 2 == 0 else "confluence-admins-acme")
            bucket = _mixed_bucket(rng, index)
        elif population == "app_service":
            user.app_type = "service"
            user.name = f"{rng.choice(('Backup', 'Reporting', 'Sync', 'Deploy'))} Service Account {index + 1}"
            join(user, "jira-software-users-acme")
            bucket = "active"
        elif population == "app_agent":
            user.app_type = "agent"
            user.name = f"Rovo Agent {index + 1}"
        elif population == "customer":
            pass  # portal-only: no groups, no product access
        elif population == "vip":
            join(user, "vip-executives", "confluence-users-acme")
            bucket = "inactive_180" if index == 0 else _mixed_bucket(rng, index)
        elif population == "idp_synced":
            user.scim_managed = True
            join(user, "idp-engineering", "confluence-users-acme")
            bucket = "inactive_90" if index == 0 else _mixed_bucket(rng, index)
        elif population == "unmanaged_contractor":
            join(user, *_group_names(base_products))
            bucket = ("inactive_90", "active")[index] if index < 2 else _mixed_bucket(rng, index)
        elif population == "jsm_agent":
            join(user, "jira-servicemanagement-users-acme")
            bucket = "active" if index % 3 != 2 else "inactive_90"
        elif population == "jira_active_confluence_dormant":
            join(user, "jira-software-users-acme", "confluence-users-acme")
            latest_days = rng.randint(1, 20)
            user.last_active[JIRA] = days_ago(latest_days)
            user.last_active[CONFLUENCE] = days_ago(rng.randint(200, 230))
        elif population in ("never_logged_in", "new_joiner"):
            join(user, *_group_names(base_products))
        elif population in ("suspended", "deactivated", "for_deletion"):
            join(user, *_group_names(base_products))
            bucket = "inactive_180" if population == "suspended" else "inactive_400"
        else:  # active and inactive_* buckets
            join(user, *_group_names(base_products))
            bucket = population

        if bucket is not None:
            products = state.user_products(user) or [JIRA]
            latest_days = give_activity(user, products, bucket)
            if bucket != population:
                user.populations += (bucket,)
        elif population == "jira_active_confluence_dormant":
            user.populations += ("active",)
        elif population in ("never_logged_in", "new_joiner"):
            user.populations += ("never_active",)

        if population == "new_joiner":
            user.added_to_org = days_ago(rng.randint(1, 13))
        elif population == "never_logged_in":
            user.added_to_org = days_ago(rng.randint(120, 1500))
        else:
            user.added_to_org = days_ago(latest_days + rng.randint(30, 1500))

        if population == "suspended":
            user.membership = "suspended"
        elif population == "deactivated":
            user.account_status = "inactive"
            user.deactivated_on = days_ago(rng.randint(10, 100))
        elif population == "for_deletion":
            user.account_status = "inactive"
            user.for_deletion = True
            user.deactivated_on = days_ago(rng.randint(1, 12))
            user.deletion_scheduled_at = state.clock.now() + timedelta(days=rng.randint(1, 13))
            state.pending_deletion.add(account_id)
        if population == "api_user":
            state.api_account_id = account_id

        user.populations = population_tuples.setdefault(user.populations, user.populations)
        state.users[account_id] = user
        state.user_order.append(account_id)

    _rename_specials(state)
    _seed_service_desk(state, rng, days_ago)
    return state


def _default_products(rng: random.Random) -> list[str]:
    products = [p for p, share in ((JIRA, 0.85), (CONFLUENCE, 0.8)) if rng.random() < share]
    return products or [JIRA]


def _group_names(products: list[str]) -> list[str]:
    names = {JIRA: "jira-software-users-acme", CONFLUENCE: "confluence-users-acme"}
    return [names[p] for p in products]


def _mixed_bucket(rng: random.Random, index: int) -> str:
    # The first member of a protected population is inactive so protection rules are exercised.
    if index == 0:
        return "inactive_180"
    return rng.choice(("active", "active", "inactive_30", "inactive_90", "inactive_180", "inactive_400"))


def _make_groups(state: OrgState, rng: random.Random) -> dict[str, Group]:
    user, admin_role = "atlassian/user", "atlassian/admin"
    specs: list[tuple[str, str | None, list[tuple[str, str]], list[tuple[str, str]], bool, bool]] = [
        # name, description, roles, default_for, external_synced, admin
        ("jira-software-users-acme", "Grants access to Jira",
         [(JIRA, user)], [(JIRA, user)], False, False),
        ("confluence-users-acme", "Grants access to Confluence",
         [(CONFLUENCE, user)], [(CONFLUENCE, user)], False, False),
        ("jira-servicemanagement-users-acme", "Grants agent access to JSM",
         [(JSM, user)], [(JSM, user)], False, False),
        ("site-admins", "Site administrators",
         [(JIRA, admin_role), (CONFLUENCE, admin_role), (JSM, admin_role)], [], False, True),
        ("jira-admins-acme", "Jira administrators",
         [(JIRA, admin_role)], [(JIRA, admin_role)], False, True),
        ("confluence-admins-acme", "Confluence administrators",
         [(CONFLUENCE, admin_role)], [(CONFLUENCE, admin_role)], False, True),
        ("vip-executives", "Executives: never auto-suspend",
         [(JIRA, user), (CONFLUENCE, user)], [], False, False),
        # Provisioned by the identity provider: read-only through the APIs (§9.8).
        ("idp-engineering", "Synced from Okta", [(JIRA, user)], [], True, False),
        ("marketing-team", None, [], [], False, False),
    ]  # fmt: skip
    groups = {}
    for name, description, roles, default_for, synced, admin in specs:
        group = Group(_uuid(rng), name, description)
        group.roles = list(roles)
        group.default_for = list(default_for)
        group.external_synced = synced
        group.admin = admin
        state.groups[group.id] = group
        state.group_order.append(group.id)
        groups[name] = group
    return groups


def _rename_specials(state: OrgState) -> None:
    active = [state.users[a] for a in state.user_order if state.users[a].populations[0] == "active"]
    for user, (marker, name, local) in zip(active, SPECIAL_NAMES, strict=False):
        user.name = name
        user.nickname = local.split(".")[0]
        user.email = f"{local}@{MANAGED_DOMAIN}"
        user.populations += (marker,)


def _seed_service_desk(state: OrgState, rng: random.Random, days_ago: Callable[[int], datetime]) -> None:
    state.service_desks = [
        {"id": "1", "projectId": "10000", "projectName": "IT Help Desk", "projectKey": "ITH"}
    ]
    state.request_types = [
        {"id": "25", "name": "Restore my access",
         "description": "Get access back after it was suspended for inactivity",
         "helpText": "Tell us which products you need.", "issueTypeId": "10100", "serviceDeskId": "1",
         "portalId": "1"},
        {"id": "26", "name": "Request new software", "description": "Ask for a new tool", "helpText": "",
         "issueTypeId": "10101", "serviceDeskId": "1", "portalId": "1"},
        {"id": "27", "name": "Get IT help", "description": "Anything else", "helpText": "",
         "issueTypeId": "10102", "serviceDeskId": "1", "portalId": "1"},
    ]  # fmt: skip
    suspended = [state.users[a] for a in state.user_order if state.users[a].populations[0] == "suspended"]
    active = [state.users[a] for a in state.user_order if state.users[a].populations[0] == "active"]
    seeds: list[tuple[User, str, str, str, bool]] = []
    for position, user in enumerate(suspended[:3]):
        status = "Resolved" if position == 2 else "Waiting for support"
        seeds.append(
            (
                user,
                "25",
                "Please restore my access",
                "I was suspended but I still need Jira.",
                status == "Resolved",
            )
        )
    if active:
        seeds.append((active[-1], "27", "Laptop will not boot", "Blue screen since Monday.", False))
    now = state.clock.now()
    for position, (user, type_id, summary, description, resolved) in enumerate(seeds):
        request = state.create_request("1", type_id, user.account_id, summary, description)
        request.created = days_ago(len(seeds) - position)
        request.status_history = [("Waiting for support", request.created)]
        request.visible_at = 0.0
        if type_id == "25" and not resolved:
            user.populations += ("restore_requester",)
        if resolved:
            request.status = "Resolved"
            request.status_history.append(("Resolved", now - timedelta(hours=3)))
    state.next_comment_id = 10000 + rng.randint(0, 99)
