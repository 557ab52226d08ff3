"""The clean job on Polars: a lazy scan streamed into a partitioned Parquet sink. Polars has no
cryptographic hash of its own; the sha256 comes from the polars-hash plugin (native code, run as
a Polars expression).

    python polars_clean.py RAW OUT
"""
import json
import sys
import time

import polars as pl
import polars_hash  # noqa: F401 - registers the `chash` expression namespace

import job


def main(raw: str, out: str) -> None:
    started = time.perf_counter()
    lf = pl.scan_parquet(
        f"{raw}/*/*.parquet", hive_partitioning=True, hive_schema={"ingest_date": pl.Date}
    )
    ua = pl.col("user_agent")
    is_bot = pl.any_horizontal(
        [ua.str.contains(s, literal=True) for s in job.BOT_CONTAINS]
        + [ua.str.starts_with(s) for s in job.BOT_STARTS_WITH]
    )
    columns = []
    for c in job.COLUMNS:
        if c == "user_id":
            columns.append(pl.concat_str([pl.lit(job.KEY), pl.col(c)]).chash.sha2_256().alias(c))
        elif c == "ip":
            columns.append(pl.lit(job.REDACTED_IP).alias(c))
        else:
            columns.append(pl.col(c))
    columns.append(pl.col("ts").dt.convert_time_zone("UTC").dt.date().alias(job.PARTITION))
    lf.filter(~is_bot).select(columns).sink_parquet(
        pl.PartitionBy(out, key=job.PARTITION, include_key=False),
        compression="zstd",
        maintain_order=False,
        mkdir=True,
    )
    print(json.dumps({"job_seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
