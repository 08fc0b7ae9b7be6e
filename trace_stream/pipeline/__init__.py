"""The per-record steps, in path order, all pure:

    ingest (decode -> opted in? -> validate) -> redact -> consent (at send time)
    -> routing (outcome -> done | retry tier | dead letter)

Nothing here imports Kafka, Avro, HTTP or metrics: a step takes values and returns
values, and is tested without a broker."""
