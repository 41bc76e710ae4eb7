"""trackwrap.policy."""
