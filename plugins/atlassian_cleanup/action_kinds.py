"""Every kind of action this tool can plan, declared once.

Each :class:`ActionKind` says everything the rest of the package needs to know about one kind:
the value in the policy file and the plan, whether it writes to Atlassian, which stage the user
reaches, which seats it frees, how a restore undoes it, and how e-mails, reasons and the trigger
form word it. Other modules ask this registry (``KINDS[name]`` or the derived tuples below)
instead of spelling an action's name or repeating its properties, so adding a kind is one new
declaration here plus its tests and the step that carries it out.

It imports nothing, so the planner, the audit page and the Airflow UI can all use it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SeatEffect = Literal["none", "all", "listed_products"]


@dataclass(frozen=True)
class ActionKind:
    """One kind of planned action.

    :param name: the value in the policy file (``action``) and in the plan (``proposed_action``).
    :param policy_choice: whether an admin may choose it as the policy's ``action``.
    :param writes: whether it changes the account in Atlassian (what the safety caps count).
    :param lifecycle_action: whether it is the policy's action on an inactive user (the stage
        ``actioned`` records it as ``actioned_action``).
    :param stage_after: the user's stage once it succeeded (``None``: the stage does not change).
    :param seats: which seats it frees: every seat, the products listed in ``products_to_remove``,
        or none.
    :param restore_step: the restore call that undoes it (``None``: nothing to undo this way).
    :param done_label: how the audit and reasons say it happened ("Suspended").
    :param noun: the action as a noun in reasons ("suspension").
    :param form_label: the trigger form's label for this choice of ``action``.
    :param warning_phrase: completes "your Atlassian account will be ..." in warning e-mails.
    :param done_phrase: completes "... " in the e-mail telling a user what this tool did.
    :param api_call: the Atlassian call behind it, in the contract's words (for admins).
    """

    name: str
    policy_choice: bool = False
    writes: bool = False
    lifecycle_action: bool = False
    stage_after: str | None = None
    seats: SeatEffect = "none"
    restore_step: str | None = None
    done_label: str | None = None
    noun: str | None = None
    form_label: str | None = None
    warning_phrase: str | None = None
    done_phrase: str | None = None
    api_call: str | None = None


NONE = "none"
WARN = "warn"
SUSPEND = "suspend"
DEACTIVATE = "deactivate"
REMOVE_PRODUCT_ACCESS = "remove_product_access"
DELETE = "delete"
DELETE_NOTICE = "delete_notice"

#: In the order the plan's ``proposed_action`` values are documented and reported.
_DECLARATIONS: tuple[ActionKind, ...] = (
    ActionKind(NONE),
    ActionKind(WARN, stage_after="warned"),
    ActionKind(
        SUSPEND,
        policy_choice=True,
        writes=True,
        lifecycle_action=True,
        stage_after="actioned",
        seats="all",
        restore_step="restore_user",
        done_label="Suspended",
        noun="suspension",
        form_label="Suspend",
        warning_phrase="suspended: you will no longer be able to use Jira, Confluence or other "
        "Atlassian products of this organization",
        done_phrase="your Atlassian account was suspended in this organization",
        api_call="v2 directory suspend (POST …/directories/{directory}/users/{account}/suspend)",
    ),
    ActionKind(
        DEACTIVATE,
        policy_choice=True,
        writes=True,
        lifecycle_action=True,
        stage_after="actioned",
        seats="all",
        restore_step="enable_user",
        done_label="Deactivated",
        noun="deactivation",
        form_label="Deactivate (managed accounts; others are suspended)",
        warning_phrase="deactivated: you will no longer be able to log in to any Atlassian product",
        done_phrase="your Atlassian account was deactivated",
        api_call="user-management deactivate (POST /users/{account}/manage/lifecycle/disable)",
    ),
    ActionKind(
        REMOVE_PRODUCT_ACCESS,
        policy_choice=True,
        writes=True,
        lifecycle_action=True,
        stage_after="actioned",
        seats="listed_products",
        restore_step="add_group_member",
        done_label="Product access removed",
        noun="product access removal",
        form_label="Remove access to the inactive products",
        done_phrase="your access to some Atlassian products was removed",
        api_call="v2 group membership removal (DELETE …/groups/{group}/memberships/{account})",
    ),
    ActionKind(
        DELETE,
        writes=True,
        stage_after="pending_delete",
        seats="all",
        restore_step="cancel_delete",
        noun="deletion",
        warning_phrase="scheduled for deletion",
        api_call="user-management delete (POST /users/{account}/manage/lifecycle/delete)",
    ),
    ActionKind(DELETE_NOTICE),
)

#: Every kind by name.
KINDS: dict[str, ActionKind] = {kind.name: kind for kind in _DECLARATIONS}
#: What the planner may propose for a user (``proposed_action``).
PROPOSED_ACTIONS: tuple[str, ...] = tuple(KINDS)
#: What an admin may choose as the policy's ``action``.
POLICY_ACTIONS: tuple[str, ...] = tuple(k.name for k in _DECLARATIONS if k.policy_choice)
#: Kinds recorded as ``actioned_action`` when the stage becomes ``actioned``.
LIFECYCLE_ACTIONS: tuple[str, ...] = tuple(k.name for k in _DECLARATIONS if k.lifecycle_action)
#: Kinds that write to Atlassian, in the order they are reported (what the safety caps count).
WRITE_ACTIONS: tuple[str, ...] = tuple(k.name for k in _DECLARATIONS if k.writes)
#: Kinds that are e-mails only.
EMAIL_ACTIONS: tuple[str, ...] = (WARN, DELETE_NOTICE)
