"""The codec server: the Temporal Web UI sends it the encrypted payloads of a journey's page and gets them
back in clear (`POST /decode`), or clear ones to encrypt when a user starts or signals a workflow from
the UI (`POST /encode`); the shape of temporalio/samples-python `encryption/codec_server.py`: a JSON
`temporal.api.common.v1.Payloads` in, the same out. The keys stay in this process; the UI's browser only
ever sees what this server agrees to decode.

Who may decode:
- every request must carry `Authorization: Bearer <token>` equal to the configured token (compared in
  constant time); without it the answer is 401 and holds no payload, so a person with UI access but no
  right to personal data sees only ciphertext.
- a request from a browser page of another origin is refused (403) even with a token, and only the UI's
  origin gets CORS headers (methods POST and OPTIONS; headers content-type, x-namespace, authorization
  and authorization-extras, the id token the UI adds beside the access token).
- `local_ui` (development only, `renewals codec-server --dev` and `./run stack`): a request from the UI's
  origin coming from this machine's loopback address is served without a token. The dev server's UI has
  no login and cannot send a token (its "pass the user access token" needs an https endpoint and a
  signed-in user), so a local developer would otherwise see only ciphertext. The trade-off: on that
  machine, any local process can forge the Origin header and decode; it can read the development key
  file under .data/ just as well, so nothing is lost, but never run `--dev` where the keys are real
  (the command refuses to bind anything but loopback with it).

The token is one static shared secret (settings `codec_server_token`). The Temporal UI itself can only
send its signed-in user's OIDC access token, which will never equal a static secret: in production the
codec server stands behind the insurer's authenticating proxy, which verifies the user's token and
their right to personal data and forwards the request with the shared token (see docs). Checking OIDC
tokens here (issuer, audience, a role claim) would be the next step; a static token keeps this small.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import ip_address

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from renewals.encryption.codec import PayloadDecryptionError
from renewals.encryption.keys import UnknownKey

log = logging.getLogger(__name__)
ALLOWED_HEADERS = ["content-type", "x-namespace", "authorization", "authorization-extras"]
Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def create_codec_app(
    codec: PayloadCodec, token: str, ui_origin: str | Sequence[str], *, local_ui: bool = False
) -> FastAPI:
    """The codec server's app: `token` is the bearer token every request needs; `ui_origin` the UI's
    origin(s), the only ones CORS allows; `local_ui` serves the UI's origin from loopback without a
    token (development only, see the module's docstring)."""
    if not token:
        raise ValueError("the codec server needs a token (an empty one would let anyone decode)")
    origins = [ui_origin] if isinstance(ui_origin, str) else list(ui_origin)
    app = FastAPI(
        title="Codec server: decrypts payloads for the Temporal Web UI",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=True,  # the UI's "include cross-origin credentials" (an auth proxy's cookie)
        max_age=600,
    )
    expected = token.encode()

    def refusal(request: Request) -> JSONResponse | None:
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return JSONResponse({"detail": "origin not allowed"}, status_code=403)
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected):
            return None
        if local_ui and origin is not None and _loopback(request):
            return None
        return JSONResponse(
            {"detail": "a valid bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def apply(request: Request, transform: Transform) -> Response:
        refused = refusal(request)
        if refused is not None:
            log.warning(
                "codec server refused %s %s (namespace %s): %s",
                request.method,
                request.url.path,
                request.headers.get("x-namespace", "-"),
                refused.status_code,
            )
            return refused
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"detail": "send application/json"}, status_code=415)
        try:
            payloads = json_format.Parse(await request.body(), Payloads())
        except (json_format.ParseError, UnicodeDecodeError):
            return JSONResponse({"detail": "the body is not a JSON Payloads message"}, status_code=400)
        try:
            result = await transform(payloads.payloads)
        except (UnknownKey, PayloadDecryptionError) as error:  # their messages name a key id, never data
            return JSONResponse({"detail": str(error)}, status_code=422)
        return Response(json_format.MessageToJson(Payloads(payloads=result)), media_type="application/json")

    @app.post("/encode")
    async def encode(request: Request) -> Response:
        return await apply(request, codec.encode)

    @app.post("/decode")
    async def decode(request: Request) -> Response:
        return await apply(request, codec.decode)

    return app


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
