//! Sink tests: real Parquet output on `file://` and `memory://`, read back with the scan.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, StructArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit, TimestampMicrosecondType};
use common::*;
use object_store::ObjectStoreExt;
use weir_lake::{Compression, Error, FileEntry, PartitionedWriter, Scan, WrittenFile};
use weir_store::Store;

const TXN: &str = "0190f3c2-7a4b-7000-8000-000000000001";

/// Rows: id, region (eu, us, "a/b", null), day (Date32, 3 values), value.
fn sample(ids: std::ops::Range<i64>) -> RecordBatch {
    let regions = [Some("eu"), Some("us"), Some("a/b"), None];
    let id: Vec<i64> = ids.collect();
    let region: StringArray = id.iter().map(|i| regions[(*i % 4) as usize]).collect();
    let day: Date32Array = id.iter().map(|i| Some(20454 + (*i % 3) as i32)).collect();
    let value: Float64Array = id.iter().map(|i| Some(*i as f64 / 2.0)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("day", DataType::Date32, false),
        Field::new("value", DataType::Float64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(id)),
        Arc::new(region),
        Arc::new(day),
        Arc::new(value),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn entries(files: &[WrittenFile]) -> Vec<FileEntry> {
    files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            size: f.size,
            partition_values: f.partition_values.clone(),
        })
        .collect()
}

/// (id, region, day, value) rows of scanned batches, sorted by id.
fn rows(batches: &[RecordBatch]) -> Vec<(i64, Option<String>, i32, String)> {
    let mut out = Vec::new();
    for b in batches {
        let id = b
            .column_by_name("id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        let region = b.column_by_name("region").unwrap().as_string::<i32>();
        let day = b
            .column_by_name("day")
            .unwrap()
            .as_primitive::<arrow::datatypes::Date32Type>();
        let value = b
            .column_by_name("value")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                id.value(i),
                region.is_valid(i).then(|| region.value(i).to_string()),
                day.value(i),
                value.value(i).to_string(),
            ));
        }
    }
    out.sort_by_key(|r| r.0);
    out
}

async fn file_metadata(store: &Store, key: &str) -> Arc<parquet::file::metadata::ParquetMetaData> {
    let path = object_store::path::Path::parse(
        [store.path("").as_ref(), key]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/"),
    )
    .unwrap();
    let bytes = store
        .object_store()
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    Arc::new(
        parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap(),
    )
}

