"""audit log (PostgreSQL): append on whatever head the log has, in one statement

A writer that remembers the head its process last left sends an entry built on it. When
another process appended meanwhile, the entry has to be built again on the head actually
there, and until now that took one more round trip while holding the head's row lock, which
every other writer of the ward waits for: with several processes writing to one ward this
was most appends. `audit_append_at_head` does the whole append under the row lock in one
call. On the head the entry was built on it stores the entry as built; on another head it
builds the entry again itself, which is mechanical because only two values of the body depend on
the head: canonical JSON sorts keys, and the body's last keys are "prev", "seq", "ts" and "v",
so the caller sends the canonical bytes before the "prev" value and from ',"ts":' on, and
the function puts the new head's last leaf (hex) and size between them. It hashes the leaf
and folds the compact range as audit/merkle.py does (RFC 6962: leaf = SHA-256(0x00 || body),
node = SHA-256(0x01 || left || right); stored subtrees from level 3 up). When the new head
would make a checkpoint due (the caller passes its policy), the function writes nothing and
returns the head locked: the caller signs on its locked path. It runs with the caller's
rights (SECURITY INVOKER): SELECT, INSERT on the log tables and UPDATE of the head, as before.

Revision ID: 0011_audit_append_function
Revises: 0010_remark_kind_index
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0011_audit_append_function"
down_revision: str | None = "0010_remark_kind_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "audit_append_at_head(integer, text, bigint, bytea, bigint, timestamptz, bytea, bytea, "
    "bytea, smallint[], bigint[], bytea[], bytea, bytea, bigint, interval, timestamptz, text, "
    "text, text, text, text, text)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's writers hold the database's write lock for the whole transaction
    op.execute(
        r"""
        CREATE FUNCTION audit_append_at_head(
            p_log integer, p_origin text,
            -- the head the entry was built on, and the entry as built on it
            p_seq bigint, p_prev bytea, p_cp_size bigint, p_cp_at timestamptz,
            p_range bytea, p_leaf bytea, p_body bytea,
            p_levels smallint[], p_indexes bigint[], p_hashes bytea[],
            -- the body's canonical bytes before the "prev" value and from ',"ts":' on
            p_pre bytea, p_post bytea,
            -- the checkpoint policy (NULL: that trigger is off, or nothing signs)
            p_every bigint, p_interval interval,
            -- the entry's columns
            p_ts timestamptz, p_user text, p_unit text, p_role text,
            p_action text, p_otype text, p_oid text
        ) RETURNS TABLE (
            head_id integer, head_size bigint, head_range bytea, head_last_leaf bytea,
            head_cp_size bigint, head_cp_at timestamptz,
            written_seq bigint, rebuilt_body bytea
        ) LANGUAGE plpgsql SECURITY INVOKER AS $$
        DECLARE
            h audit_log%ROWTYPE;
            v_seq bigint;
            v_body bytea;
            v_leaf bytea;
            v_range bytea;
            v_node bytea;
            v_levels smallint[];
            v_indexes bigint[];
            v_hashes bytea[];
            v_rebuilt bytea;  -- the body, when built here on another head
            m bigint;
            lvl integer := 0;
        BEGIN
            SELECT * INTO h FROM audit_log AS l
                WHERE l.id = p_log AND l.origin = p_origin FOR UPDATE;
            IF NOT FOUND THEN
                RETURN;  -- no such log with that id (a database made again)
            END IF;
            v_seq := h.size;
            IF h.size = p_seq AND h.last_leaf = p_prev
                    AND h.checkpoint_size IS NOT DISTINCT FROM p_cp_size
                    AND h.checkpoint_at IS NOT DISTINCT FROM p_cp_at THEN
                v_body := p_body;
                v_leaf := p_leaf;
                v_range := p_range;
                v_levels := p_levels;
                v_indexes := p_indexes;
                v_hashes := p_hashes;
            ELSE
                IF (p_every IS NOT NULL
                        AND h.size + 1 - coalesce(h.checkpoint_size, 0) >= p_every)
                    OR (p_interval IS NOT NULL
                        AND (h.checkpoint_at IS NULL OR p_ts - h.checkpoint_at >= p_interval))
                THEN
                    RETURN QUERY SELECT h.id, h.size, h.compact_range, h.last_leaf,
                        h.checkpoint_size, h.checkpoint_at, NULL::bigint, NULL::bytea;
                    RETURN;
                END IF;
                v_body := p_pre
                    || convert_to(
                        CASE WHEN v_seq = 0 THEN repeat('0', 64)
                             ELSE encode(h.last_leaf, 'hex') END
                        || '","seq":' || v_seq::text, 'UTF8')
                    || p_post;
                v_leaf := sha256('\x00'::bytea || v_body);
                v_range := h.compact_range;
                v_node := v_leaf;
                v_levels := '{}';
                v_indexes := '{}';
                v_hashes := '{}';
                m := v_seq;
                WHILE (m & 1) = 1 LOOP
                    v_node := sha256('\x01'::bytea
                        || substring(v_range FROM length(v_range) - 31 FOR 32) || v_node);
                    v_range := substring(v_range FROM 1 FOR length(v_range) - 32);
                    m := m >> 1;
                    lvl := lvl + 1;
                    IF lvl >= 3 THEN
                        v_levels := v_levels || lvl::smallint;
                        v_indexes := v_indexes || (v_seq >> lvl);
                        v_hashes := v_hashes || v_node;
                    END IF;
                END LOOP;
                v_range := v_range || v_node;
                v_rebuilt := v_body;
            END IF;
            INSERT INTO audit_entry (log_id, seq, created_at, actor_user, actor_unit,
                    actor_role, action, object_type, object_id, body, leaf_hash)
                VALUES (h.id, v_seq, p_ts, p_user, p_unit, p_role, p_action, p_otype, p_oid,
                    v_body, v_leaf);
            IF cardinality(v_levels) > 0 THEN  -- one append in eight
                INSERT INTO audit_node (log_id, level, node_index, hash)
                    SELECT h.id, t.l, t.i, t.h
                    FROM unnest(v_levels, v_indexes, v_hashes) AS t(l, i, h);
            END IF;
            UPDATE audit_log AS l SET size = v_seq + 1, compact_range = v_range,
                    last_leaf = v_leaf
                WHERE l.id = h.id;
            RETURN QUERY SELECT h.id, v_seq + 1, v_range, v_leaf,
                h.checkpoint_size, h.checkpoint_at, v_seq, v_rebuilt;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {SIGNATURE}")
