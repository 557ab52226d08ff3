//! Lake I/O: Parquet scans and hive-partitioned Parquet sinks over a weir-store
