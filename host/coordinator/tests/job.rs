//! End-to-end jobs on real Wasm plugins and real Parquet in a temp `file://` store, checked with
//! independent readers (Python `deltalake` for the tables, DuckDB over the raw input for the
//! expected counts).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use weir_coordinator::{FailureKind, Job, JobError, JobStatus};
use weir_pipeline::Pipeline;

const DAY_US: i64 = 86_400_000_000;
const START_US: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    std::env::var_os("WEIR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"))
}

/// Runs a Python snippet with `argv[1..]`; returns stdout. Needs scripts/python-env.sh.
fn py(script: &str, args: &[&Path]) -> String {
    // Skip interpreter teardown: deltalake/pyarrow builds sometimes abort in C++ at exit
    // ("terminate called without an active exception") after the result is printed.
    let script = format!("{script}\nimport os, sys\nsys.stdout.flush(); os._exit(0)\n");
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); run scripts/python-env.sh",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Event {
    id: String,
    ts: i64,
    agent: &'static str,
    user: String,
    cost: i64,
}

/// Deterministic events for `day` / `part`: ~10% bots, a few corrupt costs when `corrupt`, and
/// ids that repeat across parts (duplicate deliveries).
fn events(day: i64, part: i64, n: i64, corrupt: bool) -> Vec<Event> {
    (0..n)
        .map(|i| {
            // Every 7th event of part 1 re-delivers an event of part 0 (same id).
            let id_part = if part == 1 && i % 7 == 0 { 0 } else { part };
            Event {
                id: format!("d{day}-p{id_part}-e{i}"),
                ts: START_US + day * DAY_US + (part * n + i) * 1_000_000,
                agent: if i % 10 == 3 {
                    "Mozilla/5.0 (compatible; Googlebot/2.1)"
                } else {
                    "Mozilla/5.0 (X11; Linux x86_64)"
                },
                user: format!("u-{}", i % 97),
                cost: if corrupt && i % 250 == 17 {
                    i64::MAX - i
                } else {
                    1000 + i
                },
            }
        })
        .collect()
}

