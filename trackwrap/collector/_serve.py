"""Running the collector app on uvicorn: one process, one worker, until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from trackwrap.collector._app import create_app
from trackwrap.collector._config import CollectorConfig
from trackwrap.errors import ConfigError

__all__ = ["parse_listen", "serve"]

GRACEFUL_SHUTDOWN_S = 3


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8750`` for IPv6) as ``(host, port)``.

    Raises:
        ConfigError: not HOST:PORT with a port from 0 to 65535.
    """
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise ConfigError(f"--listen {text!r} is not HOST:PORT, e.g. 127.0.0.1:8750")
    return host, port


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every answer (headers and body written apart) waits for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return sock


def _check_tls(cert: Path | None, key: Path | None) -> None:
    if (cert is None) != (key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if cert is None or key is None:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot use {cert} and {key} for TLS: {exc}") from exc


def _log_to_stderr() -> None:
    log = logging.getLogger("trackwrap.collector")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("collector: %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _quiet(_signum: int, _frame: FrameType | None) -> None:
    """uvicorn re-raises the signal that stopped it; by then we have stopped cleanly."""


def serve(
    config: CollectorConfig,
    *,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    announce: Callable[[str], None],
) -> None:
    """Serve the collector on ``host:port`` until SIGTERM or SIGINT; ``announce`` gets the one
    line saying where (after the socket listens, so the port is real even for port 0).

    Raises:
        ConfigError: the address cannot be bound, or the TLS files are unusable.
    """
    import uvicorn

    _check_tls(tls_cert, tls_key)
    sock = _listen(host, port)
    bound_port = sock.getsockname()[1]
    scheme = "https" if tls_cert is not None else "http"
    shown = f"[{host}]" if ":" in host else host
    _log_to_stderr()
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), log_level="warning", access_log=False, lifespan="off",
        server_header=False, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    ))
    previous = {sig: signal.signal(sig, _quiet) for sig in (signal.SIGINT, signal.SIGTERM)}
    announce(f"collector {config.key.key_id} listening on {scheme}://{shown}:{bound_port} "
             f"(storage: {config.storage.describe()})")
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
