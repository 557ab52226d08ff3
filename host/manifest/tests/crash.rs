//! The DBIO failure table, with real processes and real SIGKILLs: a task that fails and is
//! retried, a job whose task always fails, and a writer killed at each step of the commit. After
//! each, readers see all of the job's rows or none, never duplicates; a rerun commits exactly once.
//!
//! On every backend (`file::`, `memory::`, `s3::` on moto); the SIGKILL test needs a store that
//! a child process can open, so it runs on `file://` and `s3://` only.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{committed_rows, write_file};
use weir_manifest::{Mode, Table};
use weir_store::Store;

weir_store::store_tests!(
    sigkill_at_each_commit_step_is_all_or_nothing_and_reruns_exactly_once in [file, s3],
    sigkill_at_each_staged_commit_step_is_all_or_nothing_and_reruns_exactly_once in [file, s3],
    a_failed_task_retried_commits_once_and_an_always_failing_job_commits_nothing,
);

async fn new_table(store: Store) -> Table {
    Table::create(store)
        .schema(common::schema())
        .partition_by(["dt"])
        .owner("*", "etl")
        .await
        .unwrap()
}

fn writer_args(staged: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--job",
        "load",
        "--run",
        "1",
        "--partition",
        "dt=d1",
        "--rows",
        "90",
        "--files",
        "3",
        "--owner",
        "etl",
        "--mode",
        "overwrite",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if staged {
        args.push("--staged".into());
    }
    args
}

/// Runs the writer until it reports reaching `failpoint`, then SIGKILLs it.
fn run_and_kill_at(table: &Store, failpoint: &str, staged: bool) {
    let mut child = common::writer(table)
        .args(writer_args(staged))
        .env("WEIR_FAILPOINT", failpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("WEIR_FAILPOINT reached") {
            child.kill().unwrap(); // SIGKILL on Unix.
            child.wait().unwrap();
            return;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    panic!("writer exited ({status}) before failpoint {failpoint}: {seen:?}");
}

fn run_to_completion(table: &Store, staged: bool) -> String {
    let out = common::writer(table)
        .args(writer_args(staged))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn sigkill_at_each_commit_step_is_all_or_nothing_and_reruns_exactly_once(store: &Store) {
    sigkill_at_each_step(store, false).await;
}

/// The same with the writer staging each file's add as it is written (`--staged`), and one
/// more step where a staging object is published (file://): after the staging object is
/// finished, before it is linked as the log entry.
async fn sigkill_at_each_staged_commit_step_is_all_or_nothing_and_reruns_exactly_once(
    store: &Store,
) {
    sigkill_at_each_step(store, true).await;
}

async fn sigkill_at_each_step(store: &Store, staged: bool) {
    let all: Vec<(String, i64)> = (0..90).map(|i| ("d1".to_string(), i)).collect();
    let mut steps = vec![
        ("before-data", false),
        ("mid-data", false),
        ("after-data", false),
        ("before-log-put", false),
        ("after-log-put", true),
    ];
    // (S3 opened by URL cannot publish a staging object, so nothing is staged there.)
    if staged && store.may_copy_create() {
        steps.insert(4, ("after-stage-seal", false));
    }
    for (failpoint, committed_before_rerun) in steps {
        let table = new_table(store.child(failpoint)).await;
        // Rows from an earlier job in another partition must survive untouched.
        let other = write_file(table.store(), "d0", "base.parquet", &[-1]).await;
        table
            .commit()
            .owner("etl")
            .add_files([other])
            .await
            .unwrap();
        let base = vec![("d0".to_string(), -1)];

        run_and_kill_at(table.store(), failpoint, staged);
        if failpoint == "after-stage-seal" {
            // The finished staging object is there, under _weir/, and nothing in the log.
            let staging: Vec<String> = table
                .store()
                .list("_weir/txn")
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.contains("/adds-"))
                .collect();
            assert_eq!(staging.len(), 1, "{staging:?}");
        }
        let rows = committed_rows(&table).await;
        let expected: Vec<_> = if committed_before_rerun {
            base.iter().cloned().chain(all.iter().cloned()).collect()
        } else {
            base.clone()
        };
        assert_eq!(rows, expected, "after SIGKILL at {failpoint}");

        // The rerun of the same job run commits exactly once (or sees it is already committed).
        let out = run_to_completion(table.store(), staged);
        assert_eq!(
            out.contains("\"already_committed\":true"),
            committed_before_rerun,
            "{failpoint}: {out}"
        );
        let expected: Vec<_> = base.iter().cloned().chain(all.iter().cloned()).collect();
        assert_eq!(
            committed_rows(&table).await,
            expected,
            "after rerun, failpoint {failpoint}"
        );
        // And once more: still exactly once.
        let out = run_to_completion(table.store(), staged);
        assert!(out.contains("\"already_committed\":true"), "{out}");
        assert_eq!(committed_rows(&table).await, expected);

        // The killed writer's files are orphans held by its still-live transaction registration.
        let report = table.vacuum().retention(Duration::ZERO).await.unwrap();
        let orphaned = match failpoint {
            "before-data" => 0,
            "mid-data" => 1,
            _ => 3,
        };
        let killed_files = if committed_before_rerun { 0 } else { orphaned };
        assert_eq!(
            report.kept_in_flight.len(),
            killed_files,
            "{failpoint}: {report:?}"
        );
        assert_eq!(committed_rows(&table).await, expected);
    }
}

async fn a_failed_task_retried_commits_once_and_an_always_failing_job_commits_nothing(
    store: &Store,
) {
    let table = new_table(store.clone()).await;
    let store = table.store().clone();

    // Attempt 1 writes two of its files and fails before committing.
    let attempt1 = table.begin_transaction().await.unwrap();
    write_file(&store, "d1", &attempt1.data_file_name(0), &[0, 1, 2]).await;
    write_file(&store, "d1", &attempt1.data_file_name(1), &[3, 4, 5]).await;
    attempt1.finish().await.unwrap(); // the task runner abandons it
    assert!(committed_rows(&table).await.is_empty());

    // Attempt 2 (the retry) writes everything and commits.
    let attempt2 = table.begin_transaction().await.unwrap();
    let mut files = Vec::new();
    for (n, ids) in [[0, 1, 2], [3, 4, 5], [6, 7, 8]].iter().enumerate() {
        files.push(write_file(&store, "d1", &attempt2.data_file_name(n), ids).await);
    }
    let lease = table
        .lease("dt=d1")
        .owner("etl")
        .holder("job/1")
        .await
        .unwrap();
    table
        .commit()
        .transaction(&attempt2)
        .job("job", 1)
        .owner("etl")
        .mode(Mode::OverwritePartitions)
        .add_files(files)
        .epochs([lease])
        .await
        .unwrap();
    let expected: Vec<_> = (0..9).map(|i| ("d1".to_string(), i)).collect();
    assert_eq!(committed_rows(&table).await, expected);

    // A job whose task always fails: three attempts write data, none commits.
    let version = table.snapshot().version();
    for _ in 0..3 {
        let txn = table.begin_transaction().await.unwrap();
        write_file(&store, "d2", &txn.data_file_name(0), &[100, 101]).await;
        txn.finish().await.unwrap();
    }
    assert_eq!(table.refresh().await.unwrap().version(), version);
    assert_eq!(committed_rows(&table).await, expected);
    // Vacuum collects the failed attempts' files and nothing else.
    let report = table.vacuum().retention(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted.len(), 5, "{report:?}");
    assert_eq!(committed_rows(&table).await, expected);
}
