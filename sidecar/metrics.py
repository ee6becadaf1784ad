"""Prometheus metrics of one sidecar process (each replica exports its own; sum them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.processed = Counter("embeddings_processed", "Vectors written", registry=r)
        self.skipped = Counter("embeddings_skipped",
                               "Items closed without a vector (empty content)", registry=r)
        self.stale = Counter("embeddings_stale", "Results refused: the content changed meanwhile",
                             registry=r)
        self.failures = Counter("embeddings_failures", "Items that failed a try", registry=r)
        self.dead = Counter("embeddings_dead", "Items this worker sent to the dead letters",
                            registry=r)
        self.queue_depth = Gauge("embeddings_queue_depth", "Queue items per state", ["state"],
                                 registry=r)
        self.latency = Histogram("embeddings_processing_latency_seconds",
                                 "From enqueue to vector written, per item",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("embeddings_batch_size", "Items per claimed batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.requests = Counter("api_requests", "HTTP requests", ["endpoint", "method", "status"],
                                registry=r)
        self.api_latency = Histogram("api_latency_seconds", "HTTP request latency", ["endpoint"],
                                     buckets=API_BUCKETS, registry=r)
        self.cache_errors = Counter("cache_errors", "Redis operations that failed (best effort)",
                                    registry=r)
        self.cache_writes = Counter("cache_writes", "Redis mirror writes after commit",
                                    ["kind", "op"], registry=r)
        self.reconcile_runs = Counter("cache_reconcile_runs", "Reconciliations of Redis with "
                                      "PostgreSQL", registry=r)
        self.reconcile_ranges = Counter("cache_reconcile_ranges", "Ranges of 10,000 ids compared, "
                                        "by result", ["result"], registry=r)
        self.reconcile_repairs = Counter("cache_reconcile_repairs", "Redis keys repaired by "
                                         "reconciliation", ["action"], registry=r)
        self.reconcile_seconds = Gauge("cache_reconcile_last_seconds", "Duration of the last "
                                       "reconciliation", registry=r)
        self.embed_cache = Counter("embed_cache_lookups", "POST /embed cache lookups", ["result"],
                                   registry=r)
        self.sql_calls = Gauge("nexus_sql_function_calls", "Calls of each nexus.* SQL function "
                               "(pg_stat_user_functions)", ["function"], registry=r)
        self.sql_seconds = Gauge("nexus_sql_function_seconds", "Total time in each nexus.* SQL "
                                 "function (pg_stat_user_functions)", ["function"], registry=r)
        self.server_up = Gauge("nexus_server_up", "1 while this process reaches the server "
                               "(postgresql, redis), 0 during an outage", ["server"], registry=r)
        self.outages = Counter("nexus_server_outages", "Outages of each server this process "
                               "went through", ["server"], registry=r)
        self.retention_removed = Counter("retention_removed", "Memories removed by retention "
                                         "rules (docs/privacy.md)", registry=r)
        self.info = Info("nexus_worker", "Worker identity and model", registry=r)
