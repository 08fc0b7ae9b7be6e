"""The transparency log's formats, pure: RFC 6962 hashing, C2SP signed notes,
checkpoints and tiles, the canonical entry, the audit and a writer's view of a log."""
