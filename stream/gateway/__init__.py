"""Ingest gateway: MQTT device events in, validated and stamped Kafka records out."""
