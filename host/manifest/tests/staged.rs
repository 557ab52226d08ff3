//! Staged commits ([`weir_manifest::StagedAdds`]): a transaction's adds are staged as its tasks
//! finish and the commit publishes the staging object as the log entry (a hard link on
//! `file://`, a clone on `memory://`; S3 without copy-if-not-exists PUTs).
//!
//! Each test runs as `file::NAME`, `memory::NAME` and `s3::NAME` (moto, via
//! `scripts/with-s3.sh`). Races are made deterministic with a store wrapper that lands a
//! competing commit just before the staged commit's first copy into `_delta_log/`.

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{committed_rows, new_table, write_file};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use weir_manifest::{
    AddFile, Error, Mode, Ownership, OwnershipRule, Table, TableSchema, commit_key,
};
use weir_store::Store;
use weir_store::object_store::path::Path;
use weir_store::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

weir_store::store_tests!(
    a_staged_commit_reads_back_like_a_put_commit,
    a_staged_commit_puts_when_the_store_cannot_copy_create_only,
    a_staged_commit_that_loses_a_race_relinks_with_the_same_header,
    a_staged_commit_whose_header_changes_on_rebase_puts_the_same_bytes,
    a_staged_overwrite_conflicts_with_a_concurrent_change_and_leaves_nothing,
    abandoned_staged_adds_commit_nothing_and_leave_nothing,
    vacuum_removes_staging_objects_of_dead_transactions_only,
    concurrent_staged_and_put_commits_all_land_exactly_once,
);

fn links(store: &Store) -> bool {
    store.url().scheme() != "s3"
}

/// Writes `n` data files of transaction `id` in partition `dt`, `per` rows each from `start`.
async fn files(store: &Store, id: &str, dt: &str, tag: &str, n: usize, start: i64) -> Vec<AddFile> {
    let mut out = Vec::new();
    for i in 0..n {
        let from = start + (i as i64) * 3;
        let name = format!("part-{tag}{i:03}-{id}.parquet");
        out.push(write_file(store, dt, &name, &[from, from + 1, from + 2]).await);
    }
    out
}

fn rows(dt: &str, ids: std::ops::Range<i64>) -> Vec<(String, i64)> {
    ids.map(|i| (dt.to_string(), i)).collect()
}

