//! An independent reader: the Python `deltalake` package (delta-rs) reads tables Weir wrote and
//! must see exactly the committed rows: after appends, after an overwrite, after a failed job, and
//! from a log whose early versions exist only as a Parquet checkpoint.
//!
//! On `file://` and `s3://` (moto; the reader gets the endpoint and credentials through its
//! environment), not `memory://`, which another process cannot read.
//!
//! Needs `<repo>/.venv` from `scripts/python-env.sh` (or `WEIR_PYTHON`); fails if it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use bytes::Bytes;
use common::{committed_rows, write_file};
use parquet::arrow::ArrowWriter;
use weir_manifest::{
    AddFile, Mode, Table, TableSchema, checkpoint_key, commit_key, partition_path,
};
use weir_store::Store;

weir_store::store_tests!(
    deltalake_sees_exactly_the_committed_rows in [file, s3],
    deltalake_understands_every_supported_column_type in [file, s3],
    deltalake_reads_partition_values_that_need_escaping in [file, s3],
    deltalake_reads_staged_commits in [file, s3],
);

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_PYTHON") {
        return PathBuf::from(p);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = repo.join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python env at {}: run scripts/python-env.sh (or set WEIR_PYTHON) to install the pinned deltalake reader",
        venv.display()
    );
    venv
}

