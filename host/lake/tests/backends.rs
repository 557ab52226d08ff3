//! The sink and scan on every store backend (`file://`, `memory://`, `s3://` on the moto
//! server that `scripts/with-s3.sh` starts; see `weir_store::testing`).

mod common;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use weir_lake::{Error, PartitionFilter, PartitionedWriter, Scan};
use weir_store::Store;

fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let id: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.clone()));
    let k: ArrayRef = Arc::new(StringArray::from_iter_values(
        ids.map(|i| format!("k{}", i % 3)),
    ));
    RecordBatch::try_from_iter(vec![("id", id), ("k", k)]).unwrap()
}

async fn sink_scan_round_trip(store: &Store) {
    let table = store.child("tables/t");
    let mut writer = PartitionedWriter::new(table.clone(), "txn-1", 0, 0)
        .partition_by(["k"])
        .target_file_size(16 * 1024);
    for chunk in 0..4 {
        writer
            .write(&batch(chunk * 5000..(chunk + 1) * 5000))
            .await
            .unwrap();
    }
    let files = writer.finish().await.unwrap();
    assert!(files.len() > 3, "rolled: {}", files.len());
    let scan = Scan::new(table.clone())
        .filter(PartitionFilter::ne("k", "k1"))
        .split_bytes(4096);
    let mut ids = common::i64_column(&common::scan_all(scan).await.unwrap(), "id");
    ids.sort_unstable();
    assert_eq!(ids, (0..20_000).filter(|i| i % 3 != 1).collect::<Vec<_>>());

    writer.abort().await.unwrap();
    assert!(table.list("").await.unwrap().is_empty());
}

async fn truncated_file_is_named(store: &Store) {
    let bytes = common::parquet_bytes(&[common::id_batch(0..500)], 100);
    store
        .put("t/cut.parquet", bytes[..bytes.len() - 10].to_vec())
        .await
        .unwrap();
    let err = common::scan_all(Scan::new(store.clone()).prefix("t"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Parquet { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&store.url_of("t/cut.parquet")),
        "{err}"
    );
}

weir_store::store_tests!(sink_scan_round_trip, truncated_file_is_named);
