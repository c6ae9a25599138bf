"""`renewals codec-server`: the codec server the Temporal Web UI decrypts payloads through
(renewals/encryption/server.py), on 127.0.0.1:settings.codec_server_port.

It needs RENEWALS_CODEC_SERVER_TOKEN (the bearer token every request must carry) and the configured
encryption keys; `--dev` runs without them for a local dev server's UI: the development keyring under
.data/, a random token for this run, and the UI's origin served from loopback without a token (it binds
only to a loopback address). `./run stack` runs the same in development mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
from collections.abc import Iterator, Sequence
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
    embedded: bool = False,
) -> uvicorn.Server:
    """The codec server for these settings, not yet serving; raises CodecServerRefused when it would
    decode for anyone (no token outside development, `dev` on a non-loopback address, no keys).

    `embedded`: it runs inside another process (the stack), which stops it (`should_exit`) and owns
    the signal handlers; otherwise uvicorn's own handle Ctrl-C."""
    import uvicorn

    from renewals.encryption import EncryptionCodec, Keyring
    from renewals.encryption.server import create_codec_app

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
        # Embedded, its lines go through the host process's handler; alone, through uvicorn's own.
        log_config=None if embedded else uvicorn.config.LOGGING_CONFIG,
    )
    if not embedded:
        return uvicorn.Server(config)

    class Embedded(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Embedded(config)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _codec_server(args: argparse.Namespace) -> int:
    from renewals.settings import get_settings

    settings = get_settings()
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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve())
    return 0
