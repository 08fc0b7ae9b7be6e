"""Pure types the whole service shares: records, Kafka coordinates, outcomes,
dead-letter reasons, errors. Imports no I/O library."""
