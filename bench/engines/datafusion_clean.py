"""The clean job on DataFusion (its Python package): one COPY ... PARTITIONED BY statement.

    python datafusion_clean.py RAW OUT
"""
import json
import sys
import time

import pyarrow as pa
from datafusion import SessionContext

import job


def main(raw: str, out: str) -> None:
    started = time.perf_counter()
    ctx = SessionContext()
    ctx.register_parquet(
        "raw", raw, table_partition_cols=[("ingest_date", pa.date32())], file_extension=".parquet"
    )
    mask = f"encode(sha256(concat('{job.KEY}', user_id)), 'hex')"
    ctx.sql(
        f"""
        COPY (
            SELECT {job.sql_select(mask, "CAST(ts AS DATE)")}
            FROM raw
            WHERE NOT {job.sql_is_bot()}
        ) TO '{out}' STORED AS PARQUET PARTITIONED BY ({job.PARTITION})
        OPTIONS (compression 'zstd(3)')
        """
    ).collect()
    print(json.dumps({"job_seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
