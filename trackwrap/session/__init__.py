"""trackwrap.session."""
