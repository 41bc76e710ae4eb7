"""trackwrap.approvals: calls that need a person's approval, decided with signed decisions.

:class:`ApprovalDesk` asks once per identical call (session + action hash), expires, verifies
decisions (:func:`verify_decision`: trusted approver, approver group, ``separate_approver``, made
in time, for exactly this approval) and redeems an approval once; it works over an
:class:`ApprovalStore`, kept locally in the ledger by :class:`LedgerApprovals`.
``approvals.yaml`` (:func:`load_approval_settings`) says how long a call waits for a decision and
which channels hear about it; :func:`deliver` and :func:`notify_all` send an
:class:`ApprovalNotice` to a :class:`Channel` — a Standard Webhooks endpoint (signed with
:func:`sign_webhook`) or a Slack incoming webhook (:func:`slack_message`). httpx is imported
only when a notification is sent.
"""

from trackwrap.approvals._decision import (
    DECISION_PAYLOAD_TYPE,
    ApproverKey,
    SignedDecision,
    read_decision,
    sign_decision,
    verify_decision,
)
from trackwrap.approvals._desk import (
    DEFAULT_TTL_S,
    ApprovalDesk,
    ApprovalStore,
    CallForApproval,
    LedgerApprovals,
    RemoteApprovals,
    Standing,
    Status,
    decision_of,
    new_approval_id,
)
from trackwrap.approvals._notify import (
    ApprovalNotice,
    Channel,
    Delivery,
    decode_webhook_secret,
    deliver,
    notify_all,
    sign_webhook,
    slack_message,
    webhook_request,
)
from trackwrap.approvals._settings import (
    ApprovalSettings,
    load_approval_settings,
    parse_approval_settings,
)

__all__ = [
    "DECISION_PAYLOAD_TYPE",
    "DEFAULT_TTL_S",
    "ApprovalDesk",
    "ApprovalNotice",
    "ApprovalSettings",
    "ApprovalStore",
    "ApproverKey",
    "CallForApproval",
    "Channel",
    "Delivery",
    "LedgerApprovals",
    "RemoteApprovals",
    "SignedDecision",
    "Standing",
    "Status",
    "decision_of",
    "decode_webhook_secret",
    "deliver",
    "load_approval_settings",
    "new_approval_id",
    "notify_all",
    "parse_approval_settings",
    "read_decision",
    "sign_decision",
    "sign_webhook",
    "slack_message",
    "verify_decision",
    "webhook_request",
]
