"""Reads the example's tables with the `deltalake` package (an independent Delta reader) and
prints a few facts: row counts, partitions, the hottest advertisers and the quarantined rows.

    .venv/bin/python examples/clickstream/show_tables.py examples/data/clickstream
"""
import os
import sys

import polars as pl
from deltalake import DeltaTable

root = sys.argv[1] if len(sys.argv) > 1 else "examples/data/clickstream"

clean = DeltaTable(os.path.join(root, "clean"))
events = pl.from_arrow(clean.to_pyarrow_table())
print(f"clean: version {clean.version()}, {events.height:,} rows, "
      f"{events['event_date'].n_unique()} dates, {len(clean.file_uris())} files")
dupes = events.height - events["event_id"].n_unique()
print(f"  duplicate event ids left: {dupes}")
print(f"  masked user ids look like: {events['user_id'][0]}")

daily = pl.from_arrow(DeltaTable(os.path.join(root, "daily_advertiser")).to_pyarrow_table())
total = daily["events"].sum()
print(f"daily_advertiser: {daily.height:,} rows; events sum to {total:,} "
      f"({'matches' if total == events.height else 'DOES NOT match'} the clean table)")
top = (daily.group_by("advertiser_id").agg(pl.col("events").sum())
       .sort("events", descending=True).head(5))
print("  hottest advertisers (skew):")
for adv, n in top.iter_rows():
    print(f"    {adv}: {n:,} events ({100 * n / total:.1f}%)")

qpath = os.path.join(root, "quarantine")
if os.path.isdir(os.path.join(qpath, "_delta_log")):
    q = pl.from_arrow(DeltaTable(qpath).to_pyarrow_table())
    print(f"quarantine: {q.height} rows rejected over all runs; latest:")
    for row in q.sort("rejected_at", descending=True).head(3).iter_rows(named=True):
        print(f"    step {row['step_label']} ({row['plugin']}): {row['error']} "
              f"[{row['source_file']}]")

# Skip interpreter teardown: some deltalake/pyarrow builds abort in C++ at exit.
sys.stdout.flush()
os._exit(0)