/// Keys under `_weir/txn/` (registrations and staging objects).
async fn txn_keys(store: &Store) -> Vec<String> {
    store
        .list("_weir/txn")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// The lines of log version `version`.
async fn log_lines(store: &Store, version: i64) -> Vec<serde_json::Value> {
    let bytes = store.get(&commit_key(version)).await.unwrap();
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// Checks a staged commit's log entry: its adds (in staging order) first, then the commitInfo
/// carrying `txn_id`.
async fn assert_adds_then_header(store: &Store, version: i64, paths: &[String], txn_id: &str) {
    let lines = log_lines(store, version).await;
    let added: Vec<&str> = lines
        .iter()
        .take(paths.len())
        .map(|l| l["add"]["path"].as_str().expect("an add line"))
        .collect();
    assert_eq!(added, paths.iter().map(String::as_str).collect::<Vec<_>>());
    let info = &lines[paths.len()]["commitInfo"];
    assert_eq!(info["weirTxnId"].as_str(), Some(txn_id), "{info}");
    assert!(
        lines[paths.len()..].iter().all(|l| l.get("add").is_none()),
        "no add after the header"
    );
}

async fn a_staged_commit_reads_back_like_a_put_commit(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let store = table.store().clone();
    let txn = table.begin_transaction().job("load").await.unwrap();
    let mut staged = txn.stage().await.unwrap();
    let mut paths = Vec::new();
    for (chunk, dt) in ["a", "b", "a"].into_iter().enumerate() {
        let chunk_files = files(
            &store,
            txn.id(),
            dt,
            &format!("c{chunk}-"),
            2,
            chunk as i64 * 6,
        )
        .await;
        paths.extend(chunk_files.iter().map(|f| f.path.clone()));
        staged.add(chunk_files).await.unwrap();
    }
    assert_eq!(staged.len(), 6);
    let outcome = table.commit().staged(staged).job("load", 1).await.unwrap();
    assert_eq!(outcome.version, 1);
    assert_eq!(outcome.files_added, 6);
    assert_eq!(outcome.txn_id, txn.id());
    assert_eq!(outcome.linked, links(&store), "{outcome:?}");
    assert_adds_then_header(&store, 1, &paths, txn.id()).await;

    // The cached snapshot (built as chunks were staged) and a fresh load agree.
    let fresh = Table::open(store.clone()).await.unwrap().snapshot();
    let cached = table.snapshot();
    let mut a: Vec<_> = cached.files().cloned().collect();
    let mut b: Vec<_> = fresh.files().cloned().collect();
    a.sort_by(|x, y| x.path.cmp(&y.path));
    b.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(a, b);
    assert_eq!(fresh.app_version("load"), Some(1));
    let mut expected = rows("a", 0..6);
    expected.extend(rows("a", 12..18));
    expected.extend(rows("b", 6..12));
    expected.sort();
    assert_eq!(committed_rows(&table).await, expected);
    // The registration and the staging object are gone.
    assert_eq!(txn_keys(&store).await, Vec::<String>::new());

    // Re-running the committed job is a no-op, and leaves nothing staged either.
    let txn = table.begin_transaction().await.unwrap();
    let mut again = txn.stage().await.unwrap();
    again
        .add(files(&store, txn.id(), "a", "x", 1, 100).await)
        .await
        .unwrap();
    let outcome = table.commit().staged(again).job("load", 1).await.unwrap();
    assert!(outcome.already_committed);
    txn.finish().await.unwrap();
    assert_eq!(txn_keys(&store).await, Vec::<String>::new());
    assert_eq!(table.refresh().await.unwrap().version(), 1);
}

async fn a_staged_commit_puts_when_the_store_cannot_copy_create_only(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let hooked = Hooked::wrap(table.store(), true, None);
    let table = Table::open(hooked.store.clone()).await.unwrap();
    let txn = table.begin_transaction().await.unwrap();
    let mut staged = txn.stage().await.unwrap();
    let added = files(&hooked, txn.id(), "a", "", 3, 0).await;
    let paths: Vec<String> = added.iter().map(|f| f.path.clone()).collect();
    staged.add(added).await.unwrap();
    let outcome = table.commit().staged(staged).await.unwrap();
    assert!(!outcome.linked, "{outcome:?}");
    assert_eq!(outcome.version, 1);
    assert_adds_then_header(&hooked, 1, &paths, txn.id()).await;
    assert_eq!(committed_rows(&table).await, rows("a", 0..9));
    assert_eq!(txn_keys(&hooked).await, Vec::<String>::new());
}

async fn a_staged_commit_that_loses_a_race_relinks_with_the_same_header(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let base = table.store().clone();
    // The competitor appends to another partition just before our first publish.
    let other = table.clone();
    let theirs = write_file(&base, "z", "theirs.parquet", &[-1]).await;
    let race: BoxFuture<'static, ()> = Box::pin(async move {
        other.commit().add_files([theirs]).await.unwrap();
    });
    let hooked = Hooked::wrap(&base, false, Some(race));
    let table = Table::open(hooked.store.clone()).await.unwrap();
    let txn = table.begin_transaction().await.unwrap();
    let mut staged = txn.stage().await.unwrap();
    let added = files(&hooked, txn.id(), "a", "", 2, 0).await;
    let paths: Vec<String> = added.iter().map(|f| f.path.clone()).collect();
    staged.add(added).await.unwrap();
    let outcome = table.commit().staged(staged).job("j", 1).await.unwrap();
    assert!(hooked.raced(), "the competitor ran");
    assert_eq!(outcome.version, 2, "{outcome:?}");
    assert_eq!(outcome.attempts, 2);
    // Append headers do not depend on the state rebased onto: the same object is linked again.
    assert_eq!(outcome.linked, links(&base), "{outcome:?}");
    assert_adds_then_header(&base, 2, &paths, txn.id()).await;
    let mut expected = rows("a", 0..6);
    expected.push(("z".into(), -1));
    assert_eq!(committed_rows(&table).await, expected);
    assert_eq!(txn_keys(&base).await, Vec::<String>::new());
}

