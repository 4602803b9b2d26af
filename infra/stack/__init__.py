"""The local dev/CI stack: Mosquitto, Apache Kafka and PostgreSQL on loopback.

``tourpulse stack up|down|status|fetch`` (see :mod:`infra.stack.cli`) and the test
fixtures both go through :func:`infra.stack.manager.up`, so developers, CI and tests
get the same real services, started only when nothing already listens.
"""
