"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A checkpoint commits to a tree size and root:

    <origin>\\n<size>\\n<base64 root>\\n
    \\n
    — <key name> <base64(4-byte key id ‖ signature)>\\n

Key id = the first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key). Keys are text:
verifier "<name>+<hex key id>+<base64(0x01 ‖ public key)>", signer
"PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.merkle import HASH_SIZE

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash, space
_NAME_RE = re.compile(r"[^\s+]+")
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,19}")
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class CheckpointError(ValueError):
    """A checkpoint or key that is malformed; `kind` is a stable code for reports."""

    kind = "malformed"


class CheckpointSignatureError(CheckpointError):
    """A well-formed checkpoint without a valid signature by the expected key."""

    kind = "checkpoint_signature_invalid"


def _b64decode(text: str, what: str) -> bytes:
    if not _B64_RE.fullmatch(text) or len(text) % 4:
        raise CheckpointError(f"{what} is not valid base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError(f"{what} is not valid base64") from exc


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise CheckpointError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """A public key that checks signatures of one name."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_text(cls, text: str) -> NoteVerifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise CheckpointError("verifier key must look like <name>+<hex id>+<base64 key>")
        name, hex_id, b64 = parts
        _check_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise CheckpointError("verifier key id must be 8 lowercase hex digits")
        raw = _b64decode(b64, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("verifier key is not an Ed25519 key")
        public = raw[1:]
        if key_id(name, public) != int(hex_id, 16):
            raise CheckpointError("verifier key id does not match the key")
        return cls(name, int(hex_id, 16), public)

    def to_text(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A private key that signs notes under one name. Keep it out of the database."""

    name: str
    key_id: int
    seed: bytes

    @classmethod
    def from_text(cls, text: str) -> NoteSigner:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise CheckpointError(
                "signing key must look like PRIVATE+KEY+<name>+<hex id>+<base64 key>"
            )
        _, _, name, hex_id, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, "signing key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("signing key is not an Ed25519 key")
        seed = raw[1:]
        public = _raw_public(Ed25519PrivateKey.from_private_bytes(seed).public_key())
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id) or key_id(name, public) != int(hex_id, 16):
            raise CheckpointError("signing key id does not match the key")
        return cls(name, int(hex_id, 16), seed)

    def to_text(self) -> str:
        encoded = _b64(bytes([ALG_ED25519]) + self.seed)
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{encoded}"

    def verifier(self) -> NoteVerifier:
        public = _raw_public(Ed25519PrivateKey.from_private_bytes(self.seed).public_key())
        return NoteVerifier(self.name, self.key_id, public)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def generate_key(name: str) -> tuple[str, str]:
    """A new Ed25519 key pair for `name`: (signing key text, verifier key text)."""
    _check_name(name)
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = _raw_public(private.public_key())
    kid = key_id(name, public)
    return NoteSigner(name, kid, seed).to_text(), NoteVerifier(name, kid, public).to_text()


def load_signer(path: str | Path) -> NoteSigner:
    """Read a signing key file written by `cchc audit keygen`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read signing key {path}: {exc}") from exc
    return NoteSigner.from_text(text)


def load_verifier(path: str | Path) -> NoteVerifier:
    """Read a verifier (public) key file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read verifier key {path}: {exc}") from exc
    return NoteVerifier.from_text(text)


@dataclass(frozen=True)
class Checkpoint:
    """A signed commitment to the first `size` entries of the log `origin`."""

    origin: str
    size: int
    root: bytes
    note: str
    extensions: tuple[str, ...] = ()

    @property
    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root, self.extensions)


def checkpoint_body(origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()) -> str:
    if not origin or "\n" in origin or origin != origin.strip():
        raise CheckpointError("origin must be one non-empty line without surrounding spaces")
    if size < 0 or len(root) != HASH_SIZE:
        raise CheckpointError("a checkpoint needs a size >= 0 and a 32-byte root")
    lines = [origin, str(size), _b64(root), *extensions]
    return "".join(line + "\n" for line in lines)


def sign_checkpoint(signer: NoteSigner, origin: str, size: int, root: bytes) -> Checkpoint:
    """Sign the checkpoint (origin, size, root) as a C2SP signed note."""
    body = checkpoint_body(origin, size, root)
    sig = signer.sign(body.encode())
    line = f"{SIG_PREFIX}{signer.name} {_b64(signer.key_id.to_bytes(4, 'big') + sig)}\n"
    return Checkpoint(origin, size, root, body + "\n" + line)


def parse_checkpoint_body(body: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """Origin, size, root and extension lines of a checkpoint body (no signature check)."""
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint body needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not origin or origin != origin.strip():
        raise CheckpointError("checkpoint origin line is empty or padded")
    if not _SIZE_RE.fullmatch(size_text) or int(size_text) >= 1 << 63:
        raise CheckpointError(f"checkpoint size {size_text!r} is not a decimal tree size")
    root = _b64decode(root_text, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise CheckpointError("checkpoint root is not 32 bytes")
    if any(not line for line in extensions):
        raise CheckpointError("checkpoint extension lines must not be empty")
    return origin, int(size_text), root, tuple(extensions)


def open_note(text: str | bytes, verifier: NoteVerifier) -> str:
    """The text of a C2SP signed note that carries a valid signature by `verifier`.

    Raises CheckpointError when the note is malformed and CheckpointSignatureError when no
    signature by the verifier's key checks out. Signatures by other keys are ignored, as the
    signed-note spec requires.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError("note is not UTF-8 text") from exc
    if "\r" in text or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CheckpointError("note contains control characters")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise CheckpointError("not a signed note: no blank line before the signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    matching: list[bytes] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError("signature line must start with an em dash and a space")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise CheckpointError("signature line must be '— <name> <base64>'")
        name, b64 = fields
        _check_name(name)
        raw = _b64decode(b64, "signature")
        if len(raw) < 5:
            raise CheckpointError("signature is too short")
        if name == verifier.name and int.from_bytes(raw[:4], "big") == verifier.key_id:
            matching.append(raw[4:])
    if not matching:
        raise CheckpointSignatureError(f"the note carries no signature by key {verifier.name}")
    if not any(verifier.verify(body.encode(), sig) for sig in matching):
        raise CheckpointSignatureError(f"the signature by {verifier.name} does not verify")
    return body


def parse_and_verify_checkpoint(
    text: str | bytes, verifier: NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Parse a signed checkpoint and check it carries a valid signature by `verifier`.

    Raises CheckpointError when the note or its body is malformed (or its origin is not
    `origin`) and CheckpointSignatureError when no signature by the verifier's key checks out.
    """
    try:
        body = open_note(text, verifier)
    except CheckpointSignatureError as exc:
        # Name the size when the body is readable, so reports can place the damage.
        raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        try:
            size = parse_checkpoint_body(raw[: raw.rfind("\n\n") + 1])[1]
        except CheckpointError:
            raise exc from None
        raise CheckpointSignatureError(f"checkpoint at size {size}: {exc}") from None
    cp_origin, size, root, extensions = parse_checkpoint_body(body)
    if origin is not None and cp_origin != origin:
        raise CheckpointError(f"checkpoint is for log {cp_origin!r}, not {origin!r}")
    note = text.decode("utf-8") if isinstance(text, bytes) else text
    return Checkpoint(cp_origin, size, root, note, extensions)
