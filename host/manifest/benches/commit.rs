//! Commit and snapshot-load benchmark, run side by side on one file:// store (`cargo bench -p
//! weir-manifest --bench commit`). Prints the measured ratios and whether each target is met:
//! - Weir commit of 10,000 files ≤ 3× a commit of 10 files;
//! - a 10,000-file Weir commit ≥ 20× faster than a rename-based commit (Hadoop v1 style: tasks write
//!   to `_temporary/`, the job commit copies + deletes each file to its final place);
//! - snapshot load at 10,000 log versions ≤ 5× at 10 versions (with checkpoints).
//!
//! Weir's commits are staged as a coordinator makes them (`Transaction::stage`,
//! `CommitBuilder::staged`): a job's tasks hand over their files as they finish and the commit
//! publishes the staging object. The 10,000-file commit is 100 chunks of 100 files; it is timed
//! from the moment the LAST task's files are handed over (that chunk's staging is inside the
//! timed region) until the commit returns. The 10-file commit is one chunk of 10, timed the same
//! way. The other 99 chunks' staging happens while the job runs (overlapped with its tasks), so
//! it is outside the ratio; its total is printed as its own row, so the cost is visible.
//!
//! Beside it the bench prints, interleaved in the same run: the same commits made the old way,
//! all files at commit time in one create-only PUT (`add_files`), and the store's floor for that
//! PUT: bare create-only PUTs of bodies the size of the two log entries (on file:// it fsyncs, so
//! a large body costs what the disk takes to write it).
//!
//! Snapshot loads open the three tables (10 versions; 10,000 appends; 10,000 overwrites) in turn,
//! `WEIR_BENCH_LOAD_REPS` rounds (default 41), and compare their medians.

use std::time::{Duration, Instant};

// The allocator the `weir` binary ships with: snapshot loads are allocation-heavy, so the bench
// measures what users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::Bytes;
use weir_manifest::{AddFile, CommitOutcome, Mode, Table, TableSchema, commit_key};
use weir_store::Store;
use weir_store::object_store::ObjectStoreExt;

fn schema() -> TableSchema {
    TableSchema::parse_spec("id:long,name:string,dt:string").expect("schema")
}

fn files(n: usize, tag: &str) -> Vec<AddFile> {
    (0..n)
        .map(|i| {
            let dt = format!("p{}", i % 10);
            AddFile {
                path: format!("dt={dt}/part-{i:05}-{tag}.parquet"),
                size: 1024,
                partition_values: [("dt".to_string(), Some(dt))].into(),
                num_records: Some(100),
                ..Default::default()
            }
        })
        .collect()
}

