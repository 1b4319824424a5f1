"""The audit ledger: canonical entries, an RFC 6962 Merkle log, checkpoints, a verifier.

This package imports nothing from workflow/ or app/: an auditor runs it alone."""
