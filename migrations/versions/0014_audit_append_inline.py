"""audit log (PostgreSQL): the append that travels with the COMMIT, in one function of its own

`audit_append_with_commit` (migration 0012) called `audit_append_at_head` and passed its
rows on: two PL/pgSQL calls, each returning a set through a tuple store, and a head read
(SELECT ... FOR UPDATE) before the head's UPDATE. The engine's transitions run it on every
change, so its server time is theirs. Here it does the same work in one function returning
one row (OUT parameters). Its first statement is the head's UPDATE, guarded by the head the
entry was built on: when that head is there, committed, the UPDATE checks it and locks the
row in one statement, and the entry goes in as built. Otherwise (another process appended
meanwhile, or the head the entry was built on belonged to a transaction that had not
committed when the UPDATE looked) it hands the append to audit_append_at_head (migration
0011) with the checkpoint policy off, as before: that reads the head under the lock, writes
the entry as built if that is now the head it was built on, and else builds it again on the
head there. It always writes (checkpoints are signed by a later append) and raises when the
log is not there, as before. Same signature and result columns; SECURITY INVOKER. The
function is dropped and made again (its result type changes), so the EXECUTE grants it had
are granted again; the downgrade makes migration 0012's function again with 0012's own code.

Revision ID: 0014_audit_append_inline
Revises: 0013_audit_entry_sqlite_key
Create Date: 2026-11-29
"""

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection


revision: str = "0014_audit_append_inline"
down_revision: str | None = "0013_audit_entry_sqlite_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _migration_0012() -> ModuleType:
    """Migration 0012, whose function this one replaces (a migration is never edited after it
    has run, so its code can serve the downgrade as it is)."""
    path = Path(__file__).with_name("0012_audit_append_with_commit.py")
    spec = importlib.util.spec_from_file_location("migration_0012_audit_append", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PREVIOUS = _migration_0012()
SIGNATURE: str = _PREVIOUS.SIGNATURE

FUNCTION = r"""
CREATE FUNCTION audit_append_with_commit(
    p_log integer, p_origin text,
    p_seq bigint, p_prev bytea, p_cp_size bigint, p_cp_at timestamptz,
    p_range bytea, p_leaf bytea, p_body bytea,
    p_levels smallint[], p_indexes bigint[], p_hashes bytea[],
    p_pre bytea, p_post bytea,
    p_ts timestamptz, p_user text, p_unit text, p_role text,
    p_action text, p_otype text, p_oid text,
    OUT head_id integer, OUT head_size bigint, OUT head_range bytea,
    OUT head_last_leaf bytea, OUT head_cp_size bigint, OUT head_cp_at timestamptz,
    OUT written_seq bigint, OUT rebuilt_body bytea
) LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    -- The head the entry was built on, if this statement sees it (committed): move it,
    -- which locks the row (waiting, if need be, for a concurrent append to commit, then
    -- checking the head as that one left it).
    UPDATE audit_log AS l SET size = p_seq + 1, compact_range = p_range, last_leaf = p_leaf
        WHERE l.id = p_log AND l.origin = p_origin AND l.size = p_seq AND l.last_leaf = p_prev
            AND l.checkpoint_size IS NOT DISTINCT FROM p_cp_size
            AND l.checkpoint_at IS NOT DISTINCT FROM p_cp_at
        RETURNING l.id, l.size, l.compact_range, l.last_leaf, l.checkpoint_size,
            l.checkpoint_at
        INTO head_id, head_size, head_range, head_last_leaf, head_cp_size, head_cp_at;
    IF NOT FOUND THEN
        -- Not that head as this statement saw it: the append on whatever head is there,
        -- under the lock (migration 0011), which writes the entry as built on the head it
        -- was built on and builds it again on another.
        SELECT a.head_id, a.head_size, a.head_range, a.head_last_leaf, a.head_cp_size,
                a.head_cp_at, a.written_seq, a.rebuilt_body
            INTO head_id, head_size, head_range, head_last_leaf, head_cp_size, head_cp_at,
                written_seq, rebuilt_body
            FROM audit_append_at_head(
                p_log, p_origin, p_seq, p_prev, p_cp_size, p_cp_at, p_range, p_leaf, p_body,
                p_levels, p_indexes, p_hashes, p_pre, p_post, NULL::bigint, NULL::interval,
                p_ts, p_user, p_unit, p_role, p_action, p_otype, p_oid) AS a;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit log % (%) is not there: nothing appended', p_log, p_origin
                USING ERRCODE = 'no_data_found';
        END IF;
        RETURN;
    END IF;
    written_seq := p_seq;
    INSERT INTO audit_entry (log_id, seq, created_at, actor_user, actor_unit,
            actor_role, action, object_type, object_id, body, leaf_hash)
        VALUES (p_log, p_seq, p_ts, p_user, p_unit, p_role, p_action, p_otype, p_oid,
            p_body, p_leaf);
    IF cardinality(p_levels) > 0 THEN  -- one append in eight
        INSERT INTO audit_node (log_id, level, node_index, hash)
            SELECT p_log, t.l, t.i, t.h FROM unnest(p_levels, p_indexes, p_hashes) AS t(l, i, h);
    END IF;
END
$$
"""


def _grants(bind: Connection) -> tuple[bool, list[str]] | None:
    """Who may EXECUTE the function now: (PUBLIC may, other grantees); None while its
    privileges are the defaults."""
    rows = bind.execute(
        text(
            "SELECT p.proacl IS NULL, a.grantee, a.grantee::regrole::text, p.proowner "
            "FROM pg_proc p LEFT JOIN LATERAL aclexplode(p.proacl) a "
            "ON a.privilege_type = 'EXECUTE' WHERE p.oid = CAST(:sig AS regprocedure)"
        ),
        {"sig": SIGNATURE},
    ).all()
    if not rows or rows[0][0]:
        return None
    public = any(r[1] == 0 for r in rows)
    return public, [r[2] for r in rows if r[1] not in (None, 0, r[3])]


def _grant_again(bind: Connection, grants: tuple[bool, list[str]] | None) -> None:
    if grants is None:
        return
    public, roles = grants
    if not public:
        op.execute(f"REVOKE EXECUTE ON FUNCTION {SIGNATURE} FROM PUBLIC")
    for role in roles:  # as PostgreSQL spells it (quoted where it must be)
        op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {role}")


def _replace(create: Callable[[], None]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite's writers hold the database's write lock for the whole transaction
    grants = _grants(bind)
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    create()
    _grant_again(bind, grants)


def upgrade() -> None:
    _replace(lambda: op.execute(FUNCTION))


def downgrade() -> None:
    _replace(_PREVIOUS.upgrade)  # 0012's CREATE FUNCTION, as 0012 runs it
