"""trackwrap.ledger."""
