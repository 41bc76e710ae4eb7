"""trackwrap.config."""
