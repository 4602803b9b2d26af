"""Visitor flows: presence, unique visitors, dwell and origin-destination matrices."""
