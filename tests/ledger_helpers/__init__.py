"""Subprocess workers for the ledger and key store tests (``python -m tests.ledger_helpers.X``)."""
