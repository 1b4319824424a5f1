"""RFC 6962 Merkle math: known answers, the shared conformance vectors, and properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle

# RFC 6962 test inputs and the roots of the trees over the first k of them.
INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
          "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in INPUTS]


def all_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree hash of a tree, level by level (what the database stores)."""
    nodes = {(0, i): h for i, h in enumerate(leaves)}
    level, width = 0, len(leaves)
    while width > 1:
        for i in range(width // 2):
            nodes[(level + 1, i)] = merkle.node_hash(
                nodes[(level, 2 * i)], nodes[(level, 2 * i + 1)]
            )
        level, width = level + 1, width // 2
    return nodes


def naive_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


@pytest.mark.parametrize("k", range(9))
def test_known_roots(k: int) -> None:
    assert merkle.root_from_leaves(LEAVES[:k]).hex() == ROOTS[k]
    cr = merkle.CompactRange()
    for leaf in LEAVES[:k]:
        cr.append(leaf)
    assert cr.root().hex() == ROOTS[k]


def test_known_proofs_from_rfc_examples() -> None:
    nodes = all_nodes(LEAVES[:8])
    get = lambda level, index: nodes[(level, index)]  # noqa: E731
    # RFC 6962 §2.1.3: the audit path for d0 in the tree of 7 is [b, h, l] -> 3 hashes.
    assert len(merkle.inclusion_proof(0, 7, get)) == 3
    assert len(merkle.inclusion_proof(6, 7, get)) == 2
    # RFC 6962 §2.1.3: consistency 3 -> 7 is [c, d, g, l], 4 -> 7 is [l], 6 -> 7 is [i, j, k].
    assert merkle.consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]
    assert merkle.consistency_ranges(4, 7) == [(4, 7)]
    assert merkle.consistency_ranges(6, 7) == [(4, 6), (6, 7), (0, 4)]
    for old in range(1, 8):
        proof = merkle.consistency_proof(old, 7, get)
        root_old, root_new = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[7])
        assert merkle.verify_consistency(old, 7, proof, root_old, root_new)


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _cases(root: Path, kind: str) -> list[Path]:
    return sorted((root / kind).rglob("*.json"))


def _check_case(kind: str, case: dict[str, object]) -> bool:
    proof = [_b64(p) for p in case.get("proof") or []]  # type: ignore[attr-defined]
    c = case
    if kind == "inclusion":
        return merkle.verify_inclusion(
            _b64(c["leafHash"]),
            c["leafIdx"],
            c["treeSize"],
            proof,
            _b64(c["root"]),  # type: ignore[arg-type]
        )
    if kind == "consistency":
        return merkle.verify_consistency(
            c["size1"],
            c["size2"],
            proof,
            _b64(c["root1"]),
            _b64(c["root2"]),  # type: ignore[arg-type]
        )
    if kind == "subtreeinclusion":
        return merkle.verify_subtree_inclusion(
            _b64(c["leafHash"]),
            c["leafIdx"],
            c["start"],
            c["end"],
            proof,
            _b64(c["root"]),  # type: ignore[arg-type]
        )
    return merkle.verify_subtree_consistency(
        c["start"],
        c["end"],
        c["size"],
        proof,
        _b64(c["root1"]),
        _b64(c["root2"]),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "kind", ["inclusion", "consistency", "subtreeinclusion", "subtreeconsistency"]
)
def test_shared_conformance_vectors(rfc6962_dir: Path, kind: str) -> None:
    files = _cases(rfc6962_dir, kind)
    assert files, f"no {kind} cases under {rfc6962_dir}"
    wrong = []
    for path in files:
        case = json.loads(path.read_text())
        accepted = _check_case(kind, case)
        if accepted == bool(case.get("wantErr", False)):
            wrong.append(f"{path.relative_to(rfc6962_dir)} ({case.get('desc')})")
    assert not wrong, f"{len(wrong)} of {len(files)} {kind} cases decided wrongly: {wrong[:10]}"


def test_happy_vectors_match_our_proof_builder(rfc6962_dir: Path) -> None:
    """The accepted inclusion vectors are the proofs our builder makes over the RFC inputs."""
    nodes = all_nodes(LEAVES[:8])
    get = lambda level, index: nodes[(level, index)]  # noqa: E731
    checked = 0
    for path in _cases(rfc6962_dir, "inclusion"):
        case = json.loads(path.read_text())
        size, idx = case["treeSize"], case["leafIdx"]
        if (
            case.get("wantErr")
            or size > 8
            or case["root"] != base64.b64encode(merkle.root_from_leaves(LEAVES[:size])).decode()
        ):
            continue
        assert merkle.inclusion_proof(idx, size, get) == [_b64(p) for p in case["proof"] or []]
        checked += 1
    assert checked > 0


def test_bad_arguments_are_refused() -> None:
    get = lambda level, index: b"\0" * 32  # noqa: E731
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, 3, get)
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, 3, get)
    with pytest.raises(ValueError):
        merkle.subtree_hash(1, 3, get)
    with pytest.raises(ValueError):
        merkle.CompactRange(3, [b"\0" * 32])


