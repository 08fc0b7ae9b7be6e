"""trace-stream: publishes closed trades, redacted, to third-party performance trackers."""

__version__ = "0.1.0"
