"""Delay and retry topics -> one adapter -> done | retry topic | dead-letter topic.

One Deliverer per adapter, each with its own consumer group and so its own committed
position: one tracker failing or slow never holds back another. Its loop, on one
thread (posts run on the AsyncRunner), goes round:
  1. finished posts: finish their deliveries (`finish`);
  2. release the deliveries that fell due, each at its own due time (`lookahead`), to
     at most `max_in_flight` posts and as the adapter's rate limit and daily quota
     allow (`limits`), unless the circuit breaker is open, the tracker asked for a
     pause (Retry-After) or said it is gone (410, until a restart: `hold`), or a
     transaction stalled; consent is checked first (for a batch adapter, when the
     delivery joins a batch);
  3. consume into the look-ahead buffer, within its budget (`intake`);
  4. commit the finished prefix, beside the loop (`commits`); an abort rewinds.

A crash re-posts what was posted beyond the committed prefix (at most the buffer),
with the same idempotency keys.

The stage's parts: `loop` (the Deliverer) and `finish` (how each record read ends);
the bookkeeping they use is pure and lives in `state/` (`lookahead`, `intake`,
`offsets`, `commits`, `batching`, `gate` over `breaker`, `hold` and `limits`).
"""

from trace_stream.stages.deliver.loop import Deliverer

__all__ = ["Deliverer"]