async fn check_round_trip(store: Store) {
    let mut writer =
        PartitionedWriter::new(store.clone(), TXN, 7, 2).partition_by(["day", "region"]);
    writer.write(&sample(0..600)).await.unwrap();
    writer.write(&sample(600..1000)).await.unwrap();
    let files = writer.finish().await.unwrap();
    assert_eq!(files.len(), 12, "3 days x 4 regions");
    for f in &files {
        let name = f.path.rsplit('/').next().unwrap();
        assert!(
            name.starts_with(&format!("part-{TXN}-t7-a2-")) && name.ends_with(".zstd.parquet"),
            "{name}"
        );
        let day = f.partition_values["day"].as_deref().unwrap();
        assert!(
            f.path.starts_with(&format!("day={day}/region=")),
            "{}",
            f.path
        );
        let head = store
            .object_store()
            .head(
                &object_store::path::Path::parse(
                    [store.path("").as_ref(), &f.path]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join("/"),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(head.size, f.size, "{}", f.path);
        let meta = file_metadata(&store, &f.path).await;
        let columns: Vec<&str> = meta
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name())
            .collect();
        assert_eq!(
            columns,
            ["id", "value"],
            "partition columns are not in the file data"
        );
        assert_eq!(
            meta.row_group(0).column(0).compression(),
            parquet::basic::Compression::ZSTD(Default::default())
        );
        assert_eq!(meta.file_metadata().num_rows() as u64, f.num_records);
    }
    assert_eq!(files.iter().map(|f| f.num_records).sum::<u64>(), 1000);
    let escaped = files
        .iter()
        .find(|f| f.partition_values["region"].as_deref() == Some("a/b"))
        .unwrap();
    assert!(escaped.path.contains("region=a%2Fb/"), "{}", escaped.path);
    let null = files
        .iter()
        .find(|f| f.partition_values["region"].is_none())
        .unwrap();
    assert!(
        null.path.contains("region=__HIVE_DEFAULT_PARTITION__/"),
        "{}",
        null.path
    );

    let expected = rows(&[sample(0..1000)]);
    // Read back by listing the directory (hive parsing) and by the manifest's file list.
    let listed = scan_all(Scan::new(store.clone())).await.unwrap();
    assert_eq!(rows(&listed), expected);
    let from_list = scan_all(
        Scan::new(store.clone())
            .files(entries(&files))
            .partition_type("region", DataType::Utf8),
    )
    .await
    .unwrap();
    assert_eq!(rows(&from_list), expected);
}

#[tokio::test]
async fn round_trip_on_file_store() {
    let (dir, store) = file_store();
    check_round_trip(store).await;
    // Physical directory names are Hive-standard.
    let day = dir.path().join("day=2026-01-01");
    assert!(day.join("region=a%2Fb").is_dir());
}

#[tokio::test]
async fn round_trip_on_memory_store() {
    check_round_trip(memory_store("sink-rt")).await;
}

#[tokio::test]
async fn files_roll_at_the_target_size() {
    let store = memory_store("roll");
    let target = 32 * 1024;
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0)
        .partition_by(["day"])
        .target_file_size(target)
        .compression(Compression::SNAPPY);
    // Poorly compressible values so files actually fill up.
    let mut state = 0x2545F4914F6CDD1Du64;
    for chunk in 0..10 {
        let ids = chunk * 10_000..(chunk + 1) * 10_000;
        let mut batch = sample(ids.clone());
        let noise: Int64Array = ids
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as i64
            })
            .collect();
        batch = RecordBatch::try_new(batch.schema(), {
            let mut c = batch.columns().to_vec();
            c[3] = arrow::compute::cast(&noise, &DataType::Float64).unwrap();
            c
        })
        .unwrap();
        writer.write(&batch).await.unwrap();
    }
    let files = writer.finish().await.unwrap();
    assert!(
        files.len() >= 3 * 10,
        "expected many files per day, got {}",
        files.len()
    );
    let max = files.iter().map(|f| f.size).max().unwrap();
    assert!(
        max <= 2 * target,
        "largest file {max} bytes is far over the {target} byte target"
    );
    let mut names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), files.len(), "every file has its own name");
    assert!(files.iter().all(|f| f.path.ends_with(".snappy.parquet")));
    assert_eq!(files.iter().map(|f| f.num_records).sum::<u64>(), 100_000);
    let back = scan_all(Scan::new(store).columns(["id"])).await.unwrap();
    let mut ids = i64_column(&back, "id");
    ids.sort_unstable();
    assert_eq!(ids, (0..100_000).collect::<Vec<_>>());
}

/// Files larger than the upload part size go up as multipart uploads: many small parts, more
/// than can be in flight at once, each several of the writer's buffers. They must read back
/// whole and in order.
async fn check_multipart_round_trip(store: Store) {
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0)
        .partition_by(["day"])
        .compression(Compression::UNCOMPRESSED)
        .row_group_bytes(4 * 1024)
        .upload_part_bytes(16 * 1024);
    for chunk in 0..4 {
        writer
            .write(&sample(chunk * 20_000..(chunk + 1) * 20_000))
            .await
            .unwrap();
    }
    let files = writer.finish().await.unwrap();
    assert_eq!(files.len(), 3);
    for f in &files {
        assert!(
            f.size > 8 * 16 * 1024,
            "{} is only {} bytes",
            f.path,
            f.size
        );
        assert_eq!(
            store.head(&f.path).await.unwrap().size,
            f.size,
            "{}",
            f.path
        );
    }
    let back = scan_all(Scan::new(store)).await.unwrap();
    assert_eq!(rows(&back), rows(&[sample(0..80_000)]));
}

