"""Command centre: alert store, workflow, escalation, HTTP API and dashboard."""
