//! Cross-check: pyarrow (an independent reader) reads the sink's hive-partitioned output.
//! Needs the project's Python env (`scripts/python-env.sh`), found via `WEIR_PYTHON` or
//! `<repo>/.venv/bin/python`. Skipped when absent, except under CI (`CI` set), where it fails.

mod common;

use std::path::PathBuf;
use std::process::Command;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use std::sync::Arc;
use weir_lake::PartitionedWriter;

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WEIR_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = repo.join(".venv/bin/python");
    venv.exists().then_some(venv)
}

const CHECK: &str = r#"
import sys, json, pyarrow as pa, pyarrow.dataset as ds
d = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
t = d.to_table()
out = {
    "rows": t.num_rows,
    "id_sum": sum(v for v in t.column("id").to_pylist()),
    "tag_counts": {},
    "at_type": str(d.schema.field("at").type),
}
for tag in t.column("tag").to_pylist():
    key = "null" if tag is None else str(tag)
    out["tag_counts"][key] = out["tag_counts"].get(key, 0) + 1
print(json.dumps(out))
"#;

#[tokio::test]
async fn pyarrow_reads_the_sink_output() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the Python env: run scripts/python-env.sh"
        );
        eprintln!("skipping: no Python env (run scripts/python-env.sh)");
        return;
    };
    let (dir, store) = common::file_store();
    let n = 3000i64;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
    let tags: ArrayRef = Arc::new(StringArray::from_iter((0..n).map(|i| match i % 3 {
        0 => Some("a b"),
        1 => Some("x/y"),
        _ => None,
    })));
    let at: ArrayRef = Arc::new(
        TimestampNanosecondArray::from_iter_values((0..n).map(|i| i * 1_000_000_000))
            .with_timezone("Europe/Paris"),
    );
    let batch = RecordBatch::try_from_iter(vec![("id", ids), ("tag", tags), ("at", at)]).unwrap();
    let mut writer = PartitionedWriter::new(store, "crosscheck", 0, 0)
        .partition_by(["tag"])
        .target_file_size(8 * 1024);
    writer.write(&batch).await.unwrap();
    let files = writer.finish().await.unwrap();
    assert!(files.len() > 3);

    let output = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(got["rows"], n);
    assert_eq!(got["id_sum"], (0..n).sum::<i64>());
    assert_eq!(got["tag_counts"]["a b"], 1000);
    assert_eq!(
        got["tag_counts"]["x/y"], 1000,
        "hive escaping decoded by pyarrow: {got}"
    );
    assert_eq!(got["tag_counts"]["null"], 1000);
    assert_eq!(got["at_type"], "timestamp[us, tz=UTC]");
}
