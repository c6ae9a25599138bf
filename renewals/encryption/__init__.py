"""Personal data in Temporal (152-FZ): every payload encrypted with AES-256-GCM before it leaves the process.

- `keys`: the keyring (the current key for new payloads, older ones to decrypt), from settings or the
  development key file under .data/.
- `codec`: the Temporal payload codec.
- `converter`: the data converter every client, worker and test environment uses.
"""

from renewals.encryption.codec import EncryptionCodec, PayloadDecryptionError
from renewals.encryption.converter import data_converter, settings_converter
from renewals.encryption.keys import InvalidKey, Keyring, UnknownKey, dev_keyring

__all__ = [
    "EncryptionCodec",
    "InvalidKey",
    "Keyring",
    "PayloadDecryptionError",
    "UnknownKey",
    "data_converter",
    "dev_keyring",
    "settings_converter",
]
