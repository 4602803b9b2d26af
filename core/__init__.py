"""Building blocks shared by edge agents, stream workers and the API.

``core`` sits just above :mod:`schemas` and below everything else (see ARCHITECTURE.md and
the import-linter contracts in pyproject.toml): settings, observability, the MQTT and Kafka
client factories, pseudonymisation and the ONVIF client. It imports no TourPulse package but
``schemas``, so a site box can use it without the central services' code.
"""
