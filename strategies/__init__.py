"""Strategy loading and bundled strategies."""
