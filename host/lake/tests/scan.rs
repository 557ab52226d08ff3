//! Scan tests over real Parquet files on `file://` and `memory://` stores.

mod common;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type};
use common::*;
use futures::TryStreamExt;
use proptest::prelude::*;
use std::collections::BTreeMap;
use weir_lake::{Error, FileEntry, PartitionFilter, Scan, ScanTask, open_task};
use weir_store::Store;

/// events/ with dt (dates, one null) x n (ints), plus files every scan must skip.
async fn hive_layout(store: &Store) {
    put_ids(store, "events/dt=2026-01-01/n=1/part-0.parquet", 0..10, 4).await;
    put_ids(store, "events/dt=2026-01-01/n=2/part-0.parquet", 10..15, 4).await;
    put_ids(store, "events/dt=2026-01-02/n=1/part-0.parquet", 15..35, 4).await;
    put_ids(
        store,
        "events/dt=__HIVE_DEFAULT_PARTITION__/n=3/part-0.parquet",
        35..36,
        4,
    )
    .await;
    for junk in [
        "events/_delta_log/00000000000000000000.json",
        "events/_weir/lease.json",
        "events/.hidden.parquet",
        "events/dt=2026-01-01/n=1/_SUCCESS",
        "events/dt=2026-01-01/n=1/.part-0.parquet.crc",
    ] {
        put_raw(store, junk, "not parquet").await;
    }
}

fn dates(batches: &[RecordBatch]) -> Vec<Option<i32>> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("dt")
                .unwrap()
                .as_primitive::<Date32Type>()
                .iter()
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn check_hive_scan(store: Store) {
    hive_layout(&store).await;
    let scan = Scan::new(store.clone()).prefix("events/");
    let schema = scan.schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "dt", "n"]);
    assert_eq!(schema.field(2).data_type(), &DataType::Date32);
    assert_eq!(schema.field(3).data_type(), &DataType::Int64);

    let batches = scan_all(scan.clone()).await.unwrap();
    for b in &batches {
        assert_eq!(b.schema(), schema);
    }
    let ids = i64_column(&batches, "id");
    assert_eq!(
        ids,
        (0..36).collect::<Vec<_>>(),
        "listing is sorted and junk is skipped"
    );
    let ns = i64_column(&batches, "n");
    let expected_n: Vec<i64> = (0..36)
        .map(|i| match i {
            0..10 => 1,
            10..15 => 2,
            15..35 => 1,
            _ => 3,
        })
        .collect();
    assert_eq!(ns, expected_n);
    let dts = dates(&batches);
    let jan1 = 20454; // 2026-01-01 in days since the epoch
    assert_eq!(dts[0], Some(jan1));
    assert_eq!(dts[20], Some(jan1 + 1));
    assert_eq!(dts[35], None, "__HIVE_DEFAULT_PARTITION__ is null");

    // A type override.
    let scan = Scan::new(store.clone())
        .prefix("events")
        .partition_type("n", DataType::Utf8);
    let schema = scan.schema().await.unwrap();
    assert_eq!(
        schema.field_with_name("n").unwrap().data_type(),
        &DataType::Utf8
    );
    let batches = scan_all(scan.clone()).await.unwrap();
    let first = batches[0].column_by_name("n").unwrap();
    assert_eq!(first.as_string::<i32>().value(0), "1");
}

#[tokio::test]
async fn hive_scan_on_file_store() {
    let (_dir, store) = file_store();
    check_hive_scan(store).await;
}

#[tokio::test]
async fn hive_scan_on_memory_store() {
    check_hive_scan(memory_store("hive")).await;
}

