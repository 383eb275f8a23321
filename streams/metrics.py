"""Prometheus metrics exported on `GET /metrics` (one registry per process)."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("ragloop_events_consumed_total", "Events handled per topic, group and outcome.", ["topic", "group", "outcome"])
DEAD_LETTERS = Counter("ragloop_dead_letters_total", "Messages given up on, per topic and reason (the error type).", ["topic", "reason"])
DEAD_LETTER_PUBLISH_FAILURES = Counter("ragloop_dead_letter_publish_failures_total",
                                     "Dead letters recorded in the table whose `.dlq` topic copy could not be published.", ["topic"])
EVENTS_PUBLISHED = Counter("ragloop_events_published_total", "Events published per topic.", ["topic"])
HANDLER_SECONDS = Histogram("ragloop_handler_seconds", "Time spent in a role's handler per event.", ["topic", "group"],
                            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
TASK_SECONDS = Histogram("ragloop_task_seconds", "Chat task latency from acceptance to completion.", ["status"],
                         buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120))
TASKS = Counter("ragloop_tasks_total", "Chat tasks by final status.", ["status"])
DOCUMENTS_INDEXED = Counter("ragloop_documents_indexed_total", "Documents indexed.")
CHUNKS_INDEXED = Counter("ragloop_chunks_indexed_total", "Chunks indexed.")
TRAINING_RUNS = Counter("ragloop_training_runs_total", "LoRA training runs by outcome.", ["outcome"])
ACTIVE_MODEL = Gauge("ragloop_active_model_info", "The model version agents answer with (value 1).", ["family", "version"])
EVAL_METRIC = Histogram("ragloop_eval_metric", "Online evaluation metric values per answer.", ["metric"],
                        buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
# Beside the queue depth (accepted, not yet running anywhere): what the agents already hold and
# cannot start yet, so an operator sees whether tasks wait in the broker or behind a busy engine.
AGENT_WAITING = Gauge("ragloop_agent_waiting_tasks", "Chat tasks delivered to an agent and waiting for its engine.")
QUEUE_DEPTH = Gauge("ragloop_queue_depth", "Chat tasks accepted and waiting for an agent.")
CONSUMER_LAG = Gauge("ragloop_consumer_lag", "Messages not yet consumed per consumer group and topic (Kafka).", ["group", "topic"])
BACKGROUND_ERRORS = Counter("ragloop_background_errors_total", "Errors of a background loop (each is logged; the loop restarts "
                            "after a backoff).", ["loop"])
LEASE_RENEWAL_ERRORS = Counter("ragloop_lease_renewal_errors_total", "Failed renewals of a task's lease (retried until the lease lapses).")
# Online evaluation (eval worker): each version's window summary (the versions shown are bounded, see
# streams/workers/evaluation.py), and how far behind and how broken evaluation is, so it never stalls silently.
EVAL_WINDOW = Gauge("ragloop_eval_window", "Window summary of an eval metric per model version, all tenants together "
                    "(stat: count, mean, ci_low, ci_high; metric downvote/error are shares).", ["version", "metric", "stat"])
EVAL_LAG = Gauge("ragloop_eval_lag_seconds", "Seconds between an answer and its scoring, at the latest scored answer.")
EVAL_LAST_SCORED = Gauge("ragloop_eval_last_scored_timestamp_seconds", "Unix time of the latest scored answer (stalled when old "
                         "while answers keep coming).")
EVAL_ERRORS = Counter("ragloop_eval_errors_total", "Eval worker failures per stage (score, perplexity, windows, judge); each is "
                      "logged and the event retried.", ["stage"])
EVAL_PERPLEXITY_SKIPPED = Counter("ragloop_eval_perplexity_skipped_total", "Sampled answers whose perplexity was skipped because "
                                  "the sampler was behind.")
CANARY_DECISIONS = Counter("ragloop_canary_decisions_total", "Automatic canary decisions by action (promote, rollback).", ["action"])
