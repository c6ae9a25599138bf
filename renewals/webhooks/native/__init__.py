"""Provider callbacks in each provider's own format, so no translating proxy is needed.

One module per provider turns its native payload into the service's `Callback` models and hands it
to `WebhookService` (claim + signal exactly once, matched by the provider's message id):

- `smsc.py`: SMSC.ru's status and incoming-SMS handler (form-encoded, with SMSC's md5/sha1 hash);
- `vk.py`: the VK Callback API (the `confirmation` handshake, the `secret` field, message events);
- `robot.py`: the voice robot vendor's call result (the format `renewals.channels.robot_http` names).

`routes.native_router` mounts them under `/webhooks/native/…`; `config.NativeCallbacks` holds their
keys (`RENEWALS_NATIVE_CALLBACKS__…`). Our own signed format (`/webhooks/<source>`) stays for the
sandbox and for integrators. This module imports nothing, so the settings can import `config`.
"""
