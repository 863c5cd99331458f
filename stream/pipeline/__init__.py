"""The lead pipeline around the pure engine: identity, scoring, ticks, merges and the records
they emit, over tables the caller provides. The worker runs it over its RocksDB stores and
Kafka; `leadstream replay`, the reports and `leadstream learn` run the same code over tables in
memory, which is why replay equals the live worker by construction."""
