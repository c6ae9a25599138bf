"""The encryption keys: AES-256 keys by key id, the current one encrypting new payloads.

A key is written `id:base64(32 bytes)`. Settings give them as a list (`RENEWALS_ENCRYPTION_KEYS`, first =
current) and/or a key file (`RENEWALS_ENCRYPTION_KEY_FILE`: a JSON list of `{"id", "key"}` objects or
`id:base64` strings, or the same one per line). Keys named in settings come first.

Rotation: put the new key first and keep the old ones after it. New payloads are encrypted with the new
key; histories written with an old one still decrypt (running journeys replay them) as long as that key is
listed. An old key can be dropped once no open workflow and no history kept by the namespace's retention
period uses it. Errors name a key's id, never its material.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from renewals.settings import Settings

KEY_BYTES = 32  # AES-256
DEV_KEY_FILE = "encryption-keys.json"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class InvalidKey(ValueError):
    """A configured key is malformed (the message names the key id, never the key)."""


class UnknownKey(KeyError):
    """A payload names a key id the keyring does not hold."""

    def __init__(self, key_id: str, known: Iterable[str]) -> None:
        self.key_id = key_id
        known_ids = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"payload encrypted with key id {key_id!r}, which is not configured (configured: {known_ids}); "
            "list it after the current key in RENEWALS_ENCRYPTION_KEYS or the key file"
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Keyring:
    """The keys by id; `current` is the id new payloads are encrypted with."""

    current: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise InvalidKey(f"the current encryption key {self.current!r} is not in the keyring")
        for key_id, key in self.keys.items():
            _check(key_id, key)

    def __repr__(self) -> str:  # never the key material
        return f"Keyring(current={self.current!r}, ids={list(self.keys)!r})"

    def key(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise UnknownKey(key_id, self.keys) from None

    @property
    def ids(self) -> list[str]:
        return list(self.keys)

    def rotated(self, key_id: str, key: bytes) -> Keyring:
        """This keyring with `key_id` as the new current key (the others kept to decrypt)."""
        if key_id in self.keys and self.keys[key_id] != key:
            raise InvalidKey(f"encryption key {key_id!r} is already in the keyring with other material")
        return Keyring(
            current=key_id, keys={key_id: key, **{k: v for k, v in self.keys.items() if k != key_id}}
        )

    def without(self, key_id: str) -> Keyring:
        """This keyring with an old key dropped (it can no longer decrypt what it encrypted)."""
        if key_id == self.current:
            raise InvalidKey(f"cannot drop the current encryption key {key_id!r}")
        return Keyring(current=self.current, keys={k: v for k, v in self.keys.items() if k != key_id})

    def to_lines(self) -> list[str]:
        """`id:base64` strings, current first (the settings format)."""
        return [f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in self.keys.items()]

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        """A keyring of one new random key."""
        key_id = key_id or f"k-{secrets.token_hex(4)}"
        return cls(current=key_id, keys={key_id: secrets.token_bytes(KEY_BYTES)})

    @classmethod
    def parse(cls, entries: Iterable[str | Mapping[str, Any]]) -> Keyring:
        """Keys as `id:base64` strings or `{"id", "key"}` objects, the first one current."""
        keys: dict[str, bytes] = {}
        for entry in entries:
            key_id, key = _parse_entry(entry)
            if key_id in keys and keys[key_id] != key:
                raise InvalidKey(f"encryption key {key_id!r} is given twice with different material")
            keys.setdefault(key_id, key)
        if not keys:
            raise InvalidKey("no encryption key given")
        return cls(current=next(iter(keys)), keys=keys)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        return cls.parse(read_key_file(path))

    @classmethod
    def configured(cls, settings: Settings) -> Keyring | None:
        """The keys named in settings (list and key file), or None when none are."""
        entries: list[str | Mapping[str, Any]] = [k.get_secret_value() for k in settings.encryption_keys]
        if settings.encryption_key_file is not None:
            entries.extend(read_key_file(settings.encryption_key_file))
        return cls.parse(entries) if entries else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """The configured keys; without any, the development keyring under `settings.data_dir`."""
        return cls.configured(settings) or dev_keyring(settings.data_dir)


def dev_keyring(data_dir: Path) -> Keyring:
    """The development keyring: data_dir/encryption-keys.json, made (mode 0600) on first use, then reused."""
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        keyring = Keyring.generate(f"dev-{secrets.token_hex(4)}")
        entries = [
            {"id": key_id, "key": base64.b64encode(key).decode()} for key_id, key in keyring.keys.items()
        ]
        text = json.dumps(entries, indent=2)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(text + "\n")
            with contextlib.suppress(FileExistsError):  # a concurrent first run keeps the file that won
                os.link(tmp, path)  # atomic
        finally:
            tmp.unlink(missing_ok=True)
    return Keyring.from_file(path)


def read_key_file(path: Path) -> list[str | Mapping[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidKey(f"cannot read the encryption key file {path}: {error.strerror}") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidKey(f"the encryption key file {path} is not valid JSON") from None
        if not isinstance(data, list):
            raise InvalidKey(f"the encryption key file {path} must hold a JSON list")
        return data
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _parse_entry(entry: str | Mapping[str, Any]) -> tuple[str, bytes]:
    if isinstance(entry, str):
        key_id, sep, encoded = entry.strip().partition(":")
        if not sep:
            raise InvalidKey("an encryption key must be written 'id:base64' (an entry has no ':')")
    elif (
        isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and isinstance(entry.get("key"), str)
    ):
        key_id, encoded = entry["id"], entry["key"]
    else:
        raise InvalidKey('an encryption key entry must be "id:base64" or {"id": ..., "key": ...}')
    key_id = key_id.strip()
    if not _KEY_ID.fullmatch(key_id):
        raise InvalidKey(f"invalid encryption key id {key_id[:64]!r} (letters, digits, '.', '_', '-')")
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey(f"encryption key {key_id!r} is not valid base64") from None
    _check(key_id, key)
    return key_id, key


def _check(key_id: str, key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise InvalidKey(
            f"encryption key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES} "
            "(make one with: python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
        )