#[tokio::test]
async fn escaped_partition_values_are_decoded() {
    let (dir, store) = file_store();
    put_ids(&store, "t/k=a%2Fb%3Dc/part-0.parquet", 0..3, 10).await;
    put_ids(&store, "t/k=100%25/part-0.parquet", 3..5, 10).await;
    // The directory on disk has the Hive-escaped name, not a double-escaped one.
    assert!(dir.path().join("t/k=a%2Fb%3Dc/part-0.parquet").exists());
    let batches = scan_all(Scan::new(store).prefix("t")).await.unwrap();
    let mut ks: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name("k").unwrap().as_string::<i32>();
            a.iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    ks.dedup();
    assert_eq!(ks, ["100%", "a/b=c"]);
}

#[tokio::test]
async fn pruned_partitions_are_never_opened() {
    let store = memory_store("prune");
    hive_layout(&store).await;
    // A corrupt file in partition dt=2026-01-03: reading it fails loudly...
    put_raw(
        &store,
        "events/dt=2026-01-03/n=1/part-0.parquet",
        "garbage, not parquet",
    )
    .await;
    let err = scan_all(Scan::new(store.clone()).prefix("events"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dt=2026-01-03"), "{err}");

    // ...so scans that succeed prove it was pruned before any read.
    let cases: Vec<(Vec<PartitionFilter>, Vec<i64>)> = vec![
        (
            vec![PartitionFilter::lt("dt", "2026-01-03")],
            (0..35).collect(),
        ),
        (
            vec![PartitionFilter::eq("dt", "2026-01-02")],
            (15..35).collect(),
        ),
        (vec![PartitionFilter::is_null("dt")], vec![35]),
        (
            vec![
                PartitionFilter::in_list("dt", ["2026-01-01", "2026-01-02"]),
                PartitionFilter::ne("n", "1"),
            ],
            (10..15).collect(),
        ),
        (
            vec![PartitionFilter::ge("n", "2"), PartitionFilter::le("n", "2")],
            (10..15).collect(),
        ),
        (vec![PartitionFilter::gt("n", "2")], vec![35]),
    ];
    for (filters, expected) in cases {
        let mut scan = Scan::new(store.clone()).prefix("events").split_bytes(1);
        for f in &filters {
            scan = scan.filter(f.clone());
        }
        let batches = scan_all(scan.clone()).await.unwrap();
        assert_eq!(i64_column(&batches, "id"), expected, "filters {filters:?}");
    }

    // Filters on non-partition columns and bad literals are errors, not silently ignored.
    let err = Scan::new(store.clone())
        .prefix("events")
        .filter(PartitionFilter::eq("id", "1"))
        .plan()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidPartition { .. }) && err.to_string().contains("\"id\""),
        "{err}"
    );
    let err = Scan::new(store)
        .prefix("events")
        .filter(PartitionFilter::eq("n", "one"))
        .plan()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"one\""), "{err}");
}

#[tokio::test]
async fn explicit_file_list_with_partition_values() {
    let store = memory_store("files");
    // Paths are arbitrary: partition values come from the list, not the directories.
    let a = put_ids(&store, "data/a.parquet", 0..5, 2).await;
    let b = put_ids(&store, "data/b.parquet", 5..9, 2).await;
    let entry = |path: &str, size, region: Option<&str>, day: &str| FileEntry {
        path: path.into(),
        size,
        partition_values: BTreeMap::from([
            ("region".to_string(), region.map(String::from)),
            ("day".to_string(), Some(day.to_string())),
        ]),
    };
    let files = vec![
        entry("data/a.parquet", a, Some("eu"), "2026-01-01"),
        entry("data/b.parquet", b, None, "2026-01-02"),
    ];
    let scan = Scan::new(store.clone())
        .files(files.clone())
        .columns(["region", "id", "day"]);
    let schema = scan.schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["region", "id", "day"]);
    assert_eq!(schema.field(2).data_type(), &DataType::Date32);
    let batches = scan_all(scan.clone()).await.unwrap();
    let regions: Vec<Option<String>> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(String::from))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        regions
            .iter()
            .filter(|r| r.as_deref() == Some("eu"))
            .count(),
        5
    );
    assert_eq!(regions.iter().filter(|r| r.is_none()).count(), 4);

    let pruned = Scan::new(store.clone())
        .files(files.clone())
        .filter(PartitionFilter::eq("region", "eu"));
    let plan = pruned.plan().await.unwrap();
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.tasks[0].path, "data/a.parquet");

    // Mismatched partition keys name the file.
    let mut bad = files;
    bad[1].partition_values.remove("day");
    let err = Scan::new(store.clone())
        .files(bad)
        .plan()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&store.url_of("data/b.parquet")),
        "{err}"
    );
}

