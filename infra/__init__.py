"""Deployment and operations: settings, the embedded stack and the ``tourpulse`` CLI."""
