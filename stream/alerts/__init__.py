"""Alerts: rules that raise and clear them, and their operator-facing lifecycle."""
