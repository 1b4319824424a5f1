"""RFC 6962 / RFC 9162 Merkle tree math: hashes, compact ranges, proofs and their verification.

Pure functions over hashes. A perfect subtree is addressed as (level, index): it covers the
leaves [index * 2**level, (index + 1) * 2**level). Stores hand the proof builders a
`get_node(level, index)` callback that returns such a hash; any other range a proof needs is
folded from O(log n) perfect ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

GetNode = Callable[[int, int], bytes]
NodeId = tuple[int, int]
Range = tuple[int, int]


def leaf_hash(body: bytes) -> bytes:
    """SHA-256(0x00 ‖ body): the hash of one entry."""
    return hashlib.sha256(b"\x00" + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 6962 splits a tree."""
    if n < 2:
        raise ValueError("a tree of fewer than two leaves has no split point")
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) straight from the RFC 6962 definition (recursive; O(n) hashes)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(root_from_leaves(leaf_hashes[:k]), root_from_leaves(leaf_hashes[k:]))


def is_valid_subtree(start: int, end: int) -> bool:
    """[start, end) is a node of some RFC 6962 tree: non-empty, and start is a multiple of the
    smallest power of two that is at least its size."""
    if not 0 <= start < end:
        return False
    size = end - start
    return start % (1 << (size - 1).bit_length()) == 0


def perfect_ranges(begin: int, end: int) -> list[NodeId]:
    """The maximal perfect subtrees covering [begin, end), left to right, as (level, index)."""
    if not 0 <= begin <= end:
        raise ValueError(f"bad range [{begin}, {end})")
    out: list[NodeId] = []
    while begin < end:
        size = (1 << (end.bit_length() - 1)) if begin == 0 else begin & -begin
        while size > end - begin:
            size >>= 1
        level = size.bit_length() - 1
        out.append((level, begin >> level))
        begin += size
    return out


def perfect_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree from its 2**k leaf hashes, pairing level by level."""
    n = len(leaf_hashes)
    if n == 0 or n & (n - 1):
        raise ValueError(f"a perfect subtree has a power-of-two number of leaves, not {n}")
    level = list(leaf_hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """H(h0, H(h1, ... H(h[-2], h[-1]))): a valid subtree's hash from its perfect pieces."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def subtree_hash(begin: int, end: int, get_node: GetNode) -> bytes:
    """MTH of the leaves [begin, end) for a valid subtree (a perfect one, or the right edge of a
    tree), from O(log n) perfect-subtree hashes."""
    if not is_valid_subtree(begin, end):
        raise ValueError(f"[{begin}, {end}) is not a subtree of an RFC 6962 tree")
    return fold_right([get_node(level, index) for level, index in perfect_ranges(begin, end)])


def nodes_for(ranges: Sequence[Range]) -> list[NodeId]:
    """Every perfect node the hashes of `ranges` are folded from (to prefetch them at once)."""
    seen: dict[NodeId, None] = {}
    for begin, end in ranges:
        for node in perfect_ranges(begin, end):
            seen[node] = None
    return list(seen)