#[tokio::test]
async fn multipart_round_trip_on_file_store() {
    let (_dir, store) = file_store();
    check_multipart_round_trip(store).await;
}

#[tokio::test]
async fn multipart_round_trip_on_memory_store() {
    check_multipart_round_trip(memory_store("multipart")).await;
}

#[tokio::test]
async fn timestamps_are_written_as_utc_micros() {
    let (_dir, store) = file_store();
    let base_ns: i64 = 1_767_225_600_123_456_789; // 2026-01-01T00:00:00.123456789Z
    let ns = TimestampNanosecondArray::from(vec![Some(base_ns), None]).with_timezone("+02:00");
    let ms = TimestampMillisecondArray::from(vec![Some(base_ns / 1_000_000), Some(0)]);
    let s = TimestampSecondArray::from(vec![Some(base_ns / 1_000_000_000), Some(1)])
        .with_timezone("UTC");
    let inner = TimestampNanosecondArray::from(vec![Some(base_ns), Some(base_ns)]);
    let nested = StructArray::from(vec![(
        Arc::new(Field::new("at", inner.data_type().clone(), true)),
        Arc::new(inner) as ArrayRef,
    )]);
    let k = Int32Array::from(vec![1, 1]);
    let batch = RecordBatch::try_from_iter(vec![
        ("ns", Arc::new(ns) as ArrayRef),
        ("ms", Arc::new(ms) as ArrayRef),
        ("s", Arc::new(s) as ArrayRef),
        ("nested", Arc::new(nested) as ArrayRef),
        ("k", Arc::new(k) as ArrayRef),
    ])
    .unwrap();
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 1, 0).partition_by(["k"]);
    writer.write(&batch).await.unwrap();
    let files = writer.finish().await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].partition_values,
        BTreeMap::from([("k".to_string(), Some("1".to_string()))])
    );

    let utc_us = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let meta = file_metadata(&store, &files[0].path).await;
    for column in meta.file_metadata().schema_descr().columns() {
        let logical = format!("{:?}", column.logical_type_ref());
        assert!(
            logical.contains("is_adjusted_to_u_t_c: true") && logical.contains("MICROS"),
            "{}: {logical}",
            column.name()
        );
    }
    let back = scan_all(Scan::new(store)).await.unwrap();
    let b = &back[0];
    for name in ["ns", "ms", "s"] {
        assert_eq!(
            b.schema().field_with_name(name).unwrap().data_type(),
            &utc_us,
            "{name}"
        );
    }
    let ns_back = b
        .column_by_name("ns")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        ns_back.value(0),
        base_ns / 1000,
        "ns truncated to us, instant preserved"
    );
    assert!(ns_back.is_null(1));
    let ms_back = b
        .column_by_name("ms")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ms_back.value(0), base_ns / 1_000_000 * 1000);
    let s_back = b
        .column_by_name("s")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(s_back.value(1), 1_000_000);
    let nested_back = b.column_by_name("nested").unwrap().as_struct();
    assert_eq!(nested_back.column(0).data_type(), &utc_us);

    // Stats carry ISO-8601 UTC timestamps.
    let stats: serde_json::Value =
        serde_json::from_str(files[0].stats.as_deref().unwrap()).unwrap();
    assert_eq!(stats["minValues"]["ns"], "2026-01-01T00:00:00.123456Z");
    assert_eq!(stats["minValues"]["s"], "1970-01-01T00:00:01.000000Z");
    assert_eq!(stats["maxValues"]["ms"], "2026-01-01T00:00:00.123000Z");
    assert_eq!(stats["nullCount"]["ns"], 1);
    assert!(
        stats["minValues"].get("nested").is_none() && stats["nullCount"].get("nested").is_none()
    );
}

