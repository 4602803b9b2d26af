"""Wi-Fi occupancy: session events -> sessions -> live occupancy and 1-minute rollups."""