class CompactRange:
    """The perfect subtrees covering [0, size): all an append needs, O(log n) hashes.

    `hashes` holds one hash per set bit of `size`, the largest subtree first.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {size.bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("compact range hashes must be 32 bytes")
        self.size = size
        self.hashes = list(hashes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        # Every append parses one: the whole-length check stands for __init__'s per-hash one.
        if size < 0 or len(blob) != HASH_SIZE * size.bit_count():
            raise ValueError(
                f"a compact range of size {size} is {size.bit_count()} hashes, "
                f"not {len(blob)} bytes"
            )
        tree = cls.__new__(cls)
        tree.size = size
        tree.hashes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        return tree

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    def nodes(self) -> list[NodeId]:
        """(level, index) of each hash, in order."""
        return perfect_ranges(0, self.size)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the perfect subtrees this completes, as (level, index,
        hash), the leaf itself (level 0) first."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        index = self.size
        created = [(0, index, leaf)]
        h, level, m = leaf, 0, index
        while m & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            m >>= 1
            created.append((level, m, h))
        self.hashes.append(h)
        self.size += 1
        return created

    def root(self) -> bytes:
        return fold_right(self.hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)


# --- proofs -----------------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes form the audit path of leaf `index` in a tree of `size` leaves
    (RFC 9162 §2.1.3.1), nearest the leaf first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    out: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = lo + split_point(hi - lo)
        if index < k:
            out.append((k, hi))
            hi = k
        else:
            out.append((lo, k))
            lo = k
    out.reverse()
    return out


def _subtree_walk(start: int, end: int, size: int) -> tuple[list[tuple[str, Range]], bool, Range]:
    """The path from the root of a tree of `size` leaves down to the subtree [start, end).

    Returns the steps top-down, each (kind, sibling range), whether the node the walk ends at
    is the subtree itself (True) or a part of it the verifier must be given (False), and that
    node.
    Kinds: "left" (the walk goes left; the sibling lies after the subtree), "right" (it goes
    right; the sibling lies before the subtree) and "split" (the subtree covers the left child
    and part of the right one; the sibling is inside the subtree).
    """
    steps: list[tuple[str, Range]] = []
    lo, hi, s, whole = 0, size, start, True
    while (s, end) != (lo, hi):
        k = lo + split_point(hi - lo)
        if end <= k:
            steps.append(("left", (k, hi)))
            hi = k
        elif s >= k:
            steps.append(("right", (lo, k)))
            lo = k
        else:
            steps.append(("split", (lo, k)))
            lo = s = k
            whole = False
    return steps, whole, (lo, hi)


def subtree_consistency_ranges(start: int, end: int, size: int) -> list[Range]:
    """The ranges whose hashes prove that the subtree [start, end) is part of the tree of
    `size` leaves; with start == 0 this is RFC 9162's consistency proof (§2.1.4.1)."""
    if not is_valid_subtree(start, end) or end > size:
        raise ValueError(f"[{start}, {end}) is not a subtree of a tree of size {size}")
    steps, whole, last = _subtree_walk(start, end, size)
    out = [rng for _, rng in steps]
    if not whole:
        # The walk stopped at the right-hand part of the subtree; the verifier needs its hash.
        out.append(last)
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[Range]:
    if not 0 < old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    return subtree_consistency_ranges(0, old, new)


def inclusion_proof(index: int, size: int, get_node: GetNode) -> list[bytes]:
    return [subtree_hash(a, b, get_node) for a, b in inclusion_ranges(index, size)]


def consistency_proof(old: int, new: int, get_node: GetNode) -> list[bytes]:
    return [subtree_hash(a, b, get_node) for a, b in consistency_ranges(old, new)]


def subtree_consistency_proof(start: int, end: int, size: int, get_node: GetNode) -> list[bytes]:
    return [subtree_hash(a, b, get_node) for a, b in subtree_consistency_ranges(start, end, size)]


# --- verification -----------------------------------------------------------------------------


def _all_hashes(proof: Sequence[bytes]) -> bool:
    return all(isinstance(p, bytes) and len(p) == HASH_SIZE for p in proof)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show leaf hash `leaf` at `index` in the tree of `size`
    leaves whose root is `root`?"""
    if not 0 <= index < size or len(leaf) != HASH_SIZE or not _all_hashes(proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree of `size1` leaves with root `root1` a prefix of the tree of
    `size2` leaves with root `root2`? Equal sizes need an empty proof and equal roots; a proof
    from the empty tree proves nothing and is refused."""
    if not 0 <= size1 <= size2 or not _all_hashes(proof):
        return False
    if size1 == size2:
        return not proof and root1 == root2 and (size1 > 0 or root1 == EMPTY_ROOT)
    if size1 == 0 or not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


def verify_subtree_inclusion(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], subtree_root: bytes
) -> bool:
    """Inclusion of leaf `index` in the subtree [start, end) whose hash is `subtree_root`."""
    if not is_valid_subtree(start, end) or not start <= index < end:
        return False
    return verify_inclusion(leaf, index - start, end - start, proof, subtree_root)


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    proof: Sequence[bytes],
    subtree_root: bytes,
    root: bytes,
) -> bool:
    """Does `proof` show that the subtree [start, end) with hash `subtree_root` sits at those
    positions in the tree of `size` leaves with root `root`? (Generalises RFC 9162 §2.1.4.2,
    which is the case start == 0.) An empty subtree needs an empty proof and the empty hash."""
    if not 0 <= start <= end <= size or not _all_hashes(proof):
        return False
    if start == end:
        return not proof and subtree_root == EMPTY_ROOT
    if not is_valid_subtree(start, end):
        return False
    steps, whole, _ = _subtree_walk(start, end, size)
    needed = len(steps) + (0 if whole else 1)
    if len(proof) != needed:
        return False
    items = iter(proof)
    fr = sr = subtree_root if whole else next(items)
    for kind, _ in reversed(steps):
        p = next(items)
        if kind == "left":
            sr = node_hash(sr, p)
        elif kind == "right":
            sr = node_hash(p, sr)
        else:
            fr = node_hash(p, fr)
            sr = node_hash(p, sr)
    return fr == subtree_root and sr == root
