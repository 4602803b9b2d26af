"""PostgreSQL schema (SQL migrations) and batch sinks."""
