"""What an operator sees: metrics, logs, health endpoints, alerts."""