#[tokio::test]
async fn projection_decodes_only_requested_columns() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let store = memory_store("proj");
    // One file whose `name` column chunk we corrupt: reading `name` fails, reading `id` doesn't.
    let mut bytes = parquet_bytes(&[id_batch(0..5000)], 5000);
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.clone())).unwrap();
    let (start, len) = reader.metadata().row_group(0).column(1).byte_range();
    let (start, len) = (start as usize, len as usize);
    for b in &mut bytes[start + len / 2..start + len / 2 + 16] {
        *b ^= 0xA5;
    }
    put_raw(&store, "dt=2026-01-01/f.parquet", bytes).await;

    let all = scan_all(Scan::new(store.clone())).await;
    assert!(
        all.is_err(),
        "corrupting the name column must break a full read"
    );

    let scan = Scan::new(store.clone()).columns(["dt", "id"]);
    let batches = scan_all(scan.clone()).await.unwrap();
    assert_eq!(batches[0].num_columns(), 2);
    assert_eq!(batches[0].schema().field(0).name(), "dt");
    assert_eq!(i64_column(&batches, "id"), (0..5000).collect::<Vec<_>>());

    // Only partition columns: no file column decoded, row count kept.
    let batches = scan_all(Scan::new(store.clone()).columns(["dt"]))
        .await
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5000);
    assert_eq!(batches[0].column(0).null_count(), 0);

    let err = Scan::new(store.clone())
        .columns(["nope"])
        .schema()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Schema { .. }) && err.to_string().contains("nope"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&store.url_of("dt=2026-01-01/f.parquet")),
        "{err}"
    );
}

#[tokio::test]
async fn batch_size_bounds_batches() {
    let store = memory_store("batch");
    put_ids(&store, "f.parquet", 0..1000, 300).await;
    let batches = scan_all(Scan::new(store).batch_size(128)).await.unwrap();
    assert!(
        batches
            .iter()
            .all(|b| b.num_rows() <= 128 && b.num_rows() > 0)
    );
    assert_eq!(i64_column(&batches, "id"), (0..1000).collect::<Vec<_>>());
}

async fn check_corrupt_files_named(store: Store) {
    let good = parquet_bytes(&[id_batch(0..1000)], 100);
    put_raw(
        &store,
        "bad/truncated.parquet",
        good[..good.len() / 2].to_vec(),
    )
    .await;
    put_raw(
        &store,
        "bad2/text.parquet",
        "this is not a parquet file at all",
    )
    .await;
    // Truncated just before the footer magic: only the last bytes are missing.
    put_raw(
        &store,
        "bad3/short.parquet",
        good[..good.len() - 3].to_vec(),
    )
    .await;
    for key in [
        "bad/truncated.parquet",
        "bad2/text.parquet",
        "bad3/short.parquet",
    ] {
        let prefix = key.split('/').next().unwrap();
        let url = store.url_of(key);
        // Via stream (whole-file task).
        let err = scan_all(Scan::new(store.clone()).prefix(prefix))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Parquet { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err} should name {url}");
        // Via planning (footer read for splitting).
        let err = Scan::new(store.clone())
            .prefix(prefix)
            .split_bytes(1)
            .plan()
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&url), "{err} should name {url}");
    }
}

#[tokio::test]
async fn corrupt_files_are_named_on_file_store() {
    let (_dir, store) = file_store();
    check_corrupt_files_named(store).await;
}

