"""The OpenAPI 3.1 description of the collector's HTTP API (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from trackwrap import __version__

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = schema if schema is not None else _ERROR
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _query(name: str, description: str, *, kind: str = "string",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": kind}}


_AUTH_ERRORS = {
    "401": _answer("no token, an unknown one or a revoked one"),
    "403": _answer("the token lacks the scope, or names another device or person"),
}
_APPROVAL = {"$ref": "#/components/schemas/Approval"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_document(*, max_body: int) -> dict[str, Any]:
    """The API description, with this collector's body cap."""
    object_schema: dict[str, Any] = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trackwrap collector",
            "version": __version__,
            "description": (
                "Receives the sealed segments of developer laptops' audit ledgers, checks that "
                "each continues its chain, stores it and answers with a signed receipt; "
                "diagnoses sessions; holds approvals that a person decides centrally. Errors "
                f'are {{"error": CODE, "detail": "…"}}. Request bodies are capped at {max_body} '
                "bytes (413); beyond the concurrent ingest limit the answer is 503 with "
                "Retry-After."),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "detail"], "properties": {
                    "error": {"type": "string"}, "detail": {"type": "string"},
                    "expected_seq": {"type": "integer"},
                    "devices": {"type": "array", "items": {"type": "string"}}}},
                "Segment": {"type": "object",
                            "required": ["session", "segment", "first_seq", "records", "hash",
                                         "public_key"],
                            "properties": {
                                "session": {"type": "string"}, "segment": {"type": "integer"},
                                "first_seq": {"type": "integer"},
                                "records": {"type": "array", "items": {"type": "string"}},
                                "hash": {"type": "string"},
                                "public_key": {"type": "string",
                                               "description": "ed25519:<base64 raw key>"}}},
                "Ingested": {"type": "object", "properties": {
                    "receipt": {"type": "string", "description": "DSSE envelope (JSON text)"},
                    "head": object_schema, "duplicate": {"type": "boolean"}}},
                "Approval": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "state": {"enum": ["pending", "approved", "denied", "expired"]},
                    "device": {"type": "string"}, "session": {"type": "string"},
                    "action_hash": {"type": "string"}, "request": object_schema,
                    "requested_ms": {"type": "integer"}, "expires_ms": {"type": "integer"},
                    "decision": {"type": ["string", "null"]},
                    "approver": {"type": ["string", "null"]},
                    "decided_ms": {"type": ["integer", "null"]}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {
                "summary": "Liveness and storage reachability.", "security": [],
                "responses": {"200": _answer("ok", object_schema),
                              "503": _answer("the storage does not answer")}}},
            "/metrics": {"get": {
                "summary": "Prometheus counters.", "security": [],
                "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
            "/v1/collector": {"get": {
                "summary": "The key that signs receipts, for clients to pin.", "security": [],
                "responses": {"200": _answer("key id and public key", object_schema)}}},
            "/v1/segments": {"post": {
                "summary": "Push one sealed segment (scope ingest).",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Segment"}}}},
                "responses": {
                    "200": _answer("stored (or held already: duplicate true, same receipt)",
                                   {"$ref": "#/components/schemas/Ingested"}),
                    "400": _answer("not JSON"), **_AUTH_ERRORS,
                    "409": _answer("GAP, FORK or CLOSED; expected_seq says where to resume"),
                    "413": _answer("body over the cap"),
                    "422": _answer("MALFORMED, HASH_MISMATCH, INVALID or NOT_SEALED"),
                    "503": _answer("too many ingest requests at once (Retry-After) or storage "
                                   "unavailable")}}},
            "/v1/diagnose/session": {"get": {
                "summary": "The diagnosis of one session, plus what the collector witnessed "
                           "(scope read).",
                "parameters": [_query("id", "session id", required=True),
                               _query("device", "device, when two devices have the session")],
                "responses": {"200": _answer("diagnosis", object_schema), **_AUTH_ERRORS,
                              "404": _answer("no such session"),
                              "409": _answer("AMBIGUOUS: several devices; give device=")}}},
            "/v1/sessions": {"get": {
                "summary": "Session summaries, newest first (scope read).",
                "parameters": [
                    _query("developer", "the developer of the device's token"),
                    _query("agent", "the agent named by the session's genesis"),
                    _query("since", "ms since the epoch: sessions active since", kind="integer"),
                    _query("until", "ms since the epoch: sessions started until",
                           kind="integer"),
                    _query("outcome", "denied, drift or approval"),
                    _query("limit", "at most this many (default 500)", kind="integer")],
                "responses": {"200": _answer("{sessions: [...]}", object_schema),
                              "400": _answer("a bad filter"), **_AUTH_ERRORS}}},
            "/v1/approvals": {
                "post": {
                    "summary": "Publish an approval request (scope ingest; idempotent by id).",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": object_schema}}},
                    "responses": {"201": _answer("published", _APPROVAL),
                                  "200": _answer("held already (duplicate)", _APPROVAL),
                                  **_AUTH_ERRORS,
                                  "409": _answer("the id is held with another request"),
                                  "422": _answer("malformed")}},
                "get": {
                    "summary": "List approvals (scope read or approve).",
                    "parameters": [_query("state", "pending, approved, denied or expired")],
                    "responses": {"200": _answer("{approvals: [...]}", object_schema),
                                  **_AUTH_ERRORS}}},
            "/v1/approvals/{id}": {"get": {
                "summary": "One approval; with wait=SECONDS (at most 30) answer once it is no "
                           "longer pending or the wait is over.",
                "parameters": [_ID, _query("wait", "seconds to wait", kind="number")],
                "responses": {"200": _answer("the approval", _APPROVAL), **_AUTH_ERRORS,
                              "404": _answer("no such approval")}}},
            "/v1/approvals/{id}/decision": {"post": {
                "summary": "Decide an approval with a signed decision (scope approve).",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["envelope"], "properties": {
                        "envelope": {"type": "string"}}}}}},
                "responses": {"200": _answer("decided", _APPROVAL), **_AUTH_ERRORS,
                              "404": _answer("no such approval"),
                              "409": _answer("EXPIRED or ALREADY_DECIDED"),
                              "422": _answer("not a decision for this approval")}}},
        },
    }
