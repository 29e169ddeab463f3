"""Watchers that keep local state in step with an exchange (Live and Paper modes)."""