/// Runs `script` with the table's URL as its argument and the store's settings (for `s3://`,
/// endpoint and credentials) in its environment.
fn run_python(script: &str, table: &Table) -> serde_json::Value {
    let script = format!("{OPEN_TABLE}{script}");
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(table.url())
        .envs(weir_store::testing::process_env(table.store()))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad python output {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Opens `dt`, the table at `sys.argv[1]`, with S3 settings from the environment.
const OPEN_TABLE: &str = r#"
import json, os, sys
from deltalake import DeltaTable
S3_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
           "AWS_ALLOW_HTTP")
storage_options = {k: os.environ[k] for k in S3_KEYS if k in os.environ}
url = sys.argv[1]
dt = DeltaTable(url, storage_options=storage_options if url.startswith("s3://") else None)
"#;

const READ_ROWS: &str = r#"
t = dt.to_pyarrow_table()
rows = sorted([r["dt"], r["id"]] for r in t.select(["dt", "id"]).to_pylist())
print(json.dumps({"version": dt.version(), "rows": rows, "files": len(dt.file_uris())}))
# Skip interpreter teardown: deltalake/pyarrow 2026 builds sometimes abort in C++ at exit
# ("terminate called without an active exception") after the result is printed.
sys.stdout.flush(); os._exit(0)
"#;

fn as_rows(value: &serde_json::Value) -> Vec<(String, i64)> {
    value["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect()
}

async fn deltalake_sees_exactly_the_committed_rows(store: &Store) {
    let table = Table::create(store.child("t"))
        .schema(common::schema())
        .partition_by(["dt"])
        .checkpoint_interval(4)
        .await
        .unwrap();
    let store = table.store().clone();
    let a = write_file(&store, "d1", "a.parquet", &[0, 1, 2, 3, 4]).await;
    let b = write_file(&store, "d1", "b.parquet", &[5, 6, 7, 8, 9]).await;
    let c = write_file(&store, "d2", "c.parquet", &[10, 11]).await;
    table.commit().add_files([a, b, c]).await.unwrap();
    let mut expected: Vec<(String, i64)> = (0..10).map(|i| ("d1".into(), i)).collect();
    expected.extend([("d2".into(), 10), ("d2".into(), 11)]);
    let seen = run_python(READ_ROWS, &table);
    assert_eq!(as_rows(&seen), expected);
    assert_eq!(seen["version"], 1);

    // Overwrite d1.
    let d = write_file(&store, "d1", "d.parquet", &[100, 101]).await;
    table
        .commit()
        .mode(Mode::OverwritePartitions)
        .add_files([d])
        .await
        .unwrap();
    // A failed job: its files are written, its commit never happens.
    let txn = table.begin_transaction().await.unwrap();
    write_file(&store, "d1", &txn.data_file_name(0), &[666]).await;
    write_file(&store, "d3", &txn.data_file_name(1), &[667]).await;
    let expected: Vec<(String, i64)> = vec![
        ("d1".into(), 100),
        ("d1".into(), 101),
        ("d2".into(), 10),
        ("d2".into(), 11),
    ];
    let seen = run_python(READ_ROWS, &table);
    assert_eq!(as_rows(&seen), expected);
    assert_eq!(seen["version"], 2);
    assert_eq!(committed_rows(&table).await, expected);

    // Past a checkpoint (version 4) and beyond.
    let mut expected = expected;
    for i in 0..3 {
        let f = write_file(&store, "d4", &format!("e{i}.parquet"), &[200 + i]).await;
        table.commit().job("late", i).add_files([f]).await.unwrap();
        expected.push(("d4".into(), 200 + i));
    }
    expected.sort();
    assert!(store.head(&checkpoint_key(4)).await.is_ok());
    let seen = run_python(READ_ROWS, &table);
    assert_eq!(as_rows(&seen), expected);
    assert_eq!(seen["version"], 5);

    // delta-rs must be able to use our checkpoint alone for versions 0..=4.
    for v in 0..=4 {
        store.delete(&commit_key(v)).await.unwrap();
    }
    let seen = run_python(READ_ROWS, &table);
    assert_eq!(as_rows(&seen), expected);
    assert_eq!(seen["version"], 5);
    assert_eq!(seen["files"], 5);
}

const READ_HISTORY: &str = r#"
t = dt.to_pyarrow_table()
rows = sorted([r["dt"], r["id"]] for r in t.select(["dt", "id"]).to_pylist())
history = [{"version": h.get("version"), "operation": h.get("operation"),
            "txn": h.get("weirTxnId")} for h in dt.history()]
print(json.dumps({"version": dt.version(), "rows": rows, "history": history}))
sys.stdout.flush(); os._exit(0)
"#;

/// A staged commit's log entry has its adds first and its commitInfo after them; delta-rs reads
/// it (rows and history) like any other, including an overwrite.
async fn deltalake_reads_staged_commits(store: &Store) {
    let table = Table::create(store.child("t"))
        .schema(common::schema())
        .partition_by(["dt"])
        .await
        .unwrap();
    let store = table.store().clone();
    let mut expected = Vec::new();
    let mut txn_ids = Vec::new();
    for (round, mode) in [Mode::Append, Mode::OverwritePartitions]
        .into_iter()
        .enumerate()
    {
        let txn = table.begin_transaction().await.unwrap();
        let mut staged = txn.stage().await.unwrap();
        expected.clear();
        for (chunk, dt) in ["d1", "d2", "d1"].into_iter().enumerate() {
            let ids: Vec<i64> = (0..3)
                .map(|i| (round * 100 + chunk * 10 + i) as i64)
                .collect();
            let name = txn.data_file_name(chunk);
            staged
                .add([write_file(&store, dt, &name, &ids).await])
                .await
                .unwrap();
            expected.extend(ids.iter().map(|&i| (dt.to_string(), i)));
        }
        let outcome = table.commit().staged(staged).mode(mode).await.unwrap();
        txn_ids.push(outcome.txn_id);
    }
    expected.sort();
    let seen = run_python(READ_HISTORY, &table);
    assert_eq!(as_rows(&seen), expected);
    assert_eq!(seen["version"], 2);
    assert_eq!(committed_rows(&table).await, expected);
    let history = seen["history"].as_array().unwrap();
    for (version, txn_id) in [(1, &txn_ids[0]), (2, &txn_ids[1])] {
        let entry = history
            .iter()
            .find(|h| h["version"] == version)
            .unwrap_or_else(|| panic!("version {version} in {history:?}"));
        assert_eq!(entry["operation"], "WRITE", "{entry}");
        assert_eq!(entry["txn"].as_str(), Some(txn_id.as_str()), "{entry}");
    }
}

const READ_TYPES: &str = r#"
t = dt.to_pyarrow_table()
print(json.dumps({"types": {f.name: str(f.type) for f in t.schema},
                  "nullable": {f.name: f.nullable for f in t.schema},
                  "rows": t.num_rows, "sum": sum(t.column("l").to_pylist())}))
sys.stdout.flush(); os._exit(0)
"#;

async fn deltalake_understands_every_supported_column_type(store: &Store) {
    let schema = TableSchema::parse_spec(
        "l:long not null,i:integer,s:short,b:byte,d:double,f:float,ok:boolean,str:string,bin:binary,\
         day:date,ts:timestamp,amount:decimal(10,2)",
    )
    .unwrap();
    let table = Table::create(store.child("types"))
        .schema(schema.clone())
        .await
        .unwrap();
    let arrow = Arc::new(schema.to_arrow());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2])),
        Arc::new(Int32Array::from(vec![Some(1), None])),
        Arc::new(Int16Array::from(vec![1, 2])),
        Arc::new(Int8Array::from(vec![1, 2])),
        Arc::new(Float64Array::from(vec![1.5, 2.5])),
        Arc::new(Float32Array::from(vec![1.5, 2.5])),
        Arc::new(BooleanArray::from(vec![true, false])),
        Arc::new(StringArray::from(vec!["a", "b"])),
        Arc::new(BinaryArray::from(vec![&b"x"[..], &b"y"[..]])),
        Arc::new(Date32Array::from(vec![20000, 20001])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![1_700_000_000_000_000, 0]).with_timezone("UTC"),
        ),
        Arc::new(
            Decimal128Array::from(vec![12345, 6789])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
    ];
    let batch = RecordBatch::try_new(arrow.clone(), columns).unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), arrow.clone(), None).unwrap();
    writer.write(&batch).unwrap();
    let bytes = Bytes::from(writer.into_inner().unwrap());
    let size = bytes.len() as i64;
    table.store().put("part-0.parquet", bytes).await.unwrap();
    let write_schema = TableSchema::from_arrow(&arrow).unwrap();
    table
        .commit()
        .schema(write_schema)
        .add_files([AddFile {
            path: "part-0.parquet".into(),
            size,
            num_records: Some(2),
            ..Default::default()
        }])
        .await
        .unwrap();
    let seen = run_python(READ_TYPES, &table);
    assert_eq!(seen["rows"], 2);
    assert_eq!(seen["sum"], 3);
    let types = &seen["types"];
    for (column, expected) in [
        ("l", "int64"),
        ("i", "int32"),
        ("s", "int16"),
        ("b", "int8"),
        ("d", "double"),
        ("f", "float"),
        ("ok", "bool"),
        ("day", "date32[day]"),
        ("amount", "decimal128(10, 2)"),
    ] {
        assert_eq!(types[column], expected, "column {column}: {types}");
    }
    assert!(types["str"].as_str().unwrap().contains("string"), "{types}");
    assert!(types["bin"].as_str().unwrap().contains("binary"), "{types}");
    assert!(
        types["ts"]
            .as_str()
            .unwrap()
            .starts_with("timestamp[us, tz=UTC"),
        "{types}"
    );
    assert_eq!(seen["nullable"]["l"], false, "{seen}");
}