#[tokio::test]
async fn stats_match_an_independent_computation() {
    let long_a = "a".repeat(40);
    let long_z = format!("z{}", "y".repeat(40));
    let ints: Vec<Option<i32>> = (0..500)
        .map(|i| {
            if i % 7 == 0 {
                None
            } else {
                Some((i * 37) % 1000 - 400)
            }
        })
        .collect();
    let strs: Vec<Option<String>> = (0..500)
        .map(|i| match i % 5 {
            0 => None,
            1 => Some(long_a.clone()),
            2 => Some(long_z.clone()),
            _ => Some(format!("m{i}")),
        })
        .collect();
    let floats: Vec<Option<f64>> = (0..500)
        .map(|i| Some(if i == 250 { f64::NAN } else { i as f64 }))
        .collect();
    let clean: Vec<Option<f64>> = (0..500)
        .map(|i| (i % 3 != 0).then_some(i as f64 * -1.5))
        .collect();
    let bools: Vec<Option<bool>> = (0..500)
        .map(|i| (i % 4 != 0).then_some(i % 2 == 0))
        .collect();
    let micros: Vec<Option<i64>> = (0..500)
        .map(|i| Some(1_700_000_000_000_000 + i * 1_000_001))
        .collect();
    let part: Vec<&str> = (0..500).map(|i| if i < 300 { "x" } else { "y" }).collect();
    // Above i64::MAX: stored in a signed physical type, ordered as unsigned.
    let unsigned: Vec<u64> = (0..500).map(|i| u64::MAX - (i * 7919) % 1000).collect();
    let infinite: Vec<f64> = (0..500)
        .map(|i| if i == 50 { f64::INFINITY } else { i as f64 })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int32, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("f", DataType::Float64, false),
        Field::new("g", DataType::Float64, true),
        Field::new("b", DataType::Boolean, true),
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "st",
            DataType::Struct(Fields::from(vec![Field::new("x", DataType::Int32, true)])),
            true,
        ),
        Field::new("p", DataType::Utf8, false),
        Field::new("u", DataType::UInt64, false),
        Field::new("h", DataType::Float64, false),
    ]));
    let st = StructArray::from(vec![(
        Arc::new(Field::new("x", DataType::Int32, true)),
        Arc::new(Int32Array::from(ints.clone())) as ArrayRef,
    )]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(ints.clone())),
        Arc::new(StringArray::from(strs.clone())),
        Arc::new(Float64Array::from(floats)),
        Arc::new(Float64Array::from(clean.clone())),
        Arc::new(BooleanArray::from(bools.clone())),
        Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone("UTC")),
        Arc::new(st),
        Arc::new(StringArray::from(part.clone())),
        Arc::new(UInt64Array::from(unsigned.clone())),
        Arc::new(Float64Array::from(infinite)),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    // Default row groups (one per file), then tiny ones, so stats merge across row groups.
    for row_group_bytes in [16 << 20, 1 << 10] {
        let store = memory_store("stats");
        let mut writer = PartitionedWriter::new(store.clone(), TXN, 3, 1)
            .partition_by(["p"])
            .row_group_bytes(row_group_bytes);
        // Two writes, so stats merge across batches.
        writer.write(&batch.slice(0, 200)).await.unwrap();
        writer.write(&batch.slice(200, 300)).await.unwrap();
        let files = writer.finish().await.unwrap();
        assert_eq!(files.len(), 2);
        for file in files {
            let row_groups = row_group_count(&store, &file.path).await;
            assert!(
                (row_group_bytes > 1 << 10) == (row_groups == 1),
                "{row_groups} row groups at {row_group_bytes} bytes"
            );
            let rows: Vec<usize> = (0..500)
                .filter(|&r| Some(part[r]) == file.partition_values["p"].as_deref())
                .collect();
            let stats: serde_json::Value =
                serde_json::from_str(file.stats.as_deref().unwrap()).unwrap();
            assert_eq!(stats["numRecords"], rows.len());
            assert_eq!(file.num_records as usize, rows.len());
            let pick = |v: &Vec<Option<i32>>| rows.iter().filter_map(|&r| v[r]).collect::<Vec<_>>();
            let is = pick(&ints);
            assert_eq!(stats["minValues"]["i"], *is.iter().min().unwrap());
            assert_eq!(stats["maxValues"]["i"], *is.iter().max().unwrap());
            assert_eq!(stats["nullCount"]["i"], rows.len() - is.len());
            let ss: Vec<&String> = rows.iter().filter_map(|&r| strs[r].as_ref()).collect();
            let min_s = ss.iter().min().unwrap();
            let max_s = ss.iter().max().unwrap();
            assert_eq!(
                stats["minValues"]["s"],
                min_s.chars().take(32).collect::<String>()
            );
            if max_s.chars().count() > 32 {
                assert!(
                    stats["maxValues"].get("s").is_none(),
                    "a truncated max would be wrong: omitted"
                );
            } else {
                assert_eq!(stats["maxValues"]["s"], max_s.as_str());
            }
            assert_eq!(stats["nullCount"]["s"], rows.len() - ss.len());
            // NaN in f (row 250): no bounds, but a null count.
            if rows.contains(&250) {
                assert!(
                    stats["minValues"].get("f").is_none() && stats["maxValues"].get("f").is_none()
                );
            } else {
                assert_eq!(stats["minValues"]["f"], rows[0] as f64);
                assert_eq!(stats["maxValues"]["f"], *rows.last().unwrap() as f64);
            }
            assert_eq!(stats["nullCount"]["f"], 0);
            let gs: Vec<f64> = rows.iter().filter_map(|&r| clean[r]).collect();
            assert_eq!(
                stats["minValues"]["g"],
                gs.iter().cloned().fold(f64::INFINITY, f64::min)
            );
            assert_eq!(
                stats["maxValues"]["g"],
                gs.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            );
            assert!(stats["minValues"].get("b").is_none());
            assert_eq!(
                stats["nullCount"]["b"],
                rows.iter().filter(|&&r| bools[r].is_none()).count()
            );
            let ts: Vec<i64> = rows.iter().filter_map(|&r| micros[r]).collect();
            let iso = |us: i64| {
                chrono::DateTime::from_timestamp_micros(us)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string()
            };
            assert_eq!(stats["minValues"]["t"], iso(*ts.iter().min().unwrap()));
            assert_eq!(stats["maxValues"]["t"], iso(*ts.iter().max().unwrap()));
            assert!(
                stats["nullCount"].get("st").is_none(),
                "nested columns are skipped"
            );
            assert!(
                stats["nullCount"].get("p").is_none(),
                "partition columns have no stats"
            );
            let us: Vec<u64> = rows.iter().map(|&r| unsigned[r]).collect();
            assert_eq!(stats["minValues"]["u"], *us.iter().min().unwrap());
            assert_eq!(stats["maxValues"]["u"], *us.iter().max().unwrap());
            // +inf in h (row 50): JSON has no infinity, so that bound is omitted; the other stays.
            assert_eq!(stats["minValues"]["h"], rows[0] as f64);
            if rows.contains(&50) {
                assert!(stats["maxValues"].get("h").is_none());
            } else {
                assert_eq!(stats["maxValues"]["h"], *rows.last().unwrap() as f64);
            }
        }
    }
}

