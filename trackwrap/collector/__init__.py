"""trackwrap.collector: the central HTTP service that witnesses laptops' audit ledgers.

Devices push sealed segments (``POST /v1/segments``); the collector checks that each continues
the chain it holds (``trackwrap.ledger.check_segment``), stores it with its records in one
transaction, and answers with a receipt signed by its own key, which the laptop keeps: from then
on truncating or rewriting that part of the ledger shows. It also diagnoses sessions
(``trackwrap.diagnose.build_diagnosis`` over the stored records), lists session summaries kept at
ingest time, and holds approvals that a person decides centrally (long-polled by the waiting
wrapper).

:func:`create_app` makes the Starlette app over a :class:`CollectorConfig`; :func:`serve` runs it
on uvicorn. Storage is a :class:`Storage`: :class:`SqliteStorage` (one file, the default) or
:class:`PostgresStorage` (``postgresql://…``), chosen by :func:`open_storage`. Tokens are made
with :func:`issue_token` and stored only as SHA-256. Starlette is imported with this package;
uvicorn when serving; psycopg when a PostgreSQL storage is opened.
"""

from trackwrap.collector._app import ApiProblem, create_app
from trackwrap.collector._chains import accept_segment, format_public_key, parse_public_key
from trackwrap.collector._config import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_INFLIGHT,
    MAX_WAIT_S,
    CollectorConfig,
    collector_key,
)
from trackwrap.collector._interface import (
    APPROVAL_STATES,
    OUTCOMES,
    Accept,
    Accepted,
    ApprovalRow,
    ChainRow,
    DeviceKey,
    Ingested,
    Scope,
    SessionQuery,
    Storage,
    TokenRecord,
)
from trackwrap.collector._metrics import Metrics
from trackwrap.collector._postgres import PostgresStorage
from trackwrap.collector._serve import parse_listen, serve
from trackwrap.collector._sqlite import SqliteStorage
from trackwrap.collector._storage import StorageChoice, open_storage
from trackwrap.collector._tokens import TOKEN_PREFIX, issue_token, parse_scopes, token_digest

__all__ = [
    "APPROVAL_STATES",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_INFLIGHT",
    "MAX_WAIT_S",
    "OUTCOMES",
    "TOKEN_PREFIX",
    "Accept",
    "Accepted",
    "ApiProblem",
    "ApprovalRow",
    "ChainRow",
    "CollectorConfig",
    "DeviceKey",
    "Ingested",
    "Metrics",
    "PostgresStorage",
    "Scope",
    "SessionQuery",
    "SqliteStorage",
    "Storage",
    "StorageChoice",
    "TokenRecord",
    "accept_segment",
    "collector_key",
    "create_app",
    "format_public_key",
    "issue_token",
    "open_storage",
    "parse_listen",
    "parse_public_key",
    "parse_scopes",
    "serve",
    "token_digest",
]
