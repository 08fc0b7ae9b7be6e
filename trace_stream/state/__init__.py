"""The loops' bookkeeping, pure: what is read ahead and when it falls due
(`lookahead`), which offsets are finished (`offsets`), batches for batch adapters
(`batching`), the circuit breaker (`breaker`). No I/O import."""