/// The number of row groups in the Parquet file at `path`.
async fn row_group_count(store: &Store, path: &str) -> usize {
    let bytes = store.get(path).await.unwrap();
    parquet::file::reader::FileReader::num_row_groups(
        &parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap(),
    )
}

#[tokio::test]
async fn abort_deletes_everything_written() {
    let (dir, store) = file_store();
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0)
        .partition_by(["day"])
        .target_file_size(8 * 1024)
        .upload_part_bytes(1024);
    for chunk in 0..5 {
        writer
            .write(&sample(chunk * 5000..(chunk + 1) * 5000))
            .await
            .unwrap();
    }
    assert!(
        !writer.written().is_empty(),
        "some files completed before the abort"
    );
    assert!(!store.list("").await.unwrap().is_empty());
    writer.abort().await.unwrap();
    assert!(
        store.list("").await.unwrap().is_empty(),
        "{:?}",
        store.list("").await.unwrap()
    );
    // No staging files of aborted multipart uploads are left either.
    let leftovers: Vec<_> = walk(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // abort after finish removes the finished files (for a failed commit).
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 1).partition_by(["day"]);
    writer.write(&sample(0..100)).await.unwrap();
    assert_eq!(writer.finish().await.unwrap().len(), 3);
    writer.abort().await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_rerun_with_the_same_attempt_never_overwrites() {
    let store = memory_store("create-only");
    let mut first = PartitionedWriter::new(store.clone(), TXN, 4, 0).partition_by(["day"]);
    first.write(&sample(0..30)).await.unwrap();
    let written = first.finish().await.unwrap();
    // Same task and attempt, so the same file names; different rows.
    let mut second = PartitionedWriter::new(store.clone(), TXN, 4, 0).partition_by(["day"]);
    let mut other = sample(0..30);
    other = RecordBatch::try_new(other.schema(), {
        let mut c = other.columns().to_vec();
        c[0] = Arc::new(Int64Array::from_iter_values(100..130));
        c
    })
    .unwrap();
    second.write(&other).await.unwrap();
    let err = second.finish().await.unwrap_err();
    assert!(
        matches!(err, Error::Store(weir_store::Error::AlreadyExists { .. })),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&written[0].path.split('/').next().unwrap().to_string()),
        "{err}"
    );
    // The first writer's data is intact.
    let back = scan_all(Scan::new(store).files(entries(&written)))
        .await
        .unwrap();
    let mut ids = i64_column(&back, "id");
    ids.sort_unstable();
    assert_eq!(ids, (0..30).collect::<Vec<_>>());
}