/// Partition values with `%`, space, `/`, `=`, `#`, `?`, `+` and non-ASCII: the data file lives
/// under the hive-escaped directory, `add.path` is that key URI-encoded, and another engine must
/// read exactly these rows with exactly these values (also from a checkpoint), while Weir's own
/// snapshot and vacuum see the same keys.
async fn deltalake_reads_partition_values_that_need_escaping(store: &Store) {
    let table = Table::create(store.child("odd"))
        .schema(common::schema())
        .partition_by(["dt"])
        .checkpoint_interval(2)
        .await
        .unwrap();
    let store = table.store().clone();
    let values = ["100% sure", "a/b=c#d?e+f", "grüße €", "%2F already escaped"];
    let mut expected = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let partition = [("dt".to_string(), Some(value.to_string()))].into();
        let dir = partition_path(&["dt".to_string()], &partition);
        let key = format!("{dir}/part {i}.parquet");
        let ids = [i as i64 * 10, i as i64 * 10 + 1];
        let bytes = common::parquet_bytes(&ids);
        let size = bytes.len() as i64;
        store.put(&key, bytes).await.unwrap();
        table
            .commit()
            .add_files([AddFile {
                path: key,
                size,
                partition_values: partition,
                num_records: Some(2),
                ..Default::default()
            }])
            .await
            .unwrap();
        expected.extend(ids.iter().map(|id| (value.to_string(), *id)));
    }
    expected.sort();

    // The log holds encoded paths; nothing in it is a raw `%` escape of the key.
    let log = String::from_utf8(store.get(&commit_key(1)).await.unwrap().to_vec()).unwrap();
    assert!(
        log.contains(r#""path":"dt=100%2525%20sure/part%200.parquet""#),
        "{log}"
    );
    assert_eq!(committed_rows(&table).await, expected);
    let reopened = Table::open(store.clone()).await.unwrap();
    assert_eq!(committed_rows(&reopened).await, expected);
    let report = table
        .vacuum()
        .retention(std::time::Duration::ZERO)
        .dry_run(true)
        .await
        .unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");

    let seen = run_python(READ_ROWS, &table);
    assert_eq!(as_rows(&seen), expected);
    assert_eq!(seen["version"], 4);

    // From the checkpoint at version 4 alone.
    assert!(store.head(&checkpoint_key(4)).await.is_ok());
    for v in 0..=3 {
        store.delete(&commit_key(v)).await.unwrap();
    }
    let seen = run_python(READ_ROWS, &table);
    assert_eq!(as_rows(&seen), expected);
    let reopened = Table::open(store.clone()).await.unwrap();
    assert_eq!(committed_rows(&reopened).await, expected);
}
