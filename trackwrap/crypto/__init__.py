"""trackwrap.crypto: Ed25519 device keys, key ids, DSSE PAE, signature checks, execution tokens.

The only home of ``cryptography`` (and, lazily, ``keyring``) in trackwrap.
"""

from trackwrap.crypto._dsse import pae
from trackwrap.crypto._keys import SigningKey, key_id_for, verify_ed25519
from trackwrap.crypto._keystore import KeyStore
from trackwrap.crypto._secrets import SecretStore
from trackwrap.crypto._tokens import TOKEN_CLAIMS, TOKEN_PAYLOAD_TYPE, mint_token, verify_token

__all__ = [
    "TOKEN_CLAIMS",
    "TOKEN_PAYLOAD_TYPE",
    "KeyStore",
    "SecretStore",
    "SigningKey",
    "key_id_for",
    "mint_token",
    "pae",
    "verify_ed25519",
    "verify_token",
]