#[tokio::test]
async fn corrupt_files_are_named_on_memory_store() {
    check_corrupt_files_named(memory_store("corrupt")).await;
}

#[tokio::test]
async fn differing_file_schemas_name_the_file() {
    let store = memory_store("schemas");
    put_ids(&store, "a.parquet", 0..3, 10).await;
    let other = arrow::array::record_batch!(("id", Utf8, ["x", "y"])).unwrap();
    put_raw(&store, "b.parquet", parquet_bytes(&[other], 10)).await;
    let err = scan_all(Scan::new(store.clone()).columns(["id"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&store.url_of("b.parquet")),
        "{err}"
    );
    assert!(err.to_string().contains("\"id\""), "{err}");
}

#[tokio::test]
async fn empty_scans() {
    let store = memory_store("empty");
    let scan = Scan::new(store.clone()).prefix("nothing");
    assert!(scan.plan().await.unwrap().tasks.is_empty());
    assert!(scan_all(scan.clone()).await.unwrap().is_empty());
    let err = scan.schema().await.unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    let err = Scan::new(store).batch_size(0).plan().await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[tokio::test]
async fn tasks_round_trip_through_serde() {
    let store = memory_store("serde");
    put_ids(&store, "k=v/f.parquet", 0..1000, 100).await;
    let plan = Scan::new(store.clone())
        .split_bytes(1)
        .plan()
        .await
        .unwrap();
    assert_eq!(
        plan.tasks.len(),
        10,
        "one task per row group at split_bytes=1"
    );
    let json = serde_json::to_string(&plan).unwrap();
    let back: weir_lake::ScanPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back.tasks, plan.tasks);
    assert_eq!(back.projection, plan.projection);
    // Run a shipped task on its own.
    let task: ScanTask = back.tasks[3].clone();
    assert_eq!(task.row_groups, Some(3..4));
    let batches: Vec<RecordBatch> = open_task(&store, &task, &back.projection)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(i64_column(&batches, "id"), (300..400).collect::<Vec<_>>());
    assert_eq!(
        batches[0]
            .column_by_name("k")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "v"
    );
    // A range past the file's row groups is an error naming the file.
    let mut bad = task;
    bad.row_groups = Some(5..11);
    let err = open_task(&store, &bad, &back.projection)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&store.url_of("k=v/f.parquet")),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// For random files, row-group sizes and split targets, the tasks read every row exactly once.
    #[test]
    fn splits_read_every_row_once(
        files in proptest::collection::vec((0i64..1500, 1usize..400), 1..4),
        split_bytes in 1u64..30_000,
        batch_size in 1usize..700,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let store = memory_store("prop");
            let mut next = 0i64;
            for (i, (rows, rg)) in files.iter().enumerate() {
                put_ids(&store, &format!("part=p{i}/f.parquet"), next..next + rows, *rg).await;
                next += rows;
            }
            let scan = Scan::new(store.clone()).split_bytes(split_bytes).batch_size(batch_size);
            let plan = scan.plan().await.unwrap();
            // Tasks of one file are contiguous, non-empty and cover its row groups.
            for task in &plan.tasks {
                if let Some(r) = &task.row_groups {
                    prop_assert!(r.start < r.end, "empty task {task:?}");
                }
            }
            let mut ids = Vec::new();
            for task in &plan.tasks {
                let batches: Vec<RecordBatch> = open_task(&store, task, &plan.projection).try_collect().await.unwrap();
                prop_assert!(batches.iter().all(|b| b.num_rows() <= batch_size));
                ids.extend(i64_column(&batches, "id"));
            }
            ids.sort_unstable();
            prop_assert_eq!(ids, (0..next).collect::<Vec<_>>());
            // And through the convenience stream, in order.
            let streamed = scan_all(scan.clone()).await.unwrap();
            prop_assert_eq!(i64_column(&streamed, "id"), (0..next).collect::<Vec<_>>());
            Ok(())
        })?;
    }
}
