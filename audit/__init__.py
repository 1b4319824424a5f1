"""The ledger: canonical entries, an RFC 6962 Merkle log, signed checkpoints and a standalone verifier.

This package imports nothing from workflow/ or app/: an auditor runs it alone."""
