"""One module per role; each turns events into plain calls on the domain folders."""
