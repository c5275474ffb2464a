from __future__ import annotations

import pytest

from atlassian_cleanup.decisions.policy import LicensingPolicy, PolicyError, policy_from_dict
from atlassian_cleanup.reports.seats import seat_figures, seats_freed


def _user(account_id: str, action: str = "none", **extra: object) -> dict[str, object]:
    return {
        "account_id": account_id,
        "account_type": "atlassian",
        "status": "active",
        "product_last_active": {"jira": "2026-01-01T00:00:00Z", "confluence": None},
        "proposed_action": action,
        "products_to_remove": [],
        **extra,
    }


def test_counts_only_active_atlassian_accounts_per_product():
    rows = [
        _user("a"),
        _user("bot", account_type="app"),
        _user("cust", account_type="customer"),
        _user("gone", status="suspended"),
        _user("j", product_last_active={"jira-software": None}),
    ]
    figures = seat_figures(rows, {}, LicensingPolicy(), dry_run=False)
    # Aliases collapse to canonical keys; bots, customers and suspended accounts hold no seat.
    assert figures["before"] == {"confluence": 1, "jira": 2}
    assert figures["after"] == figures["before"]
    assert figures["total_reclaimed"] == 0
    assert figures["estimated_saving_per_month"] is None
    assert figures["priced"] is False


def test_live_run_frees_seats_only_for_done_writes():
    rows = [
        _user("s", "suspend"),
        _user("f", "suspend"),
        _user("r", "remove_product_access", products_to_remove=["confluence"]),
        _user("w", "warn"),
    ]
    results = {"s": "done", "f": "failed", "r": "done", "w": "done"}
    licensing = LicensingPolicy(billing="monthly", seat_price=8.6, product_seat_prices={"confluence": 6.05})
    figures = seat_figures(rows, results, licensing, dry_run=False)
    assert figures["reclaimed"] == {"confluence": 2, "jira": 1}
    assert figures["before"] == {"confluence": 4, "jira": 4}
    assert figures["after"] == {"confluence": 2, "jira": 3}
    assert figures["total_before"] - figures["total_after"] == figures["total_reclaimed"] == 3
    # monthly: 8.60 (jira) + 2 x 6.05 (confluence) per month, twelve times that per year.
    assert figures["estimated_saving_per_month"] == pytest.approx(20.70)
    assert figures["estimated_saving_per_year"] == pytest.approx(248.40)
    assert figures["saving_realised"] == "next monthly bill"
    assert figures["projected"] is False


def test_annual_billing_prices_are_per_year_and_realised_at_renewal():
    rows = [_user("s", "deactivate", product_last_active={"jira": None})]
    figures = seat_figures(
        rows, {"s": "planned"}, LicensingPolicy(billing="annual", seat_price=120), dry_run=True
    )
    assert figures["projected"] is True
    assert figures["estimated_saving_per_year"] == 120
    assert figures["estimated_saving_per_month"] == 10
    assert figures["saving_realised"] == "at renewal"


@pytest.mark.parametrize("result", ["failed", "skipped_changed", "reported", "not_run", "no_action", ""])
def test_results_other_than_done_or_planned_free_nothing(result):
    assert seats_freed(_user("x", "suspend"), result) == set()


def test_policy_licensing_section_is_validated_with_fixes():
    policy = policy_from_dict(
        {
            "licensing": {
                "billing": "annual",
                "currency": "EUR",
                "seat_price": 90,
                "product_seat_prices": {"jira-servicedesk": 200},
            }
        }
    )
    assert policy.licensing.price_for("jsm") == 200
    assert policy.licensing.price_for("confluence") == 90
    with pytest.raises(PolicyError) as caught:
        policy_from_dict({"licensing": {"billing": "weekly", "currency": "euro", "seat_price": -1}})
    text = str(caught.value)
    assert "licensing.billing" in text
    assert "use monthly or annual" in text
    assert "licensing.currency" in text
    assert "ISO 4217" in text
    assert "licensing.seat_price" in text
