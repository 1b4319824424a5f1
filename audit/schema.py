"""Placeholder: the audit ledger's tables (replaced by the ledger implementation)."""

from sqlalchemy import MetaData

metadata = MetaData()
