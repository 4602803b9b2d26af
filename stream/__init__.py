"""Stream processing: MQTT ingest gateway, Faust processors and PostgreSQL sinks."""
