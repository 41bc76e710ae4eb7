"""trackwrap.relay."""
