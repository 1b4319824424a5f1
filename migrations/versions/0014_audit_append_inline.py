"""audit log (PostgreSQL): the append that travels with the COMMIT, in one function of its own

`audit_append_with_commit` (migration 0012) called `audit_append_at_head` and passed its
rows on: two PL/pgSQL calls, each returning a set through a tuple store, and a head read
(SELECT ... FOR UPDATE) before the head's UPDATE. The engine's transitions run it on every
change, so its server time is theirs. Here it does the same work in one function returning
one row (OUT parameters). Its first statement is the head's UPDATE, guarded by the head the
entry was built on: when that head is there, committed, the UPDATE checks it and locks the
row in one statement. Otherwise (another process appended meanwhile, or the head the entry
was built on belonged to a transaction that had not committed when the UPDATE looked) it
reads the head under the lock, writes the entry as built if that is now the head it was
built on, and else builds it again on the head there, as audit_append_at_head does (the
body's "prev" and "seq" values between the bytes the caller sends around them; RFC 6962 leaf
and node hashes; stored subtrees from level 3 up). It always writes (checkpoints are signed
by a later append) and raises when the log is not there, as before. Same signature and
result columns; SECURITY INVOKER. The function is dropped and made again (its result type
changes), so the EXECUTE grants it had are granted again.

Revision ID: 0014_audit_append_inline
Revises: 0013_audit_entry_sqlite_key
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection


revision: str = "0014_audit_append_inline"
down_revision: str | None = "0013_audit_entry_sqlite_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARGUMENTS = (
    "p_log integer, p_origin text, "
    "p_seq bigint, p_prev bytea, p_cp_size bigint, p_cp_at timestamptz, "
    "p_range bytea, p_leaf bytea, p_body bytea, "
    "p_levels smallint[], p_indexes bigint[], p_hashes bytea[], "
    "p_pre bytea, p_post bytea, "
    "p_ts timestamptz, p_user text, p_unit text, p_role text, "
    "p_action text, p_otype text, p_oid text"
)
SIGNATURE = (
    "audit_append_with_commit(integer, text, bigint, bytea, bigint, timestamptz, bytea, "
    "bytea, bytea, smallint[], bigint[], bytea[], bytea, bytea, timestamptz, text, text, "
    "text, text, text, text)"
)

FUNCTION = rf"""
CREATE FUNCTION audit_append_with_commit(
    {ARGUMENTS},
    OUT head_id integer, OUT head_size bigint, OUT head_range bytea,
    OUT head_last_leaf bytea, OUT head_cp_size bigint, OUT head_cp_at timestamptz,
    OUT written_seq bigint, OUT rebuilt_body bytea
) LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v_body bytea := p_body;
    v_levels smallint[] := p_levels;
    v_indexes bigint[] := p_indexes;
    v_hashes bytea[] := p_hashes;
    v_node bytea;
    m bigint;
    lvl integer := 0;
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
    IF FOUND THEN
        written_seq := p_seq;
    ELSE
        -- Not that head as this statement saw it: read the head under the lock (a head that
        -- another transaction held uncommitted is there now, committed).
        SELECT l.id, l.size, l.compact_range, l.last_leaf, l.checkpoint_size, l.checkpoint_at
            INTO head_id, written_seq, head_range, head_last_leaf, head_cp_size, head_cp_at
            FROM audit_log AS l WHERE l.id = p_log AND l.origin = p_origin FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit log % (%) is not there: nothing appended', p_log, p_origin
                USING ERRCODE = 'no_data_found';
        END IF;
        IF written_seq = p_seq AND head_last_leaf = p_prev
                AND head_cp_size IS NOT DISTINCT FROM p_cp_size
                AND head_cp_at IS NOT DISTINCT FROM p_cp_at THEN
            -- The head the entry was built on after all: the entry as built.
            head_range := p_range;
            head_last_leaf := p_leaf;
        ELSE
            -- Another head: build the entry again on it.
            v_body := p_pre
                || convert_to(
                    CASE WHEN written_seq = 0 THEN repeat('0', 64)
                         ELSE encode(head_last_leaf, 'hex') END
                    || '","seq":' || written_seq::text, 'UTF8')
                || p_post;
            head_last_leaf := sha256('\x00'::bytea || v_body);
            v_node := head_last_leaf;
            v_levels := '{{}}';
            v_indexes := '{{}}';
            v_hashes := '{{}}';
            m := written_seq;
            WHILE (m & 1) = 1 LOOP
                v_node := sha256('\x01'::bytea
                    || substring(head_range FROM length(head_range) - 31 FOR 32) || v_node);
                head_range := substring(head_range FROM 1 FOR length(head_range) - 32);
                m := m >> 1;
                lvl := lvl + 1;
                IF lvl >= 3 THEN
                    v_levels := v_levels || lvl::smallint;
                    v_indexes := v_indexes || (written_seq >> lvl);
                    v_hashes := v_hashes || v_node;
                END IF;
            END LOOP;
            head_range := head_range || v_node;
            rebuilt_body := v_body;
        END IF;
        head_size := written_seq + 1;
        UPDATE audit_log AS l SET size = head_size, compact_range = head_range,
                last_leaf = head_last_leaf
            WHERE l.id = head_id;
    END IF;
    INSERT INTO audit_entry (log_id, seq, created_at, actor_user, actor_unit,
            actor_role, action, object_type, object_id, body, leaf_hash)
        VALUES (head_id, written_seq, p_ts, p_user, p_unit, p_role, p_action, p_otype, p_oid,
            v_body, head_last_leaf);
    IF cardinality(v_levels) > 0 THEN  -- one append in eight
        INSERT INTO audit_node (log_id, level, node_index, hash)
            SELECT head_id, t.l, t.i, t.h
            FROM unnest(v_levels, v_indexes, v_hashes) AS t(l, i, h);
    END IF;
END
$$
"""

# Migration 0012's function, for the downgrade.
PREVIOUS = rf"""
CREATE FUNCTION audit_append_with_commit(
    {ARGUMENTS}
) RETURNS TABLE (
    head_id integer, head_size bigint, head_range bytea, head_last_leaf bytea,
    head_cp_size bigint, head_cp_at timestamptz,
    written_seq bigint, rebuilt_body bytea
) LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    RETURN QUERY SELECT * FROM audit_append_at_head(
        p_log, p_origin, p_seq, p_prev, p_cp_size, p_cp_at, p_range, p_leaf, p_body,
        p_levels, p_indexes, p_hashes, p_pre, p_post, NULL::bigint, NULL::interval,
        p_ts, p_user, p_unit, p_role, p_action, p_otype, p_oid) AS a
        WHERE a.written_seq IS NOT NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit log % (%) is not there: nothing appended', p_log, p_origin
            USING ERRCODE = 'no_data_found';
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


def _replace(definition: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite's writers hold the database's write lock for the whole transaction
    grants = _grants(bind)
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    op.execute(definition)
    _grant_again(bind, grants)


def upgrade() -> None:
    _replace(FUNCTION)


def downgrade() -> None:
    _replace(PREVIOUS)
