"""Stream processing: MQTT ingest gateway, the stream runtime's workers and PostgreSQL sinks."""