async fn a_staged_commit_whose_header_changes_on_rebase_puts_the_same_bytes(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let base = table.store().clone();
    // The competitor changes the table metadata (ownership); our commit evolves the schema, so
    // its metaData line (built on the latest metadata) differs after the rebase.
    let other = table.clone();
    let race: BoxFuture<'static, ()> = Box::pin(async move {
        let ownership = Ownership {
            rules: vec![OwnershipRule {
                pattern: "*".into(),
                owner: "etl".into(),
            }],
        };
        other.set_ownership(ownership, None).await.unwrap();
    });
    let hooked = Hooked::wrap(&base, false, Some(race));
    let table = Table::open(hooked.store.clone()).await.unwrap();
    let txn = table.begin_transaction().await.unwrap();
    let mut staged = txn.stage().await.unwrap();
    let added = files(&hooked, txn.id(), "a", "", 2, 0).await;
    let paths: Vec<String> = added.iter().map(|f| f.path.clone()).collect();
    staged.add(added).await.unwrap();
    let evolved = TableSchema::parse_spec("id:long,name:string,dt:string,extra:string").unwrap();
    let outcome = table
        .commit()
        .staged(staged)
        .owner("etl")
        .schema(evolved.clone())
        .schema_evolution(true)
        .await
        .unwrap();
    assert!(hooked.raced(), "the competitor ran");
    assert_eq!((outcome.version, outcome.attempts), (2, 2), "{outcome:?}");
    assert!(!outcome.linked, "a changed header is PUT: {outcome:?}");
    assert_adds_then_header(&base, 2, &paths, txn.id()).await;
    let snapshot = Table::open(base.clone()).await.unwrap().snapshot();
    assert_eq!(snapshot.schema(), &evolved);
    assert_eq!(snapshot.ownership().owner_of("dt=a"), Some("etl"));
    assert_eq!(committed_rows(&table).await, rows("a", 0..6));
    assert_eq!(txn_keys(&base).await, Vec::<String>::new());
}

async fn a_staged_overwrite_conflicts_with_a_concurrent_change_and_leaves_nothing(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let base = table.store().clone();
    let txn = table.begin_transaction().await.unwrap();
    let mut staged = txn.stage().await.unwrap();
    staged
        .add(files(&base, txn.id(), "a", "", 2, 0).await)
        .await
        .unwrap();
    // Another writer appends to the partition the staged overwrite replaces.
    let other = Table::open(base.clone()).await.unwrap();
    let theirs = write_file(&base, "a", "theirs.parquet", &[-1]).await;
    other.commit().add_files([theirs]).await.unwrap();
    let err = table
        .commit()
        .staged(staged)
        .mode(Mode::OverwritePartitions)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("dt=a"), "{err}");
    assert_eq!(table.refresh().await.unwrap().version(), 1);
    assert_eq!(committed_rows(&table).await, vec![("a".into(), -1)]);
    // Only the registration is left (the caller finishes it); the staging object is gone.
    txn.finish().await.unwrap();
    assert_eq!(txn_keys(&base).await, Vec::<String>::new());
}

async fn abandoned_staged_adds_commit_nothing_and_leave_nothing(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let base = table.store().clone();
    let txn = table.begin_transaction().job("j").await.unwrap();
    let mut staged = txn.stage().await.unwrap();
    staged
        .add(files(&base, txn.id(), "a", "", 2, 0).await)
        .await
        .unwrap();
    // An invalid chunk is refused whole and stages nothing.
    let bad = AddFile {
        path: "_delta_log/evil.parquet".into(),
        ..Default::default()
    };
    let err = staged.add([bad]).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(staged.len(), 2);
    // The job fails: the staged adds are abandoned.
    staged.abort().await.unwrap();
    txn.finish().await.unwrap();
    assert_eq!(table.refresh().await.unwrap().version(), 0);
    assert!(
        base.head(&commit_key(1)).await.is_err(),
        "no log entry for the failed job"
    );
    assert_eq!(committed_rows(&table).await, vec![]);
    assert_eq!(txn_keys(&base).await, Vec::<String>::new());
}

async fn vacuum_removes_staging_objects_of_dead_transactions_only(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let base = table.store().clone();
    let live = table.begin_transaction().await.unwrap();
    let dead = table.begin_transaction().ttl(Duration::ZERO).await.unwrap();
    // As a crash between finishing a staging object and linking it would leave them.
    let live_key = format!("_weir/txn/{}/adds-0.json", live.id());
    let dead_key = format!("_weir/txn/{}/adds-0.json", dead.id());
    base.put(&live_key, Bytes::from_static(b"{}\n"))
        .await
        .unwrap();
    base.put(&dead_key, Bytes::from_static(b"{}\n"))
        .await
        .unwrap();
    let recent = table.vacuum().await.unwrap();
    assert!(recent.deleted_staging.is_empty(), "{recent:?}");
    let dry = table
        .vacuum()
        .retention(Duration::ZERO)
        .dry_run(true)
        .await
        .unwrap();
    assert_eq!(dry.deleted_staging, std::slice::from_ref(&dead_key));
    base.head(&dead_key).await.unwrap();
    let report = table.vacuum().retention(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted_staging, std::slice::from_ref(&dead_key));
    assert!(base.head(&dead_key).await.is_err());
    base.head(&live_key).await.unwrap();
    assert_eq!(table.refresh().await.unwrap().version(), 0);
}

