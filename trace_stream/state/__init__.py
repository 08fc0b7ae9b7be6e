"""The loops' bookkeeping, pure: what is read within the buffer's budget (`intake`),
what is read ahead and when it falls due (`lookahead`), which offsets are finished
(`offsets`), the transaction beside the loop (`commits`), batches for batch adapters
(`batching`), the circuit breaker (`breaker`). No I/O import."""
