"""The thin FastAPI service: live feeds, history, camera tours and the captive portal."""
