//! Shared helpers for weir-lake's integration tests: stores and real Parquet files.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use weir_store::Store;

/// A fresh `memory://` store with a unique name.
pub fn memory_store(tag: &str) -> Store {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Store::from_url(&format!(
        "memory://lake-{tag}-{n}-{}/table",
        std::process::id()
    ))
    .unwrap()
}

/// A `file://` store in a fresh temporary directory (kept alive by the returned guard).
pub fn file_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::from_url(dir.path().to_str().unwrap()).unwrap();
    (dir, store)
}

/// Puts `bytes` at `key` verbatim (no re-escaping of `%`), like the lake does.
pub async fn put_raw(store: &Store, key: &str, bytes: impl Into<Bytes>) {
    let root = store.path("");
    let full = [root.as_ref(), key]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let path = Path::parse(full).unwrap();
    store
        .object_store()
        .put(&path, bytes.into().into())
        .await
        .unwrap();
}

/// Encodes batches as a zstd Parquet file with row groups of at most `row_group_rows`.
pub fn parquet_bytes(batches: &[RecordBatch], row_group_rows: usize) -> Vec<u8> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batches[0].schema(), Some(props)).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
    out
}

/// A batch with `id` (Int64) and `name` (Utf8, "n<id>") for ids in `ids`.
pub fn id_batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let id: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.clone()));
    let name: ArrayRef = Arc::new(StringArray::from_iter_values(ids.map(|i| format!("n{i}"))));
    RecordBatch::try_new(schema, vec![id, name]).unwrap()
}

/// Writes an `id_batch` file at `key`; returns its size.
pub async fn put_ids(
    store: &Store,
    key: &str,
    ids: std::ops::Range<i64>,
    row_group_rows: usize,
) -> u64 {
    let bytes = parquet_bytes(&[id_batch(ids)], row_group_rows);
    let size = bytes.len() as u64;
    put_raw(store, key, bytes).await;
    size
}

/// Collects a stream of batches.
pub async fn collect(
    stream: futures::stream::BoxStream<'static, weir_lake::Result<RecordBatch>>,
) -> weir_lake::Result<Vec<RecordBatch>> {
    stream.try_collect().await
}

/// Plans and reads a whole scan.
pub async fn scan_all(scan: weir_lake::Scan) -> weir_lake::Result<Vec<RecordBatch>> {
    scan.stream().await?.try_collect().await
}

/// Every value of Int64 column `name` across batches.
pub fn i64_column(batches: &[RecordBatch], name: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column_by_name(name)
                .unwrap_or_else(|| panic!("no column {name}"))
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            a.values().to_vec()
        })
        .collect()
}
