"""Abuse limits shared by the API's features (login throttling, stream caps, body limits)."""
