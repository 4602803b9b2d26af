"""Simulated Wi-Fi controllers for the captive portal (the demo has no real hardware)."""
