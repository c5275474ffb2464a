"""Canonical product keys.

Atlassian names the same product differently depending on the API: the v1 Admin API says
``jira-software`` / ``jira-servicedesk``, the v2 Admin API documents ``jira`` / ``confluence``, and
the Jira application-role API says ``jira-software`` / ``jira-servicedesk``. Policy, plans and audit
files use one canonical key per product so a per-product threshold means the same thing whatever
API reported the activity.
"""

from __future__ import annotations

JIRA = "jira"
CONFLUENCE = "confluence"
JSM = "jsm"

#: Products the policy documents thresholds for. Other products reported by Atlassian (Bitbucket,
#: Trello, ...) are kept under their own lower-case key and count towards overall activity.
KNOWN_PRODUCTS: tuple[str, ...] = (JIRA, CONFLUENCE, JSM)

PRODUCT_LABELS = {JIRA: "Jira", CONFLUENCE: "Confluence", JSM: "Jira Service Management"}

_ALIASES = {
    "jira": JIRA,
    "jira-software": JIRA,
    "jira-core": JIRA,
    "jira-work-management": JIRA,
    "jira-product-discovery": JIRA,
    "confluence": CONFLUENCE,
    "jsm": JSM,
    "jira-servicedesk": JSM,
    "jira-service-desk": JSM,
    "jira-servicemanagement": JSM,
    "jira-service-management": JSM,
}


def canonical_product(key: str) -> str:
    """Return the canonical key for an Atlassian product key (``jira-servicedesk`` -> ``jsm``)."""
    normalised = key.strip().lower()
    return _ALIASES.get(normalised, normalised)


def product_label(product: str) -> str:
    """How admins and users read a product key: "Jira Service Management" for ``jsm``; a key this
    tool does not know is title-cased ("jira-work-management" -> "Jira Work Management")."""
    key = canonical_product(product)
    return PRODUCT_LABELS.get(key) or key.replace("-", " ").title()


#: ARI owners that are not products a user is given access to (org and site scoped roles).
_NOT_PRODUCTS = frozenset({"platform", "identity"})


def product_of_resource(resource_id: str, owner: str | None = None) -> str | None:
    """The canonical product of a role assignment's resource, or None when it is not a product.

    Resources are ARIs (``ari:cloud:jira-software::site/<cloudId>``); when the id is opaque the
    assignment's ``resourceOwner`` names the product. Platform roles (``ari:cloud:platform::org/...``)
    grant no product.
    """
    parts = str(resource_id or "").split(":")
    if len(parts) >= 3 and parts[0] == "ari" and parts[2]:
        key = parts[2]
    elif owner:
        key = str(owner)
    else:
        return None
    product = canonical_product(key)
    return None if product in _NOT_PRODUCTS else product
