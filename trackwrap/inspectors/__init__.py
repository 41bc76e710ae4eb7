"""trackwrap.inspectors."""
