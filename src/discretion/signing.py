"""Ed25519 keys that sign ledger checkpoints.

The private key stays outside the database (a file only the checkpointing replica reads, or a
secret store that writes one); anyone holding the public key can verify. A key is named by its
`key_id`, the first 16 hex digits of the SHA-256 of its raw public bytes.

Example:
    ```python
    from discretion.signing import generate_key, load_signer, load_verifier

    generate_key("checkpoint.key")            # writes checkpoint.key and checkpoint.key.pub
    signer = load_signer("checkpoint.key")
    verifier = load_verifier("checkpoint.key.pub")
    ```
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from discretion.errors import ConfigurationError, LedgerIntegrityError
from discretion.lineage import Checkpoint

__all__ = ["Signer", "Verifier", "generate_key", "load_signer", "load_verifier"]


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Signs checkpoint hashes with one Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = _key_id(key.public_key())

    def sign(self, checkpoint_hash: str) -> str:
        """The hex signature of a checkpoint's hash."""
        return self._key.sign(checkpoint_hash.encode()).hex()


class Verifier:
    """Checks checkpoint signatures against one or more public keys (old keys stay valid)."""

    def __init__(self, *keys: Ed25519PublicKey) -> None:
        if not keys:
            raise ConfigurationError("a verifier needs at least one public key")
        self._keys = {_key_id(key): key for key in keys}

    def __call__(self, checkpoint: Checkpoint) -> None:
        """Raise `LedgerIntegrityError` unless a known key signed this checkpoint."""
        if checkpoint.signature is None or checkpoint.key_id is None:
            raise LedgerIntegrityError(
                f"checkpoint {checkpoint.seq} is not signed, but signatures are being checked"
            )
        key = self._keys.get(checkpoint.key_id)
        if key is None:
            raise LedgerIntegrityError(
                f"checkpoint {checkpoint.seq} is signed by key {checkpoint.key_id}, which is not"
                " one of the public keys given"
            )
        try:
            key.verify(bytes.fromhex(checkpoint.signature), checkpoint.hash.encode())
        except (InvalidSignature, ValueError):
            raise LedgerIntegrityError(
                f"checkpoint {checkpoint.seq}'s signature does not verify with key"
                f" {checkpoint.key_id} (the checkpoint or its signature was forged)"
            ) from None


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the {what} at {path}: {exc.strerror}") from exc


def load_signer(path: str | Path) -> Signer:
    """A signer from an Ed25519 private key in a PEM file (PKCS#8, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"{path} is not an unencrypted PEM private key; make one with"
            " `discretion ledger keygen`"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} holds a {type(key).__name__}; checkpoints use Ed25519")
    return Signer(key)


def load_verifier(*paths: str | Path) -> Verifier:
    """A verifier from Ed25519 public keys in PEM files."""
    keys = []
    for path in paths:
        try:
            key = serialization.load_pem_public_key(_read(path, "public key"))
        except ValueError as exc:
            raise ConfigurationError(
                f"{path} is not a PEM public key; use the .pub file `discretion ledger keygen`"
                " wrote"
            ) from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigurationError(
                f"{path} holds a {type(key).__name__}; checkpoints use Ed25519"
            )
        keys.append(key)
    return Verifier(*keys)


def generate_key(path: str | Path) -> tuple[Path, Path]:
    """Write a new private key to `path` (mode 0600) and its public key to `path.pub`.

    Raises:
        ConfigurationError: `path` already exists (a key is never overwritten).
    """
    private_path = Path(path)
    public_path = private_path.with_name(private_path.name + ".pub")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(
            f"{private_path} already exists; a signing key is never overwritten"
        ) from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path