# --- properties ---------------------------------------------------------------------------------

MAX = 3000


@st.composite
def trees(draw: st.DrawFn) -> list[bytes]:
    n = draw(st.integers(min_value=1, max_value=MAX))
    salt = draw(st.binary(min_size=0, max_size=4))
    return [merkle.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


def flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def inclusion_shape(index: int, size: int) -> tuple[bool, ...]:
    """For each audit path hash: does it lie left of the leaf? The verifier's computation is
    fixed by this shape, so a tree size with the same shape cannot be told apart by a proof;
    only the signed checkpoint binds the size."""
    return tuple(b <= index for _, b in merkle.inclusion_ranges(index, size))


def consistency_shape(old: int, new: int) -> tuple[bool, ...]:
    return tuple(b <= old for _, b in merkle.consistency_ranges(old, new))


SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(trees())
def test_incremental_root_equals_naive_root(leaves: list[bytes]) -> None:
    cr = merkle.CompactRange()
    created_nodes: dict[tuple[int, int], bytes] = {}
    for leaf in leaves:
        for level, index, h in cr.append(leaf):
            created_nodes[(level, index)] = h
    assert cr.root() == naive_root(leaves) == merkle.root_from_leaves(leaves)
    # The nodes an append reports are exactly the perfect subtrees of the tree.
    assert created_nodes == all_nodes(leaves)
    restored = merkle.CompactRange.from_bytes(cr.size, cr.to_bytes())
    assert restored.root() == cr.root()
    assert restored.size == cr.size and restored.hashes == cr.hashes


@pytest.mark.parametrize("size", [1, 5, 8, 1023])
def test_compact_range_from_bytes_refuses_a_blob_of_the_wrong_length(size: int) -> None:
    cr = merkle.CompactRange()
    for i in range(size):
        cr.append(merkle.leaf_hash(b"%d" % i))
    blob = cr.to_bytes()
    for bad in (blob[:-1], blob + b"\0", blob[:-32], blob + bytes(32)):
        with pytest.raises(ValueError, match="compact range"):
            merkle.CompactRange.from_bytes(size, bad)
    with pytest.raises(ValueError, match="compact range"):
        merkle.CompactRange.from_bytes(-1, b"")


@SETTINGS
@given(trees(), st.data())
def test_inclusion_proofs_verify_and_mutations_fail(
    leaves: list[bytes], data: st.DataObject
) -> None:
    size = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    nodes = all_nodes(leaves)
    proof = merkle.inclusion_proof(index, size, lambda lv, ix: nodes[(lv, ix)])
    root = naive_root(leaves[:size])
    leaf = leaves[index]
    assert merkle.verify_inclusion(leaf, index, size, proof, root)
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    assert not merkle.verify_inclusion(leaf, index, size, proof, flip(root, bit))
    assert not merkle.verify_inclusion(flip(leaf, bit), index, size, proof, root)
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="which")
        bad = list(proof)
        bad[which] = flip(bad[which], bit)
        assert not merkle.verify_inclusion(leaf, index, size, bad, root)
        assert not merkle.verify_inclusion(leaf, index, size, proof[:-1], root)
    assert not merkle.verify_inclusion(leaf, index, size, [*proof, root], root)
    for b in range(13):
        other = index ^ (1 << b)
        assert not merkle.verify_inclusion(leaf, other, size, proof, root)
        changed = size ^ (1 << b)
        same_shape = 0 <= index < changed and inclusion_shape(index, changed) == inclusion_shape(
            index, size
        )
        assert merkle.verify_inclusion(leaf, index, changed, proof, root) == same_shape


@SETTINGS
@given(trees(), st.data())
def test_consistency_proofs_verify_and_mutations_fail(
    leaves: list[bytes], data: st.DataObject
) -> None:
    new = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="new")
    old = data.draw(st.integers(min_value=1, max_value=new), label="old")
    nodes = all_nodes(leaves)
    proof = merkle.consistency_proof(old, new, lambda lv, ix: nodes[(lv, ix)])
    r1, r2 = naive_root(leaves[:old]), naive_root(leaves[:new])
    assert merkle.verify_consistency(old, new, proof, r1, r2)
    # The same proof through the generalised subtree verifier.
    assert merkle.verify_subtree_consistency(0, old, new, proof, r1, r2)
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    assert not merkle.verify_consistency(old, new, proof, flip(r1, bit), r2)
    assert not merkle.verify_consistency(old, new, proof, r1, flip(r2, bit))
    if proof:
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="which")
        bad = list(proof)
        bad[which] = flip(bad[which], bit)
        assert not merkle.verify_consistency(old, new, bad, r1, r2)
        assert not merkle.verify_consistency(old, new, proof[:-1], r1, r2)
    if old < new:
        assert not merkle.verify_consistency(old, new, [*proof, r1], r1, r2)
    for b in range(13):
        for o, n in ((old ^ (1 << b), new), (old, new ^ (1 << b))):
            shape_ok = (
                0 < o < n and old < new and consistency_shape(o, n) == consistency_shape(old, new)
            )
            assert merkle.verify_consistency(o, n, proof, r1, r2) == shape_ok, (o, n)