fn write_input(root: &Path, day: i64, part: i64, events: &[Event]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("user_agent", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("cost_micros", DataType::Int64, false),
    ]));
    let s = |f: &dyn Fn(&Event) -> String| -> ArrayRef {
        Arc::new(events.iter().map(|e| Some(f(e))).collect::<StringArray>())
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            s(&|e| e.id.clone()),
            Arc::new(
                TimestampMicrosecondArray::from(events.iter().map(|e| e.ts).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            s(&|e| e.agent.to_string()),
            s(&|e| e.user.clone()),
            Arc::new(Int64Array::from(
                events.iter().map(|e| e.cost).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    let dir = root.join(format!("ingest_date=2026-01-0{}", day + 1));
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join(format!("part-{part}.parquet"))).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// Writes 3 days × 2 files of input; `corrupt_day` gets corrupt costs.
fn write_inputs(root: &Path, corrupt_day: Option<i64>) {
    for day in 0..3 {
        for part in 0..2 {
            let corrupt = corrupt_day == Some(day);
            write_input(root, day, part, &events(day, part, 1500, corrupt));
        }
    }
}

/// The clean pipeline of the example, on the test's plugins, in `dir`.
fn clean_spec(dead_letter: bool, partition_by: &str, extra_step: &str) -> String {
    let mut text = format!(
        r#"
name = "clean"
[source]
url = "raw"
[[steps]]
name = "drop-bots"
plugin = "{filter}"
[[steps.config.predicates]]
[steps.config.predicates.not]
any = [{{ column = "user_agent", op = "contains", value = "bot" }}]
[[steps]]
plugin = "{mask}"
[steps.config]
key = "k"
[steps.config.columns]
user_id = {{ method = "hash" }}
[[steps]]
name = "derive-date"
plugin = "{derive}"
[[steps.config.columns]]
name = "event_date"
date_of = "ts"
[[steps.config.columns]]
name = "cost_nanos"
expr = {{ op = "mul", left = "cost_micros", right = 1000 }}
{extra_step}
[[steps]]
name = "dedupe"
plugin = "{dedupe}"
scope = "job"
[steps.config]
keys = ["event_id"]
[sink]
url = "clean"
partition_by = ["{partition_by}"]
mode = "overwrite-partitions"
owner = "analytics"
[limits]
parallelism = 2
"#,
        filter = weir_tests::FILTER,
        mask = weir_tests::MASK,
        derive = weir_tests::DERIVE,
        dedupe = weir_tests::DEDUPE,
    );
    if dead_letter {
        text += "[dead_letter]\nurl = \"quarantine\"\nmax_rows = 50\n";
    }
    text
}

/// The progress a job reported, netted: what the bars would show at the end.
#[derive(Default)]
struct NetProgress(std::sync::Mutex<Net>);

#[derive(Clone, Debug, Default)]
struct Net {
    input_rows: u64,
    written: u64,
    files: u64,
    bytes: u64,
    steps: Vec<(u64, u64)>,
    discarded: u64,
}

impl weir_worker::Progress for NetProgress {
    fn report(&self, event: weir_worker::ProgressEvent) {
        use weir_worker::ProgressEvent as E;
        let mut net = self.0.lock().unwrap();
        let step = |net: &mut Net, step: usize, rows_in: u64, rows_out: u64, sign: i64| {
            if net.steps.len() <= step {
                net.steps.resize(step + 1, (0, 0));
            }
            let (i, o) = &mut net.steps[step];
            *i = i.checked_add_signed(sign * rows_in as i64).unwrap();
            *o = o.checked_add_signed(sign * rows_out as i64).unwrap();
        };
        match event {
            E::InputRows { rows } => net.input_rows += rows,
            E::RowsWritten { rows } => net.written += rows,
            E::StepRows {
                step: s,
                rows_in,
                rows_out,
            } => step(&mut net, s, rows_in, rows_out, 1),
            E::TaskDone {
                input_files,
                input_bytes,
                ..
            } => {
                net.files += input_files;
                net.bytes += input_bytes;
            }
            E::PassDiscarded(counts) => {
                net.discarded += 1;
                net.input_rows -= counts.input_rows;
                net.written -= counts.rows_written;
                for (s, &(rows_in, rows_out)) in counts.steps.iter().enumerate() {
                    step(&mut net, s, rows_in, rows_out, -1);
                }
            }
            E::RowRejected { .. } => {}
        }
    }
}

/// A job with a compiled-code cache shared by the tests (compiling five plugins per test is slow).
fn job(pipeline: Pipeline) -> Job {
    Job::new(pipeline).cache_dir(Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-code-cache"))
}

fn pipeline(dir: &Path, text: &str) -> Pipeline {
    let spec = weir_pipeline::parse(text, "test.toml").unwrap();
    Pipeline::from_spec(spec, "test.toml", dir, &[]).unwrap()
}

/// Every file below `dir` (relative paths), to check nothing is left behind.
fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

/// Expected counts from the raw input, computed by DuckDB: (rows after the bot filter and
/// without corrupt rows, distinct event ids among them, corrupt rows after the bot filter).
fn expected(raw: &Path) -> (u64, u64, u64) {
    let out = py(
        r#"
import sys, duckdb
q = f"""
with kept as (
  select * from read_parquet('{sys.argv[1]}/**/*.parquet', hive_partitioning = true)
  where user_agent not like '%bot%'
)
select
  (select count(*) from kept where cost_micros <= 9223372036854775),
  (select count(distinct event_id) from kept where cost_micros <= 9223372036854775),
  (select count(*) from kept where cost_micros > 9223372036854775)
"""
print(*duckdb.sql(q).fetchall()[0])
"#,
        &[raw],
    );
    let n: Vec<u64> = out.split(' ').map(|s| s.parse().unwrap()).collect();
    (n[0], n[1], n[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_pipeline_matches_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), Some(1));
    let (kept, distinct, corrupt) = expected(&dir.path().join("raw"));
    assert!(
        corrupt > 0 && distinct < kept,
        "the data must exercise dead letters and dedupe"
    );

    let progress = Arc::new(NetProgress::default());
    let report = job(pipeline(dir.path(), &clean_spec(true, "event_date", "")))
        .run_id(1)
        .progress(progress.clone())
        .await
        .unwrap();
    assert_eq!(report.status, JobStatus::Committed);
    assert_eq!(report.input.files, 6);
    assert_eq!(report.output.rows, distinct, "{report:#?}");
    assert_eq!(report.quarantined_rows, corrupt);
    assert_eq!(report.output.partitions, 3);
    assert_eq!(report.steps[3].rows_in, kept);
    assert_eq!(report.steps[3].rows_out, distinct);

    // Live progress nets out to the report: the passes re-run without a quarantined row are
    // taken back, and the job-scope step's task neither counts as input files nor as written.
    let net = progress.0.lock().unwrap().clone();
    assert!(net.discarded > 0, "the corrupt rows made tasks re-run");
    assert_eq!(net.input_rows, report.input.rows);
    assert_eq!(
        (net.files, net.bytes),
        (report.input.files, report.input.bytes)
    );
    assert_eq!(net.written, report.output.rows);
    let steps: Vec<(u64, u64)> = report
        .steps
        .iter()
        .map(|s| (s.rows_in, s.rows_out))
        .collect();
    assert_eq!(net.steps, steps);

    // The committed table, read by delta-rs.
    let out = py(
        r#"
import sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
ids = t.column("event_id").to_pylist()
dates = sorted(set(str(d) for d in t.column("event_date").to_pylist()))
users = t.column("user_id").to_pylist()
print(len(ids), len(set(ids)), ",".join(dates), sum(u.startswith("u-") for u in users))
"#,
        &[&dir.path().join("clean")],
    );
    assert_eq!(
        out,
        format!("{distinct} {distinct} 2026-01-01,2026-01-02,2026-01-03 0"),
        "rows, distinct ids, dates, unmasked user ids"
    );

    // The quarantine table: the corrupt rows, with the error and the source file.
    let out = py(
        r#"
import sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table().to_pylist()
print(len(t))
for r in t:
    assert r["step_label"] == "derive-date", r
    assert "overflow" in r["error"], r
    assert r["column"] == "cost_nanos", r
    assert "ingest_date=2026-01-02" in r["source_file"], r
    assert '"cost_micros":92233720368547' in r["record"], r
    assert r["job"] == "clean" and r["run_id"] == 1, r
"#,
        &[&dir.path().join("quarantine")],
    );
    assert_eq!(out, corrupt.to_string());

    // No staging or other stray files remain besides the committed ones.
    let stray: Vec<String> = files_below(&dir.path().join("clean"))
        .into_iter()
        .filter(|f| f.contains("staging"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // Re-running the same run id is a no-op.
    let again = job(pipeline(dir.path(), &clean_spec(true, "event_date", "")))
        .run_id(1)
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::AlreadyCommitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_row_without_dead_letter_fails_naming_plugin_and_row_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), None);
    // A first, clean run creates the table.
    let first = job(pipeline(dir.path(), &clean_spec(false, "event_date", "")))
        .run_id(1)
        .await
        .unwrap();
    let before = files_below(&dir.path().join("clean"));
    let version = first.commit_version.unwrap();

    // Corrupt one file of six: its task fails; the others' files must go too.
    write_input(&dir.path().join("raw"), 2, 1, &events(2, 1, 1500, true));
    let err = job(pipeline(dir.path(), &clean_spec(false, "event_date", "")))
        .run_id(2)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadData, "{err}");
    let message = err.to_string();
    for needle in [
        "derive-date",
        "derive",
        "at row",
        "cost_nanos",
        "ingest_date=2026-01-03/part-1.parquet",
        "rejected row: {",
    ] {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    let after: BTreeSet<String> = files_below(&dir.path().join("clean"))
        .into_iter()
        .filter(|f| !f.starts_with("_weir/"))
        .collect();
    let before: BTreeSet<String> = before
        .into_iter()
        .filter(|f| !f.starts_with("_weir/"))
        .collect();
    assert_eq!(after, before, "a failed run leaves no data or log files");
    // Nor its transaction: the registration is finished and the staged commit body aborted.
    let txn_left: Vec<String> = files_below(&dir.path().join("clean"))
        .into_iter()
        .filter(|f| f.starts_with("_weir/txn/"))
        .collect();
    assert!(txn_left.is_empty(), "{txn_left:?}");
    let out = py(
        "import sys\nfrom deltalake import DeltaTable\nprint(DeltaTable(sys.argv[1]).version())",
        &[&dir.path().join("clean")],
    );
    assert_eq!(out, version.to_string());
    assert!(!dir.path().join("quarantine").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_first_run_creates_no_table() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), Some(0));
    let err = job(pipeline(dir.path(), &clean_spec(false, "event_date", "")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::BadData, "{err}");
    let left = files_below(&dir.path().join("clean"));
    assert!(
        left.iter().all(|f| f.starts_with("_weir/"))
            && !left.iter().any(|f| f.ends_with(".parquet")),
        "{left:?}"
    );
    assert!(!dir.path().join("clean/_delta_log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_crash_is_a_plugin_failure() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), None);
    let panic = weir_tests::GUESTS
        .iter()
        .find(|(name, _)| *name == "panic")
        .unwrap()
        .1;
    let extra = format!("[[steps]]\nname = \"boom\"\nplugin = \"{panic}\"\n");
    let err = job(pipeline(
        dir.path(),
        &clean_spec(false, "event_date", &extra),
    ))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Plugin, "{err}");
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(err.to_string().contains("panicked"), "{err}");
    assert!(!dir.path().join("clean/_delta_log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_partition_column_and_bad_config_fail_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), None);
    let err = job(pipeline(dir.path(), &clean_spec(false, "day", "")))
        .plan()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Config);
    let message = err.to_string();
    assert!(message.contains("sink.partition_by"), "{message}");
    assert!(message.contains("`day`"), "{message}");
    assert!(
        message.contains("event_date"),
        "lists the output columns: {message}"
    );

    let bad =
        clean_spec(false, "event_date", "").replace("keys = [\"event_id\"]", "keys = [\"nope\"]");
    let err = job(pipeline(dir.path(), &bad)).plan().await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Config);
    assert!(err.to_string().contains("dedupe"), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!dir.path().join("clean").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_at_job_scope_sees_every_row() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), None);
    let text = format!(
        r#"
name = "totals"
[source]
url = "raw"
[[steps]]
plugin = "{rollup}"
scope = "job"
[steps.config]
group_by = ["ingest_date"]
aggregates = [{{ fn = "count", as = "events" }}]
[sink]
url = "totals"
"#,
        rollup = weir_tests::ROLLUP
    );
    let report = job(pipeline(dir.path(), &text)).await.unwrap();
    // One row per day even though each day has two files (two scan tasks).
    assert_eq!(report.output.rows, 3, "{report:#?}");
    let out = py(
        "import sys\nfrom deltalake import DeltaTable\nt = DeltaTable(sys.argv[1]).to_pyarrow_table()\nprint(sorted(t.column('events').to_pylist()))",
        &[&dir.path().join("totals")],
    );
    assert_eq!(out, "[3000, 3000, 3000]");
}

#[test]
fn failure_kinds_map_to_documented_exit_codes() {
    let codes: Vec<u8> = [
        FailureKind::Other,
        FailureKind::Config,
        FailureKind::BadData,
        FailureKind::Plugin,
        FailureKind::Conflict,
        FailureKind::Ownership,
    ]
    .iter()
    .map(|k| k.exit_code())
    .collect();
    assert_eq!(codes, [1, 2, 3, 4, 5, 6]);
    let e = JobError::Config("x".into());
    assert_eq!(e.kind(), FailureKind::Config);
}

/// Runs tasks on a real in-process worker, but before the first task another writer appends a
/// file to a partition of the sink table, as a concurrent job would.
struct InterferingWorker {
    inner: weir_worker::InProcessWorker,
    table_dir: PathBuf,
    interfered: std::sync::atomic::AtomicBool,
}

impl weir_worker::Worker for InterferingWorker {
    fn run(
        &self,
        task: weir_worker::TaskSpec,
        progress: Arc<dyn weir_worker::Progress>,
    ) -> futures::future::BoxFuture<'static, Result<weir_worker::TaskResult, weir_worker::TaskError>>
    {
        let first = !self
            .interfered
            .swap(true, std::sync::atomic::Ordering::SeqCst);
        let table_dir = self.table_dir.clone();
        let task = self.inner.run(task, progress);
        Box::pin(async move {
            if first {
                append_copy_of_a_committed_file(&table_dir).await;
            }
            task.await
        })
    }
}

/// Commits, as a separate writer, a copy of one committed data file into the same partition.
async fn append_copy_of_a_committed_file(table_dir: &Path) {
    let store = weir_store::Store::from_url(table_dir.to_str().unwrap()).unwrap();
    let table = weir_manifest::Table::open(store).await.unwrap();
    let add = table.snapshot().files().next().unwrap().clone();
    let (partition, _) = add.path.rsplit_once('/').unwrap();
    let copy = format!("{partition}/interloper.parquet");
    std::fs::copy(table_dir.join(&add.path), table_dir.join(&copy)).unwrap();
    table
        .commit()
        .txn_id("interloper")
        .owner("analytics")
        .add_files([weir_manifest::AddFile {
            path: copy,
            size: add.size,
            partition_values: add.partition_values.clone(),
            ..Default::default()
        }])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_change_to_an_overwritten_partition_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(&dir.path().join("raw"), None);
    let spec = clean_spec(false, "event_date", "");
    job(pipeline(dir.path(), &spec)).run_id(1).await.unwrap();
    let table_dir = dir.path().join("clean");

    let runtime = weir_runtime::Runtime::new(weir_runtime::RuntimeConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-code-cache")),
        ..Default::default()
    })
    .unwrap();
    let plugins = [
        weir_tests::FILTER,
        weir_tests::MASK,
        weir_tests::DERIVE,
        weir_tests::DEDUPE,
    ]
    .map(|path| runtime.load_file(Path::new(path)).unwrap());
    let worker = InterferingWorker {
        inner: weir_worker::InProcessWorker::new(plugins),
        table_dir: table_dir.clone(),
        interfered: Default::default(),
    };
    let err = job(pipeline(dir.path(), &spec))
        .run_id(2)
        .worker(Arc::new(worker))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Conflict, "{err}");
    assert_eq!(err.kind().exit_code(), 5);
    assert!(
        err.to_string().contains("event_date="),
        "names the partition: {err}"
    );

    // The table holds run 1 plus the other writer's append, nothing of run 2.
    let store = weir_store::Store::from_url(table_dir.to_str().unwrap()).unwrap();
    let table = weir_manifest::Table::open(store).await.unwrap();
    let snapshot = table.snapshot();
    assert_eq!(snapshot.app_version("clean"), Some(1), "{err}");
    let run2_files: Vec<String> = files_below(&table_dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !snapshot.contains_file(f))
        .collect();
    assert!(run2_files.is_empty(), "run 2 left {run2_files:?}");
}
