//! Shared helpers for the manifest tests: real Parquet data files and a reader of committed rows.
#![allow(dead_code)]

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir_manifest::{AddFile, Table, TableSchema};
use weir_store::Store;

/// The writer process (`src/bin/weir-manifest-writer.rs`).
pub const WRITER: &str = env!("CARGO_BIN_EXE_weir-manifest-writer");

/// A writer process on the table at `table`'s root: `--table <url>` plus the environment it
/// needs to open that store (for `s3://`, the test server's endpoint and credentials, passed as
/// environment variables, as operators pass them; see `weir_store::testing::process_env`).
pub fn writer(table: &Store) -> std::process::Command {
    let mut command = std::process::Command::new(WRITER);
    command
        .envs(weir_store::testing::process_env(table))
        .args(["--table", table.url().as_str()]);
    command
}

/// Creates a table at `store`'s root with [`schema`], partitioned by `dt`.
pub async fn new_table(store: &Store) -> Table {
    Table::create(store.clone())
        .schema(schema())
        .partition_by(["dt"])
        .await
        .unwrap()
}

/// The table schema the tests use: `id:long,name:string,dt:string` partitioned by `dt`.
pub fn schema() -> TableSchema {
    TableSchema::parse_spec("id:long,name:string,dt:string").unwrap()
}

/// A data file's Parquet bytes (partition column `dt` is not stored in the file, per Delta).
pub fn parquet_bytes(ids: &[i64]) -> Bytes {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    Bytes::from(writer.into_inner().unwrap())
}

/// Writes a data file with `ids` into partition `dt=<dt>` and describes it for a commit.
pub async fn write_file(store: &Store, dt: &str, name: &str, ids: &[i64]) -> AddFile {
    let path = format!("dt={dt}/{name}");
    let bytes = parquet_bytes(ids);
    let size = bytes.len() as i64;
    store.put(&path, bytes).await.unwrap();
    AddFile {
        path,
        size,
        partition_values: [("dt".to_string(), Some(dt.to_string()))].into(),
        num_records: Some(ids.len() as i64),
        ..Default::default()
    }
}

/// Every (dt, id) row the table's latest snapshot references, sorted (reads the Parquet files).
pub async fn committed_rows(table: &Table) -> Vec<(String, i64)> {
    let snapshot = table.refresh().await.unwrap();
    let mut rows = Vec::new();
    for add in snapshot.files() {
        let dt = add.partition_values["dt"].clone().unwrap_or_default();
        let bytes = table.store().get(&add.path).await.unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            rows.extend(ids.values().iter().map(|id| (dt.clone(), *id)));
        }
    }
    rows.sort();
    rows
}

/// A fresh memory store URL unique to this test.
pub fn memory_url(name: &str) -> String {
    format!("memory://{}/{name}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
