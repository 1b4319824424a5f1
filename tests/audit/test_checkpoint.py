"""Signed checkpoints: the C2SP note and checkpoint formats, keys, and malformed input."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoint import (
    CheckpointError,
    CheckpointSignatureError,
    NoteSigner,
    NoteVerifier,
    generate_key,
    load_signer,
    load_verifier,
    open_note,
    parse_and_verify_checkpoint,
    sign_checkpoint,
)

ROOT = bytes(range(32))
ORIGIN = "cchc.example.vn/phuong-ben-nghe"


def test_signed_note_known_answer() -> None:
    """The example key and note of the C2SP signed-note spec (and Go's sumdb/note)."""
    verifier = NoteVerifier.from_text(
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    )
    note = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
        "\n"
        "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
        "qdngotpRZb6KE6RyyBwJnAM=\n"
    )
    assert open_note(note, verifier).startswith("If you think")
    with pytest.raises(CheckpointSignatureError):
        open_note(note.replace("problem,", "problem;"), verifier)


def test_round_trip_and_format(keys: Any) -> None:
    cp = sign_checkpoint(keys.signer, ORIGIN, 42, ROOT)
    lines = cp.note.split("\n")
    assert lines[:4] == [ORIGIN, "42", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith(f"\u2014 {keys.verifier.name} ")
    raw_sig = base64.b64decode(lines[4].split(" ")[2])
    assert int.from_bytes(raw_sig[:4], "big") == keys.verifier.key_id and len(raw_sig) == 68
    parsed = parse_and_verify_checkpoint(cp.note, keys.verifier, origin=ORIGIN)
    assert (parsed.origin, parsed.size, parsed.root) == (ORIGIN, 42, ROOT)


def test_key_texts_round_trip(tmp_path: Path) -> None:
    skey, vkey = generate_key("ward.example")
    assert skey.startswith("PRIVATE+KEY+ward.example+")
    assert vkey.startswith("ward.example+")
    signer = NoteSigner.from_text(skey)
    assert signer.to_text() == skey and signer.verifier().to_text() == vkey
    (tmp_path / "k").write_text(skey + "\n")
    (tmp_path / "k.pub").write_text(vkey + "\n")
    assert load_signer(tmp_path / "k") == signer
    assert load_verifier(tmp_path / "k.pub") == signer.verifier()
    with pytest.raises(CheckpointError):
        load_verifier(tmp_path / "missing")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "name+zzzzzzzz+AAAA",
        "name+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
        "name+c74f20a3+not-base64!",
        "na me+c74f20a3+ARpc",
    ],
)
def test_bad_verifier_keys(text: str) -> None:
    with pytest.raises(CheckpointError) as info:
        NoteVerifier.from_text(text)
    assert info.value.kind == "malformed"


@pytest.mark.parametrize("name", ["", "a b", "a+b"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(CheckpointError):
        generate_key(name)


def test_other_keys_signatures_are_ignored_but_one_of_ours_is_required(
    keys: Any, other_keys: Any
) -> None:
    ours = sign_checkpoint(keys.signer, ORIGIN, 3, ROOT).note
    theirs = sign_checkpoint(other_keys.signer, ORIGIN, 3, ROOT).note
    both = ours + theirs.split("\n\n")[1]
    assert parse_and_verify_checkpoint(both, keys.verifier).size == 3
    with pytest.raises(CheckpointSignatureError) as info:
        parse_and_verify_checkpoint(theirs, keys.verifier)
    assert info.value.kind == "checkpoint_signature_invalid"


def test_forged_lines_fail(keys: Any) -> None:
    note = sign_checkpoint(keys.signer, ORIGIN, 3, ROOT).note
    for forged in (
        note.replace("\n3\n", "\n4\n"),
        note.replace(ORIGIN, ORIGIN + "x"),
        note.replace(base64.b64encode(ROOT).decode(), base64.b64encode(ROOT[::-1]).decode()),
    ):
        with pytest.raises(CheckpointSignatureError):
            parse_and_verify_checkpoint(forged, keys.verifier)


def _resign(keys: Any, body: str) -> str:
    sig = keys.signer.sign(body.encode())
    raw = keys.signer.key_id.to_bytes(4, "big") + sig
    return body + "\n\u2014 " + keys.signer.name + " " + base64.b64encode(raw).decode() + "\n"


@pytest.mark.parametrize(
    "body",
    [
        f"{ORIGIN}\n03\n{base64.b64encode(ROOT).decode()}\n",  # leading zero
        f"{ORIGIN}\n-3\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n3\n{base64.b64encode(ROOT[:31]).decode()}\n",  # short root
        f"{ORIGIN}\n3\nnot base64!\n",
        f"{ORIGIN}\n3\n",
        f"\n3\n{base64.b64encode(ROOT).decode()}\n",
        f"{ORIGIN}\n3\n{base64.b64encode(ROOT).decode()}\n\n",  # empty extension line
    ],
)
def test_malformed_bodies_fail_even_when_signed(keys: Any, body: str) -> None:
    with pytest.raises(CheckpointError) as info:
        parse_and_verify_checkpoint(_resign(keys, body), keys.verifier)
    assert info.value.kind == "malformed"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n.rstrip("\n"),  # truncated: no final newline
        lambda n: n.replace("\n\n", "\n"),  # no blank line
        lambda n: n.replace("\u2014 ", "- "),  # not an em dash
        lambda n: n[: n.rindex(" ") + 5] + "!!!!\n",  # bad base64 signature
        lambda n: n.replace("\n\u2014", "\n\u2014 x y"),
        lambda n: n + "\x00",
        lambda n: n.encode("utf-16"),
    ],
)
def test_malformed_notes_fail_closed(keys: Any, mangle: Any) -> None:
    note = sign_checkpoint(keys.signer, ORIGIN, 3, ROOT).note
    with pytest.raises(CheckpointError):
        parse_and_verify_checkpoint(mangle(note), keys.verifier)


def test_origin_must_match(keys: Any) -> None:
    note = sign_checkpoint(keys.signer, ORIGIN, 3, ROOT).note
    with pytest.raises(CheckpointError, match="not"):
        parse_and_verify_checkpoint(note, keys.verifier, origin="other.example/log")
