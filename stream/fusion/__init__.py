"""Fused occupancy: Wi-Fi clients calibrated against camera counts, with a confidence band."""
