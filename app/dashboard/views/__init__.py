"""One module per page family."""