#[tokio::test]
async fn open_partitions_are_bounded() {
    let store = memory_store("lru");
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0)
        .partition_by(["region"])
        .max_open_partitions(2);
    // Each batch's rows cycle through 4 regions, so with 2 open files some must close early.
    for chunk in 0..3 {
        writer
            .write(&sample(chunk * 100..(chunk + 1) * 100))
            .await
            .unwrap();
    }
    let files = writer.finish().await.unwrap();
    assert!(
        files.len() > 4,
        "closing least-recent files produces extra files: {}",
        files.len()
    );
    assert_eq!(
        rows(&scan_all(Scan::new(store)).await.unwrap()),
        rows(&[sample(0..300)])
    );
}

#[tokio::test]
async fn bad_input_is_named() {
    let store = memory_store("bad");
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0).partition_by(["nope"]);
    let err = writer.write(&sample(0..3)).await.unwrap_err();
    assert!(
        matches!(err, Error::Schema { .. }) && err.to_string().contains("\"nope\""),
        "{err}"
    );

    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0).partition_by(["value"]);
    let err = writer.write(&sample(0..3)).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidPartition { .. }) && err.to_string().contains("value"),
        "{err}"
    );

    let mut writer = PartitionedWriter::new(store.clone(), "../evil", 0, 0);
    let err = writer.write(&sample(0..3)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");

    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0).partition_by(["day"]);
    writer.write(&sample(0..3)).await.unwrap();
    let other = id_batch(0..3);
    let err = writer.write(&other).await.unwrap_err();
    assert!(
        matches!(err, Error::Schema { .. }) && err.to_string().contains("region"),
        "{err}"
    );
    writer.abort().await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
}