async fn concurrent_staged_and_put_commits_all_land_exactly_once(store: &Store) {
    let table = new_table(&store.child("t")).await;
    let base = table.store().clone();
    let mut writers = Vec::new();
    for w in 0..6i64 {
        let base = base.clone();
        writers.push(tokio::spawn(async move {
            let table = Table::open(base.clone()).await.unwrap();
            let txn = table.begin_transaction().await.unwrap();
            let dt = format!("w{w}");
            let mut mine = Vec::new();
            let builder = if w % 2 == 0 {
                let mut staged = txn.stage().await.unwrap();
                for chunk in 0..3 {
                    let f = files(&base, txn.id(), &dt, &format!("c{chunk}-"), 2, chunk * 6).await;
                    mine.extend(f.iter().map(|f| f.path.clone()));
                    staged.add(f).await.unwrap();
                }
                table.commit().staged(staged)
            } else {
                let f = files(&base, txn.id(), &dt, "", 6, 0).await;
                mine.extend(f.iter().map(|f| f.path.clone()));
                table.commit().transaction(&txn).add_files(f)
            };
            let outcome = builder.job(format!("job-{w}"), 1).await.unwrap();
            (outcome, mine)
        }));
    }
    let mut versions = Vec::new();
    for writer in writers {
        let (outcome, mine) = writer.await.unwrap();
        // Each log entry holds exactly its own commit's adds.
        let lines = log_lines(&base, outcome.version).await;
        let mut added: Vec<String> = lines
            .iter()
            .filter_map(|l| l["add"]["path"].as_str().map(str::to_string))
            .collect();
        added.sort();
        let mut mine = mine;
        mine.sort();
        assert_eq!(added, mine, "version {}", outcome.version);
        versions.push(outcome.version);
    }
    versions.sort();
    assert_eq!(versions, (1..=6).collect::<Vec<_>>());
    let snapshot = table.refresh().await.unwrap();
    assert_eq!(snapshot.file_count(), 36);
    let mut expected = Vec::new();
    for w in 0..6 {
        expected.extend(rows(&format!("w{w}"), 0..18));
    }
    expected.sort();
    assert_eq!(committed_rows(&table).await, expected);
    assert_eq!(txn_keys(&base).await, Vec::<String>::new());
}

/// A store wrapper for races and unsupported operations: optionally refuses create-only copies
/// (as S3 does without configuration), and optionally runs a competing commit just before the
/// first copy into `_delta_log/`.
struct Hooked {
    inner: Arc<dyn ObjectStore>,
    refuse_copy: bool,
    race: Mutex<Option<BoxFuture<'static, ()>>>,
    raced: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
struct HookedStore {
    store: Store,
    hooked: Arc<Hooked>,
}

impl std::ops::Deref for HookedStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl HookedStore {
    fn raced(&self) -> bool {
        self.hooked.raced.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Hooked {
    fn wrap(store: &Store, refuse_copy: bool, race: Option<BoxFuture<'static, ()>>) -> HookedStore {
        let hooked = Arc::new(Hooked {
            inner: store.object_store().clone(),
            refuse_copy,
            race: Mutex::new(race),
            raced: Default::default(),
        });
        let wrapped = Store::new(store.url().clone(), hooked.clone(), store.path(""));
        HookedStore {
            store: wrapped,
            hooked,
        }
    }
}

impl fmt::Debug for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

impl fmt::Display for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Hooked {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> weir_store::object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> weir_store::object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> weir_store::object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, weir_store::object_store::Result<Path>>,
    ) -> BoxStream<'static, weir_store::object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> BoxStream<'static, weir_store::object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> weir_store::object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> weir_store::object_store::Result<()> {
        if to.as_ref().contains("_delta_log/") {
            let race = self.race.lock().unwrap().take();
            if let Some(race) = race {
                race.await;
                self.raced.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        if self.refuse_copy {
            return Err(weir_store::object_store::Error::NotSupported {
                source: "copy-if-not-exists is not configured".into(),
            });
        }
        self.inner.copy_opts(from, to, options).await
    }
}
