"""audit log (PostgreSQL): an append that can travel with the transaction's COMMIT

The engine's transitions send their audit entry in one message with the COMMIT, so that no
round trip and no client work falls inside the time the log's head row stays locked (every
other writer of the ward waits for that lock). Such an append must never come back having
written nothing, since the COMMIT behind it would then commit the change without its entry.
`audit_append_with_commit` is `audit_append_at_head` (migration 0011) with the checkpoint
policy off, so that it always writes (a checkpoint falls due on a later append, which signs
it), and it raises instead of returning no row when the log is not there. It runs with the
caller's rights (SECURITY INVOKER).

Revision ID: 0012_audit_append_with_commit
Revises: 0011_audit_append_function
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op


revision: str = "0012_audit_append_with_commit"
down_revision: str | None = "0011_audit_append_function"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = (
    "audit_append_with_commit(integer, text, bigint, bytea, bigint, timestamptz, bytea, "
    "bytea, bytea, smallint[], bigint[], bytea[], bytea, bytea, timestamptz, text, text, "
    "text, text, text, text)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's writers hold the database's write lock for the whole transaction
    op.execute(
        r"""
        CREATE FUNCTION audit_append_with_commit(
            p_log integer, p_origin text,
            p_seq bigint, p_prev bytea, p_cp_size bigint, p_cp_at timestamptz,
            p_range bytea, p_leaf bytea, p_body bytea,
            p_levels smallint[], p_indexes bigint[], p_hashes bytea[],
            p_pre bytea, p_post bytea,
            p_ts timestamptz, p_user text, p_unit text, p_role text,
            p_action text, p_otype text, p_oid text
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
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {SIGNATURE}")