async fn create(url: &str, interval: u32) -> Table {
    Table::create(Store::from_url(url).expect("store"))
        .schema(schema())
        .partition_by(["dt"])
        .checkpoint_interval(interval)
        .await
        .expect("create")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A fresh table `name` under `root`, after a one-file warm-up commit.
async fn warm_table(root: &std::path::Path, name: &str) -> Table {
    let url = root.join(name).to_str().expect("utf8").to_string();
    let table = create(&url, 1_000_000).await;
    table
        .commit()
        .add_files(files(1, "warm"))
        .await
        .expect("warm-up");
    table
}

/// Latency of committing `n` files to a fresh table (after a warm-up commit), and the size of
/// the log entry it wrote.
async fn weir_commit(root: &std::path::Path, n: usize, rep: usize) -> (Duration, u64) {
    let table = warm_table(root, &format!("weir-{n}-{rep}")).await;
    // Named like a transaction's files (a 32-character id), as the staged commits' are.
    let batch = files(n, "00000000000000000000000000000000");
    let start = Instant::now();
    let outcome = table
        .commit()
        .job("job", 1)
        .mode(Mode::Append)
        .add_files(batch)
        .await
        .expect("commit");
    let took = start.elapsed();
    let entry = table
        .store()
        .head(&commit_key(outcome.version))
        .await
        .expect("head");
    (took, entry.size)
}

/// A staged commit of `n` files in chunks of `chunk` to a fresh table (after a warm-up
/// commit): (latency from handing over the last chunk to committed, total staging time of the
/// chunks before it, size of the log entry).
async fn staged_commit(
    root: &std::path::Path,
    n: usize,
    chunk: usize,
    rep: usize,
) -> (Duration, Duration, u64) {
    let table = warm_table(root, &format!("staged-{n}-{rep}")).await;
    let txn = table.begin_transaction().job("job").await.expect("txn");
    let mut staged = txn.stage().await.expect("stage");
    let mut chunks: Vec<Vec<AddFile>> = Vec::new();
    let mut batch = files(n, txn.id());
    while !batch.is_empty() {
        let rest = batch.split_off(chunk.min(batch.len()));
        chunks.push(std::mem::replace(&mut batch, rest));
    }
    let last = chunks.pop().expect("at least one chunk");
    let start = Instant::now();
    for c in chunks {
        staged.add(c).await.expect("stage chunk");
    }
    let before = start.elapsed();
    let start = Instant::now();
    staged.add(last).await.expect("stage last chunk");
    let outcome = table
        .commit()
        .staged(staged)
        .job("job", 1)
        .mode(Mode::Append)
        .await
        .expect("commit");
    let took = start.elapsed();
    assert!(
        outcome.linked,
        "file:// links the staging object: {outcome:?}"
    );
    (took, before, entry_size(&table, &outcome).await)
}

async fn entry_size(table: &Table, outcome: &CommitOutcome) -> u64 {
    table
        .store()
        .head(&commit_key(outcome.version))
        .await
        .expect("head")
        .size
}

/// Latency of a bare create-only PUT of `size` bytes to a fresh key of `store`.
async fn raw_put(store: &Store, size: u64, key: &str) -> Duration {
    let bytes = Bytes::from(vec![b'x'; size as usize]);
    let start = Instant::now();
    store.put_create(key, bytes).await.expect("put");
    start.elapsed()
}

/// Median latencies of staged 10-file and 10,000-file commits (and the staging before the
/// last chunk), interleaved so all see the same machine load (`WEIR_BENCH_REPS` 10,000-file
/// commits, default 15, and three times as many 10-file ones); and, interleaved with them the
/// same way, of the same commits made with one PUT and of bare create-only PUTs of bodies the
/// size of their log entries (the store's floor).
async fn weir_commits(root: &std::path::Path) -> Commits {
    let reps = std::env::var("WEIR_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let raw = Store::from_url(root.join("raw-puts").to_str().expect("utf8")).expect("store");
    let (mut small, mut large, mut staging) = (Vec::new(), Vec::new(), Vec::new());
    let (mut old_small, mut old_large) = (Vec::new(), Vec::new());
    let (mut put_small, mut put_large) = (Vec::new(), Vec::new());
    let (mut small_size, mut large_size) = (0, 0);
    for rep in 0..reps {
        for i in 0..3 {
            let (took, _, size) = staged_commit(root, 10, 10, rep * 3 + i).await;
            small.push(took);
            let (took, _) = weir_commit(root, 10, rep * 3 + i).await;
            old_small.push(took);
            small_size = size;
            put_small.push(raw_put(&raw, size, &format!("small/{rep}-{i}")).await);
        }
        let (took, before, size) = staged_commit(root, 10_000, 100, rep).await;
        large.push(took);
        staging.push(before);
        let (took, _) = weir_commit(root, 10_000, rep).await;
        old_large.push(took);
        large_size = size;
        put_large.push(raw_put(&raw, size, &format!("large/{rep}")).await);
    }
    Commits {
        small: median(small),
        large: median(large),
        staging: median(staging),
        put: (median(old_small), median(old_large)),
        floor: Floor {
            small: (small_size, median(put_small)),
            large: (large_size, median(put_large)),
        },
    }
}

/// Median latencies measured by [`weir_commits`].
struct Commits {
    /// Staged commits: from the last chunk handed over to committed.
    small: Duration,
    large: Duration,
    /// Staging the 10,000-file commit's first 99 chunks (while the job runs).
    staging: Duration,
    /// The same commits in one PUT at commit time (10 files, 10,000 files).
    put: (Duration, Duration),
    floor: Floor,
}

/// Bare create-only PUTs: (body bytes, median latency) for the two commits' entry sizes.
struct Floor {
    small: (u64, Duration),
    large: (u64, Duration),
}

/// Median latency of a rename-based job commit of `n` task files of 1 KiB.
async fn rename_commit(root: &std::path::Path, n: usize, reps: usize) -> Duration {
    let payload = Bytes::from(vec![7u8; 1024]);
    let mut times = Vec::new();
    for r in 0..reps {
        let url = root
            .join(format!("rename-{n}-{r}"))
            .to_str()
            .expect("utf8")
            .to_string();
        let store = Store::from_url(&url).expect("store");
        let batch = files(n, "job");
        for f in &batch {
            store
                .put(&format!("_temporary/0/task/{}", f.path), payload.clone())
                .await
                .expect("put");
        }
        let os = store.object_store().clone();
        let start = Instant::now();
        for f in &batch {
            let from = store.path(&format!("_temporary/0/task/{}", f.path));
            let to = store.path(&f.path);
            os.copy(&from, &to).await.expect("copy");
            os.delete(&from).await.expect("delete");
        }
        store
            .put("_SUCCESS", Bytes::new())
            .await
            .expect("success marker");
        times.push(start.elapsed());
    }
    median(times)
}

/// Builds a table with `versions` commits, one file each; returns its URL. A complete table left
/// in `root` by an earlier run (with `WEIR_BENCH_DIR`) is reused.
async fn table_with_versions(root: &std::path::Path, versions: usize, overwrite: bool) -> String {
    let url = root
        .join(format!("log-{versions}-{overwrite}"))
        .to_str()
        .expect("utf8")
        .to_string();
    if let Ok(table) = Table::open(Store::from_url(&url).expect("store")).await
        && table.snapshot().version() == versions as i64 - 1
    {
        return url;
    }
    let table = create(&url, 10).await;
    for i in 0..versions - 1 {
        let mut f = files(1, &format!("v{i}"));
        let dt = format!("p{}", i % 10);
        f[0].path = format!("dt={dt}/part-{i}.parquet");
        f[0].partition_values = [("dt".to_string(), Some(dt))].into();
        let mode = if overwrite {
            Mode::OverwritePartitions
        } else {
            Mode::Append
        };
        table
            .commit()
            .mode(mode)
            .add_files(f)
            .await
            .expect("commit");
    }
    url
}

/// One open of the table at `url`: its time, version and file count.
async fn load_once(url: &str) -> (Duration, i64, usize) {
    let store = Store::from_url(url).expect("store");
    let start = Instant::now();
    let table = Table::open(store).await.expect("open");
    let elapsed = start.elapsed();
    let snapshot = table.snapshot();
    (elapsed, snapshot.version(), snapshot.file_count())
}

/// The median time to open each table in `urls`, over `reps` rounds that open each once in turn
/// (so all see the same machine load), with the version and file count of each.
async fn load_times(urls: &[&str], reps: usize) -> Vec<(Duration, i64, usize)> {
    let mut times = vec![Vec::with_capacity(reps); urls.len()];
    let mut last = vec![(0, 0); urls.len()];
    for _ in 0..reps {
        for (i, url) in urls.iter().enumerate() {
            let (t, version, files) = load_once(url).await;
            times[i].push(t);
            last[i] = (version, files);
        }
    }
    times
        .into_iter()
        .zip(last)
        .map(|(t, (version, files))| (median(t), version, files))
        .collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench --bench commit -- commit` (or `load`) runs one half; default both. `weir` runs
    // only Weir's commits (no rename baseline), for profiling.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |section: &str| args.is_empty() || args.iter().any(|a| a == section);
    // WEIR_BENCH_DIR keeps the (slow to build) logs between runs; default a fresh temp dir.
    let dir = tempfile::tempdir().expect("tempdir");
    let kept = std::env::var_os("WEIR_BENCH_DIR").map(std::path::PathBuf::from);
    println!(
        "weir-manifest benchmark on file:// ({})",
        dir.path().display()
    );
    if run("commit") || run("weir") {
        commits(dir.path(), run("commit")).await;
    }
    if run("load") {
        loads(kept.as_deref().unwrap_or(dir.path())).await;
    }
    // `-- profile-load` with WEIR_BENCH_PROFILE=small|appends|overwrites (default appends):
    // only opens that table, `WEIR_BENCH_REPS` times (default 300), for a profiler.
    if args.iter().any(|a| a == "profile-load") {
        profile_load(kept.as_deref().unwrap_or(dir.path())).await;
    }
}

async fn profile_load(root: &std::path::Path) {
    let which = std::env::var("WEIR_BENCH_PROFILE").unwrap_or_else(|_| "appends".into());
    let url = match which.as_str() {
        "small" => table_with_versions(root, 10, false).await,
        "overwrites" => table_with_versions(root, 10_000, true).await,
        _ => table_with_versions(root, 10_000, false).await,
    };
    let reps = std::env::var("WEIR_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let (t, v, f) = load_times(&[&url], reps).await[0];
    println!("{which}: {} versions, {f} files: {:.3} ms", v + 1, ms(t));
}

async fn commits(root: &std::path::Path, with_rename: bool) {
    let Commits {
        small: c10,
        large: c10k,
        staging,
        put: (put10, put10k),
        floor,
    } = weir_commits(root).await;
    println!("\ncommit latency (median), staged: last chunk handed over -> committed:");
    println!(
        "  weir   10 files: {:9.3} ms   10,000 files: {:9.3} ms   (1 chunk of 10; the last of 100 chunks of 100)",
        ms(c10),
        ms(c10k)
    );
    let scale = c10k.as_secs_f64() / c10.as_secs_f64();
    println!(
        "  weir 10k / weir 10        = {scale:8.2}x  (target <= 3x):  {}",
        verdict(scale <= 3.0)
    );
    println!(
        "  NOT in the ratio: staging the 10,000-file commit's other 99 chunks took {:.3} ms in total (while the job runs)",
        ms(staging)
    );
    println!(
        "  one PUT at commit time (add_files), for comparison: 10 files: {:.3} ms   10,000 files: {:.3} ms = {:.2}x",
        ms(put10),
        ms(put10k),
        put10k.as_secs_f64() / put10.as_secs_f64()
    );
    let ((size10, p10), (size10k, p10k)) = (floor.small, floor.large);
    println!(
        "  floor of that PUT: bare create-only PUT of {size10} B: {:.3} ms, of {size10k} B: {:.3} ms = {:.2}x",
        ms(p10),
        ms(p10k),
        p10k.as_secs_f64() / p10.as_secs_f64()
    );
    if !with_rename {
        return;
    }
    let r10 = rename_commit(root, 10, 5).await;
    let r10k = rename_commit(root, 10_000, 3).await;
    println!(
        "  rename 10 files: {:9.3} ms   10,000 files: {:9.3} ms",
        ms(r10),
        ms(r10k)
    );
    let speedup = r10k.as_secs_f64() / c10k.as_secs_f64();
    println!(
        "  rename 10k / weir 10k     = {speedup:8.2}x  (target >= 20x): {}",
        verdict(speedup >= 20.0)
    );
}

async fn loads(root: &std::path::Path) {
    println!("\nbuilding logs (10 and 10,000 versions, checkpoint every 10)...");
    let small = table_with_versions(root, 10, false).await;
    let large = table_with_versions(root, 10_000, false).await;
    let large_const = table_with_versions(root, 10_000, true).await;
    let reps = std::env::var("WEIR_BENCH_LOAD_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(41);
    let [(l10, v10, f10), (l10k, v10k, f10k), (lc, vc, fc)] =
        load_times(&[&small, &large, &large_const], reps).await[..]
    else {
        unreachable!("one result per table")
    };
    println!("snapshot load (median of {reps}, the three tables opened in turn):");
    println!(
        "  {:>6} versions, {:>6} files: {:9.3} ms",
        v10 + 1,
        f10,
        ms(l10)
    );
    println!(
        "  {:>6} versions, {:>6} files: {:9.3} ms   (appends: table grows with the log)",
        v10k + 1,
        f10k,
        ms(l10k)
    );
    println!(
        "  {:>6} versions, {:>6} files: {:9.3} ms   (overwrites: 10 live files, tombstones kept)",
        vc + 1,
        fc,
        ms(lc)
    );
    let grow = l10k.as_secs_f64() / l10.as_secs_f64();
    let constant = lc.as_secs_f64() / l10.as_secs_f64();
    println!(
        "  load 10k / load 10 (appends)    = {grow:8.2}x  (target <= 5x): {}",
        verdict(grow <= 5.0)
    );
    println!(
        "  load 10k / load 10 (overwrites) = {constant:8.2}x  (target <= 5x): {}",
        verdict(constant <= 5.0)
    );
}
