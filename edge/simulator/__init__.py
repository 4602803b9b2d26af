"""Wi-Fi session simulator: realistic visitor sessions for the configured sites over MQTT.

It behaves like a fleet of edge agents (one MQTT connection per site, same contract, same
topics, Last Will, heartbeats, pseudonymised client ids) so the whole pipeline can be
demonstrated and benchmarked without real access points. Event generation
(:mod:`edge.simulator.generator`) is a pure, seeded function of the configuration;
publishing (:mod:`edge.simulator.publisher`) is separate.
"""
