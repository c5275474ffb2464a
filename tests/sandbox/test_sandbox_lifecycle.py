"""User-management API: privileges and the 14-day deletion grace state machine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def lifecycle(api: Any, account_id: str, action: str) -> Any:
    return api.post(f"/users/{account_id}/manage/lifecycle/{action}")


def v2_user(api: Any, account_id: str) -> Any:
    return api.get(api.v2(f"/users/{account_id}"))


def test_privileges_for_managed_unmanaged_and_scim_accounts(api: Any) -> None:
    managed = api.population("inactive_90", claim_status="managed")[0]
    body = api.get(f"/users/{managed.account_id}/manage").json()
    assert body["lifecycle.enablement"] == {"allowed": True}
    assert body["lifecycle.delete"] == {"allowed": True}
    contractor = api.population("unmanaged_contractor")[0]
    body = api.get(f"/users/{contractor.account_id}/manage", params={"privileges": "lifecycle.delete"}).json()
    assert list(body) == ["lifecycle.delete"]
    assert body["lifecycle.delete"]["allowed"] is False
    assert body["lifecycle.delete"]["reason"]["key"]
    scim = api.population("idp_synced")[0]
    body = api.get(f"/users/{scim.account_id}/manage").json()
    assert body["lifecycle.enablement"] == {"allowed": False, "reason": {"key": "externalDirectory.scim"}}


def test_profile(api: Any) -> None:
    user = api.population("active", claim_status="managed")[0]
    account = api.get(f"/users/{user.account_id}/manage/profile").json()["account"]
    assert account["account_id"] == user.account_id
    assert account["email"] == user.email
    assert "extended_profile" in account


def test_disable_and_enable(api: Any) -> None:
    user = api.population("inactive_180", claim_status="managed", scim_managed=False)[0]
    response = api.client.post(
        f"/users/{user.account_id}/manage/lifecycle/disable", headers=api.admin, json={"message": "Inactive"}
    )
    assert response.status_code == 204
    data = v2_user(api, user.account_id).json()["data"]
    assert (data["status"], data["accountStatus"]) == ("deactivated", "inactive")
    assert data["deactivatedOn"]
    assert lifecycle(api, user.account_id, "enable").status_code == 204
    assert v2_user(api, user.account_id).json()["data"]["status"] == "active"


def test_delete_grace_period_state_machine(api: Any) -> None:
    user = api.population("inactive_400", claim_status="managed", scim_managed=False)[0]
    groups = set(user.groups)
    start = api.state.now()
    assert lifecycle(api, user.account_id, "delete").status_code == 204
    data = v2_user(api, user.account_id).json()["data"]
    assert (data["status"], data["accountStatus"], data["forDeletion"]) == ("for_deletion", "inactive", True)
    assert user.deletion_scheduled_at == start + timedelta(days=14)

    refused = lifecycle(api, user.account_id, "enable")
    assert refused.status_code == 400
    assert refused.json()[0]["code"]
    assert "message" in refused.json()[0]
    assert user.for_deletion

    assert lifecycle(api, user.account_id, "cancel-delete").status_code == 204
    data = v2_user(api, user.account_id).json()["data"]
    assert (data["status"], data["forDeletion"]) == ("active", False)
    assert lifecycle(api, user.account_id, "cancel-delete").status_code == 400

    assert lifecycle(api, user.account_id, "delete").status_code == 204
    moved = api.client.post("/_sim/clock", json={"advance_days": 13})
    assert user.account_id not in moved.json()["deleted"]
    assert v2_user(api, user.account_id).status_code == 200
    moved = api.client.post("/_sim/clock", json={"now": (start + timedelta(days=14, hours=1)).isoformat()})
    assert user.account_id in moved.json()["deleted"]
    assert v2_user(api, user.account_id).status_code == 404
    assert api.get(f"/users/{user.account_id}/manage").status_code == 404
    assert all(user.account_id not in api.state.groups[g].members for g in groups)
    truth = api.client.get("/_sim/users", params={"accountId": user.account_id}).json()
    assert truth["users"] == []


def test_delete_success_code_knob(make_api: Any) -> None:
    api = make_api(lifecycle_delete_success_code=200)
    user = api.population("inactive_400", claim_status="managed", scim_managed=False)[0]
    response = lifecycle(api, user.account_id, "delete")
    assert response.status_code == 200
    assert response.json() == {"message": "Success"}


def test_unmanaged_and_scim_accounts_are_forbidden(api: Any) -> None:
    for user in (api.population("unmanaged_contractor")[0], api.population("idp_synced")[0]):
        for action in ("disable", "delete"):
            response = lifecycle(api, user.account_id, action)
            assert response.status_code == 403
            assert response.json()["key"] == "forbidden.action"
        assert user.account_status == "active"
        assert not user.for_deletion
    app = api.population("app_service")[0]
    assert lifecycle(api, app.account_id, "disable").status_code == 403


def test_unknown_account_and_action(api: Any) -> None:
    assert lifecycle(api, "nobody", "disable").status_code == 404
    user = api.population("active")[0]
    assert lifecycle(api, user.account_id, "explode").status_code == 404


def test_seeded_for_deletion_users_complete_when_the_clock_passes(api: Any) -> None:
    pending = api.population("for_deletion")
    latest = max(u.deletion_scheduled_at for u in pending)
    response = api.client.post("/_sim/clock", json={"now": latest.isoformat()})
    assert set(response.json()["deleted"]) == {u.account_id for u in pending}
