"""The clean job on Spark in local mode with 2 cores (pyspark; needs Java 17).

    python spark_clean.py RAW OUT
"""
import json
import os
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import job


def main(raw: str, out: str) -> None:
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(os.environ.get("WEIR_BENCH_SPARK_MASTER", "local[2]"))
        .appName("weir-bench-clean")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")  # to_date(ts) in UTC
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.parquet.compression.codec", "zstd")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    session_started = time.perf_counter()
    df = spark.read.parquet(raw)  # partition discovery reads ingest_date=YYYY-MM-DD as a date
    ua = F.col("user_agent")
    is_bot = None
    for s in job.BOT_CONTAINS:
        term = ua.contains(s)
        is_bot = term if is_bot is None else is_bot | term
    for s in job.BOT_STARTS_WITH:
        is_bot = is_bot | ua.startswith(s)
    columns = []
    for c in job.COLUMNS:
        if c == "user_id":
            columns.append(F.sha2(F.concat(F.lit(job.KEY), F.col("user_id")), 256).alias(c))
        elif c == "ip":
            columns.append(F.lit(job.REDACTED_IP).alias(c))
        elif c == "ingest_date":
            columns.append(F.col(c).cast("date").alias(c))
        else:
            columns.append(F.col(c))
    columns.append(F.to_date(F.col("ts")).alias(job.PARTITION))
    df.filter(~is_bot).select(*columns).write.partitionBy(job.PARTITION).parquet(out)
    spark.stop()
    now = time.perf_counter()
    print(json.dumps({"job_seconds": now - started, "session_seconds": session_started - started}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
