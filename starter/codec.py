"""`renewals codec-server`: the codec server the Temporal Web UI decrypts payloads through
(renewals/encryption/server.py), on 127.0.0.1:settings.codec_server_port.

It needs RENEWALS_CODEC_SERVER_TOKEN (the bearer token every request must carry) and the configured
encryption keys; `--dev` runs without them for a local dev server's UI: the development keyring under
.data/, a random token for this run, and the UI's origin served from loopback without a token (it binds
only to a loopback address). `./run stack` runs the same in development mode.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Sequence
from ipaddress import ip_address
from typing import TYPE_CHECKING

from starter.commands import Commands
from starter.ops import err

if TYPE_CHECKING:
    import uvicorn

    from renewals.settings import Settings


class CodecServerRefused(ValueError):
    """The codec server would not be safe with these settings."""


def register(commands: Commands) -> None:
    codec = commands.add_parser(
        "codec-server",
        help="decrypt payloads for the Temporal Web UI (needs RENEWALS_CODEC_SERVER_TOKEN, or --dev)",
    )
    codec.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    codec.add_argument("--port", type=int, default=None, help="default: RENEWALS_CODEC_SERVER_PORT (8081)")
    codec.add_argument(
        "--dev",
        action="store_true",
        help="development: the local UI decodes without a token (loopback only; dev keyring allowed)",
    )
    codec.set_defaults(handler=_codec_server)


def codec_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    dev: bool = False,
    ui_origins: Sequence[str] | None = None,
    log_level: str = "info",
) -> uvicorn.Server:
    """The codec server for these settings, not yet serving; raises CodecServerRefused when it would
    decode for anyone (no token outside development, `dev` on a non-loopback address, no keys).
    Its lines go through the process's log handler (renewals.observability.logs), and the process owns
    the signals (renewals.shutdown): alone (`renewals codec-server`) or inside the stack."""
    import uvicorn

    from renewals.encryption import EncryptionCodec, Keyring
    from renewals.encryption.server import create_codec_app
    from renewals.shutdown import embedded_server

    configured = settings.codec_server_token.get_secret_value() if settings.codec_server_token else ""
    if dev and not _is_loopback(host):
        raise CodecServerRefused(
            f"--dev serves the local UI without a token: it binds only to loopback, not {host}"
        )
    if not configured and not dev:
        raise CodecServerRefused(
            "no RENEWALS_CODEC_SERVER_TOKEN configured: without one anybody reaching the server could "
            "decode personal data (use --dev for a local dev server's UI)"
        )
    keyring = Keyring.from_settings(settings) if dev else Keyring.configured(settings)
    if keyring is None:
        raise CodecServerRefused(
            "no encryption keys configured (RENEWALS_ENCRYPTION_KEYS or RENEWALS_ENCRYPTION_KEY_FILE)"
        )
    app = create_codec_app(
        EncryptionCodec(keyring),
        configured or secrets.token_urlsafe(32),
        list(ui_origins or [settings.ui_origin]),
        local_ui=dev,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port or settings.codec_server_port,
        log_level=log_level,
        log_config=None,
    )
    return embedded_server(config)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _codec_server(args: argparse.Namespace) -> int:
    from renewals.observability.logs import configure_logging
    from renewals.settings import get_settings
    from renewals.shutdown import run_until_stopped, serve

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        server = codec_server(settings, host=args.host, port=args.port, dev=args.dev)
    except CodecServerRefused as refused:
        err.print(f"[red]codec server not started:[/] {refused}")
        return 2
    config = server.config
    mode = " (development: the local UI decodes without a token)" if args.dev else ""
    err.print(
        f"Codec server on http://{config.host}:{config.port}{mode}; UI origin {settings.ui_origin}\n"
        f"Point the UI at it: temporal server start-dev --ui-codec-endpoint http://{config.host}:{config.port}"
    )
    run_until_stopped(serve(server))  # Ctrl-C or SIGTERM: a graceful stop, exit 0
    return 0
