"""trackwrap.crypto: Ed25519 device keys, key ids, DSSE PAE and signature checks.

The only home of ``cryptography`` (and, lazily, ``keyring``) in trackwrap.
"""

from trackwrap.crypto._dsse import pae
from trackwrap.crypto._keys import SigningKey, key_id_for, verify_ed25519
from trackwrap.crypto._keystore import KeyStore

__all__ = ["KeyStore", "SigningKey", "key_id_for", "pae", "verify_ed25519"]
