"""trackwrap.crypto."""
