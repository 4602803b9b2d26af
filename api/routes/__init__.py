"""Core routers; each module exposes ``router`` and is listed in ``api.app.FEATURE_MODULES``."""