/// Rows interleaved over partitions (including null and the empty string, which both mean
/// the null partition) land in the right files, each partition's rows in input order.
#[tokio::test]
async fn interleaved_rows_are_grouped_by_partition() {
    let store = memory_store("groups");
    let regions = [
        Some("eu"),
        None,
        Some("us"),
        Some(""),
        Some("eu"),
        Some("us"),
    ];
    let n = 600i64;
    let id: Vec<i64> = (0..n).collect();
    let region: StringArray = id.iter().map(|i| regions[(*i % 6) as usize]).collect();
    let day: Date32Array = id
        .iter()
        .map(|i| Some(20454 + (*i / 7 % 2) as i32))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new("day", DataType::Date32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(id)),
            Arc::new(region),
            Arc::new(day),
        ],
    )
    .unwrap();
    let mut writer =
        PartitionedWriter::new(store.clone(), TXN, 0, 0).partition_by(["region", "day"]);
    writer.write(&batch).await.unwrap();
    let files = writer.finish().await.unwrap();
    // 3 region values (eu, us, null) × 2 days; null and "" share their files.
    assert_eq!(files.len(), 6, "{files:#?}");
    let mut seen = 0;
    for file in &files {
        let region = file.partition_values["region"].clone();
        let day = file.partition_values["day"].clone().unwrap();
        let batches = scan_all(Scan::new(store.clone()).files(entries(std::slice::from_ref(file))))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for b in &batches {
            ids.extend(
                b.column_by_name("id")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert!(ids.is_sorted(), "input order kept within {region:?}/{day}");
        for i in &ids {
            let want = regions[(i % 6) as usize].filter(|r| !r.is_empty());
            assert_eq!(want.map(str::to_string), region, "row {i}");
            let want_day = 20454 + (i / 7 % 2) as i32;
            let date = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Days::new(want_day as u64);
            assert_eq!(date.to_string(), day, "row {i}");
        }
        seen += ids.len();
    }
    assert_eq!(seen, n as usize);
}

/// A file's mostly-unique columns are written without a dictionary (Parquet would build one
/// and then abandon it), while columns with few values keep theirs; small files keep the
/// default. The data reads back the same either way.
#[tokio::test]
async fn mostly_unique_columns_skip_the_dictionary() {
    let store = memory_store("dictionary");
    // 3 days: files of 2,000 rows, then files of 100 rows.
    let (large, small) = (sample(0..6000), sample(10_000..10_300));
    for (task, batch) in [(0, &large), (1, &small)] {
        let mut writer = PartitionedWriter::new(store.clone(), TXN, task, 0).partition_by(["day"]);
        writer.write(batch).await.unwrap();
        writer.finish().await.unwrap();
    }
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
    for (key, _) in &listed {
        let meta = file_metadata(&store, key).await;
        let rows = meta.file_metadata().num_rows();
        let has_dictionary = |column: &str| {
            let chunk = meta
                .row_group(0)
                .columns()
                .iter()
                .find(|c| c.column_path().string() == column)
                .unwrap();
            chunk.encodings().any(|e| {
                matches!(
                    e,
                    parquet::basic::Encoding::RLE_DICTIONARY
                        | parquet::basic::Encoding::PLAIN_DICTIONARY
                )
            })
        };
        assert!(
            has_dictionary("region"),
            "{key}: few values keep a dictionary"
        );
        assert_eq!(
            has_dictionary("id"),
            rows < 1000,
            "{key} ({rows} rows): unique ids"
        );
        assert_eq!(
            has_dictionary("value"),
            rows < 1000,
            "{key} ({rows} rows): unique values"
        );
    }
    assert_eq!(
        rows(&scan_all(Scan::new(store)).await.unwrap()),
        rows(&[large, small])
    );
}

/// Without partition columns every row goes to one unpartitioned file.
#[tokio::test]
async fn unpartitioned_writes_keep_every_row() {
    let store = memory_store("unpartitioned");
    let mut writer = PartitionedWriter::new(store.clone(), TXN, 0, 0);
    writer.write(&sample(0..50)).await.unwrap();
    writer.write(&sample(50..120)).await.unwrap();
    let files = writer.finish().await.unwrap();
    assert_eq!(files.len(), 1, "{files:#?}");
    assert!(files[0].partition_values.is_empty());
    assert_eq!(files[0].num_records, 120);
    assert_eq!(
        rows(&scan_all(Scan::new(store)).await.unwrap()),
        rows(&[sample(0..120)])
    );
}
