# ruff: noqa: S608 - statements are joined from this module's constant column lists and fixed
# conditions; every value goes in as a bound parameter.
"""The statements both backends run (``?`` placeholders; PostgreSQL's storage turns them into
``%s``) and the conversions between rows and records. Only the DDL differs between them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from trackwrap.collector._interface import (
    ApprovalRow,
    ChainRow,
    DeviceKey,
    Scope,
    SessionQuery,
    TokenRecord,
)
from trackwrap.errors import CollectorError
from trackwrap.ledger import ChainHead

__all__ = [
    "APPROVAL_COLUMNS",
    "CHAIN_COLUMNS",
    "TOKEN_COLUMNS",
    "approval_from_row",
    "approval_params",
    "approvals_query",
    "chain_from_row",
    "chain_params",
    "device_keys_from_text",
    "device_keys_text",
    "sessions_query",
    "token_from_row",
    "token_params",
]

TOKEN_COLUMNS = "id, digest, device, developer, scopes, created_ms, revoked_ms"  # noqa: S105
CHAIN_COLUMNS = (
    "device, session, head, developer, agent, role, first_ts_ms, last_ts_ms, events, segments, "
    "allowed, denied, held_for_approval, approval_requests, drift, closed, held_traces"
)
APPROVAL_COLUMNS = (
    "id, device, session, action_hash, request, state, decision, approver, requested_ms, "
    "expires_ms, decided_ms, published_ms"
)

UPSERT_CHAIN = (
    f"INSERT INTO chains ({CHAIN_COLUMNS}, updated_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (device, session) DO UPDATE SET head = excluded.head, "
    "developer = excluded.developer, agent = excluded.agent, role = excluded.role, "
    "first_ts_ms = excluded.first_ts_ms, last_ts_ms = excluded.last_ts_ms, "
    "events = excluded.events, segments = excluded.segments, allowed = excluded.allowed, "
    "denied = excluded.denied, held_for_approval = excluded.held_for_approval, "
    "approval_requests = excluded.approval_requests, drift = excluded.drift, "
    "closed = excluded.closed, held_traces = excluded.held_traces, "
    "updated_ms = excluded.updated_ms"
)
INSERT_CHAIN_IF_NONE = (
    f"INSERT INTO chains ({CHAIN_COLUMNS}, updated_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (device, session) DO NOTHING"
)
INSERT_SEGMENT = (
    "INSERT INTO segments (device, session, segment, first_seq, last_seq, hash, receipt, "
    "received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_EVENT = "INSERT INTO events (device, session, seq, body) VALUES (?, ?, ?, ?)"
SELECT_DUPLICATE = "SELECT receipt FROM segments WHERE device = ? AND hash = ?"
SELECT_CHAIN = f"SELECT {CHAIN_COLUMNS} FROM chains WHERE device = ? AND session = ?"
SELECT_CHAINS_OF_SESSION = (
    f"SELECT {CHAIN_COLUMNS} FROM chains WHERE session = ? AND segments > 0 ORDER BY device"
)
SELECT_BODIES = (
    "SELECT body FROM events WHERE device = ? AND session = ? AND seq <= ? ORDER BY seq"
)
SELECT_DIAGNOSIS = "SELECT through_seq, body FROM diagnoses WHERE device = ? AND session = ?"
UPSERT_DIAGNOSIS = (
    "INSERT INTO diagnoses (device, session, through_seq, body) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (device, session) DO UPDATE SET through_seq = excluded.through_seq, "
    "body = excluded.body WHERE diagnoses.through_seq < excluded.through_seq"
)
INSERT_TOKEN = f"INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
SELECT_TOKEN = f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE digest = ?"
SELECT_TOKENS = f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_ms, id"
REVOKE_TOKEN = "UPDATE tokens SET revoked_ms = coalesce(revoked_ms, ?) WHERE id = ?"  # noqa: S105
SELECT_DEVICE = "SELECT keys FROM devices WHERE device = ?"
INSERT_DEVICE = (
    "INSERT INTO devices (device, keys, registered_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (device) DO NOTHING"
)
UPDATE_DEVICE = "UPDATE devices SET keys = ? WHERE device = ?"
INSERT_APPROVAL = (
    f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
SELECT_APPROVAL = f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = ?"
DECIDE_APPROVAL = (
    "UPDATE approvals SET state = ?, decision = ?, approver = ?, decided_ms = ? "
    f"WHERE id = ? AND state = 'pending' RETURNING {APPROVAL_COLUMNS}"
)


def _int(value: object) -> int:
    if type(value) is not int:
        raise CollectorError(f"the collector's database holds {value!r} where a number belongs")
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _json(value: object) -> object:
    try:
        return json.loads(str(value))
    except ValueError as exc:
        raise CollectorError(f"the collector's database holds malformed JSON: {exc}") from exc


def token_from_row(row: Sequence[object]) -> TokenRecord:
    token_id, digest, device, developer, scopes, created, revoked = row
    try:
        parsed = tuple(Scope(s) for s in str(scopes).split(",") if s)
    except ValueError as exc:
        raise CollectorError(f"token {token_id} has an unknown scope: {exc}") from exc
    return TokenRecord(id=str(token_id), digest=str(digest), device=_opt_str(device),
                       developer=str(developer), scopes=parsed, created_ms=_int(created),
                       revoked_ms=_opt_int(revoked))


def token_params(token: TokenRecord) -> tuple[object, ...]:
    return (token.id, token.digest, token.device, token.developer,
            ",".join(str(s) for s in token.scopes), token.created_ms, token.revoked_ms)


def device_keys_text(keys: Sequence[DeviceKey]) -> str:
    return json.dumps([
        {"key_id": k.key_id, "public_key": k.public_raw.hex(),
         "registered_ms": k.registered_ms, "how": k.how} for k in keys
    ], separators=(",", ":"))


def device_keys_from_text(text: object) -> list[DeviceKey]:
    value = _json(text)
    if not isinstance(value, list):
        raise CollectorError("the collector's database holds a malformed device key list")
    keys = []
    for item in value:
        if not isinstance(item, dict):
            raise CollectorError("the collector's database holds a malformed device key")
        try:
            raw = bytes.fromhex(str(item["public_key"]))
        except (KeyError, ValueError) as exc:
            raise CollectorError("the collector's database holds a malformed device key"
                                 ) from exc
        keys.append(DeviceKey(key_id=str(item.get("key_id")), public_raw=raw,
                              registered_ms=_int(item.get("registered_ms")),
                              how=str(item.get("how"))))
    return keys


def chain_from_row(row: Sequence[object]) -> ChainRow:
    (device, session, head, developer, agent, role, first, last, events, segments, allowed,
     denied, held, requests, drift, _closed, traces) = row
    head_value = _json(head)
    traces_value = _json(traces)
    if not isinstance(head_value, dict) or not isinstance(traces_value, list):
        raise CollectorError(f"chain {device}/{session}: malformed head in the database")
    try:
        parsed_head = ChainHead.from_json(head_value)
    except ValueError as exc:
        raise CollectorError(f"chain {device}/{session}: {exc}") from exc
    return ChainRow(
        device=str(device), session=str(session), head=parsed_head,
        developer=_opt_str(developer), agent=_opt_str(agent), role=_opt_str(role),
        first_ts_ms=_opt_int(first), last_ts_ms=_opt_int(last), events=_int(events),
        segments=_int(segments), allowed=_int(allowed), denied=_int(denied),
        held_for_approval=_int(held), approval_requests=_int(requests), drift=_int(drift),
        held_traces=tuple(str(t) for t in traces_value),
    )


def chain_params(chain: ChainRow, *, now_ms: int) -> tuple[object, ...]:
    return (
        chain.device, chain.session, json.dumps(chain.head.to_json(), separators=(",", ":")),
        chain.developer, chain.agent, chain.role, chain.first_ts_ms, chain.last_ts_ms,
        chain.events, chain.segments, chain.allowed, chain.denied, chain.held_for_approval,
        chain.approval_requests, chain.drift, 1 if chain.closed else 0,
        json.dumps(list(chain.held_traces), separators=(",", ":")), now_ms,
    )


def approval_from_row(row: Sequence[object]) -> ApprovalRow:
    (approval_id, device, session, action_hash, request, state, decision, approver, requested,
     expires, decided, published) = row
    value = _json(request)
    if not isinstance(value, dict):
        raise CollectorError(f"approval {approval_id}: malformed request in the database")
    return ApprovalRow(
        id=str(approval_id), device=str(device), session=str(session),
        action_hash=str(action_hash), request=value, state=str(state),
        decision=_opt_str(decision), approver=_opt_str(approver), requested_ms=_int(requested),
        expires_ms=_int(expires), decided_ms=_opt_int(decided), published_ms=_int(published),
    )


def approval_params(row: ApprovalRow) -> tuple[object, ...]:
    return (row.id, row.device, row.session, row.action_hash,
            json.dumps(dict(row.request), separators=(",", ":"), ensure_ascii=False), row.state,
            row.decision, row.approver, row.requested_ms, row.expires_ms, row.decided_ms,
            row.published_ms)


def sessions_query(query: SessionQuery) -> tuple[str, list[object]]:
    """The SQL and parameters of ``GET /v1/sessions``."""
    where = ["segments > 0"]
    params: list[object] = []
    if query.developer is not None:
        where.append("developer = ?")
        params.append(query.developer)
    if query.agent is not None:
        where.append("agent = ?")
        params.append(query.agent)
    if query.since_ms is not None:
        where.append("last_ts_ms >= ?")
        params.append(query.since_ms)
    if query.until_ms is not None:
        where.append("first_ts_ms <= ?")
        params.append(query.until_ms)
    outcome_column: Mapping[str | None, str] = {
        "denied": "denied", "drift": "drift", "approval": "approval_requests"}
    if query.outcome is not None:
        where.append(f"{outcome_column[query.outcome]} > 0")
    params.append(query.limit)
    sql = (f"SELECT {CHAIN_COLUMNS} FROM chains WHERE {' AND '.join(where)} "
           "ORDER BY first_ts_ms DESC, device, session LIMIT ?")
    return sql, params


def approvals_query(state: str | None, *, now_ms: int, limit: int) -> tuple[str, list[object]]:
    """The SQL and parameters of ``GET /v1/approvals?state=``: a pending approval past its
    expiry counts as expired."""
    params: list[object]
    if state is None:
        where, params = "1 = 1", []
    elif state == "pending":
        where, params = "state = 'pending' AND expires_ms > ?", [now_ms]
    elif state == "expired":
        where, params = "state = 'expired' OR (state = 'pending' AND expires_ms <= ?)", [now_ms]
    else:
        where, params = "state = ?", [state]
    return (f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {where} "
            "ORDER BY requested_ms DESC, id LIMIT ?", [*params, limit])
