"""Kafka/Faust edge of wardstream: CLI, settings, embedded broker, workers."""
