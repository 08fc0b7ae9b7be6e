"""The stages: each one a loop on a thread of its own that owns its Kafka clients.

    schedule  trade.closed -> delay topic | dead letter
    signals   signal settings topic -> the consent table
    deliver   delay + retry topics -> adapter -> done | retry topic | dead letter
    backlog   what waits in the delay and retry topics -> metrics

Each is a module, or a package when it has parts (`deliver`). A stage never imports
another stage: what two stages share (record formats, headers) lives below them, in
`codec.wire`.
"""
