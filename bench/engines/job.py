"""The benchmark's "clean" job, defined once for every engine.

The same job as bench/clean.toml (Weir's pipeline), step by step:

1. filter: drop bots, i.e. rows whose ``user_agent`` contains ``bot``, ``Bot`` or ``spider``
   (case-sensitive substrings) or starts with ``python-requests`` or ``curl/``;
2. mask: ``user_id`` becomes ``sha256(KEY || user_id)`` as 64 lowercase hex digits (the mask
   plugin's ``sha256`` algorithm with ``hash_length = 64``), and ``ip`` becomes ``0.0.0.0``
   (its ``redact`` method);
3. derive: ``event_date`` = the UTC calendar date of ``ts``;
4. write Parquet (zstd) partitioned by ``event_date`` (hive layout ``event_date=YYYY-MM-DD/``).

The input is ``weir gen clickstream``'s layout, ``RAW/ingest_date=YYYY-MM-DD/part-NNN.parquet``;
``ingest_date`` is read as a DATE partition column and kept. Output columns, in order:
``COLUMNS`` then ``event_date`` (in the partition path).
"""

KEY = "weir-bench-secret"
REDACTED_IP = "0.0.0.0"
BOT_CONTAINS = ("bot", "Bot", "spider")
BOT_STARTS_WITH = ("python-requests", "curl/")

COLUMNS = (
    "event_id",
    "ts",
    "event_type",
    "advertiser_id",
    "campaign_id",
    "user_id",
    "ip",
    "user_agent",
    "country",
    "device",
    "cost_micros",
    "ingest_date",
)
PARTITION = "event_date"


def sql_is_bot(column: str = "user_agent") -> str:
    """The bot predicate in SQL (contains/starts_with exist in DuckDB, DataFusion and Spark)."""
    terms = [f"contains({column}, '{s}')" for s in BOT_CONTAINS]
    terms += [f"starts_with({column}, '{s}')" for s in BOT_STARTS_WITH]
    return "(" + " OR ".join(terms) + ")"


def sql_select(mask_user_id: str, event_date: str) -> str:
    """The SELECT list, with engine-specific SQL for the masked user id and the event date."""
    out = []
    for c in COLUMNS:
        if c == "user_id":
            out.append(f"{mask_user_id} AS user_id")
        elif c == "ip":
            out.append(f"'{REDACTED_IP}' AS ip")
        else:
            out.append(c)
    out.append(f"{event_date} AS {PARTITION}")
    return ", ".join(out)
