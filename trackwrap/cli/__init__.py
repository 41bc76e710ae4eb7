"""trackwrap.cli."""
