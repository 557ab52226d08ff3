"""The clean job on DuckDB: one COPY ... TO ... (PARTITION_BY) statement.

    python duckdb_clean.py RAW OUT
"""
import json
import sys
import time

import duckdb

import job


def main(raw: str, out: str) -> None:
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # CAST(timestamptz AS DATE) uses the session zone
    con.execute(
        f"""
        COPY (
            SELECT {job.sql_select(f"sha256('{job.KEY}' || user_id)", "CAST(ts AS DATE)")}
            FROM read_parquet('{raw}/*/*.parquet', hive_partitioning = true,
                              hive_types = {{'ingest_date': DATE}})
            WHERE NOT {job.sql_is_bot()}
        ) TO '{out}' (FORMAT parquet, PARTITION_BY ({job.PARTITION}), COMPRESSION zstd)
        """
    )
    con.close()
    print(json.dumps({"job_seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
