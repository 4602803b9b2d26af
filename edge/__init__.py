"""Edge agents that run at the sites, beside Wi-Fi controllers and cameras."""
