"""Captive portal: multilingual splash pages, controller adapters, consent and promo funnel.

Mount with ``app.include_router(api.portal.router.router)``; the router's own lifespan opens
what the portal needs (database pool, MQTT publisher, pseudonymiser) on ``app.state.portal``.
"""
