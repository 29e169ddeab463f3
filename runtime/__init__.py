"""vigil runtime."""
