//! Commits: one create-only PUT of the next log version, with optimistic concurrency.
//!
//! Each attempt: refresh the snapshot; scan the versions committed since the commit's read
//! version for conflicts (and for this commit's own transaction id, in case an earlier ambiguous
//! attempt landed); skip if the job's run is already committed (Delta `txn`); validate schema,
//! ownership and lease epochs against the latest state; then PUT version N+1 create-only.
//! Losing the race (AlreadyExists) means rebase and retry with backoff. Any other PUT error is
//! ambiguous: the version is read back and the transaction id decides whether the commit landed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::sync::Arc;

use bytes::Bytes;
use weir_store::object_store::PutPayload;

use crate::actions::{self, Action, Add, CommitInfo, Metadata, PartitionValues, Remove, Txn};
use crate::error::{Error, Result, fmt_millis};
use crate::lease::{Lease, latest_lease};
use crate::partition::{display_partition, partition_path};
use crate::schema::TableSchema;
use crate::snapshot::{self, ByPath, EPOCH_APP_PREFIX, Snapshot, commit_key};
use crate::table::{Table, backoff, ensure_conditional_writes};
use crate::txn::Transaction;
use crate::{checkpoint, failpoint};

/// How a commit treats existing data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Add files; existing files stay.
    #[default]
    Append,
    /// Atomically replace every partition the commit writes (remove + add in one version).
    OverwritePartitions,
}

/// A data file to add: written once, straight to its final place, relative to the table root.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AddFile {
    /// Path relative to the table root, e.g. `dt=2026-01-01/part-00000-<txn>.parquet`.
    pub path: String,
    pub size: i64,
    pub partition_values: PartitionValues,
    pub num_records: Option<i64>,
    /// Delta stats JSON; when absent, `{"numRecords": n}` is written if `num_records` is known.
    pub stats: Option<String>,
    /// Epoch milliseconds; defaults to the commit time.
    pub modification_time: Option<i64>,
}

/// The result of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The version holding the commit (for a no-op, the version the table was at).
    pub version: i64,
    /// The commit's transaction id (recorded in commitInfo).
    pub txn_id: String,
    /// True if the job's run was already committed, so nothing was written.
    pub already_committed: bool,
    pub attempts: u32,
    pub files_added: usize,
    pub files_removed: usize,
}

/// Builder for [`Table::commit`]. Await it to commit.
#[must_use = "a builder does nothing until awaited"]
pub struct CommitBuilder<'a> {
    table: &'a Table,
    txn: Option<(String, i64)>,
    job: Option<(String, i64)>,
    owner: Option<String>,
    mode: Mode,
    files: Vec<AddFile>,
    overwrite: Vec<PartitionValues>,
    leases: Vec<Lease>,
    write_schema: Option<TableSchema>,
    evolve: bool,
    read_version: i64,
    metadata: Option<Metadata>,
    operation: Option<String>,
    max_attempts: u32,
}

impl<'a> CommitBuilder<'a> {
    pub(crate) fn new(table: &'a Table) -> Self {
        Self {
            table,
            txn: None,
            job: None,
            owner: None,
            mode: Mode::Append,
            files: Vec::new(),
            overwrite: Vec::new(),
            leases: Vec::new(),
            write_schema: None,
            evolve: false,
            read_version: table.snapshot().version(),
            metadata: None,
            operation: None,
            max_attempts: 100,
        }
    }

    /// Commits the files of transaction `txn`: uses its id and the table version it began at.
    /// On success the transaction's in-flight registration is removed.
    pub fn transaction(mut self, txn: &Transaction) -> Self {
        self.txn = Some((txn.id().to_string(), txn.read_version()));
        self.read_version = txn.read_version();
        self
    }

    /// Uses a caller-chosen transaction id (default: a fresh one).
    pub fn txn_id(mut self, id: impl Into<String>) -> Self {
        self.txn = Some((id.into(), self.read_version));
        self
    }

    /// Makes the commit idempotent per job run: a Delta `txn` (appId = job, version = run).
    /// If the table already holds run `run` (or later) of `job`, the commit is a no-op.
    pub fn job(mut self, job: impl Into<String>, run: i64) -> Self {
        self.job = Some((job.into(), run));
        self
    }

    /// The owner id the job runs as (checked against partition ownership).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    pub fn add_files(mut self, files: impl IntoIterator<Item = AddFile>) -> Self {
        self.files.extend(files);
        self
    }

    /// With [`Mode::OverwritePartitions`]: also empty these partitions (even if no file is added).
    pub fn overwrite_partition(mut self, values: PartitionValues) -> Self {
        self.overwrite.push(values);
        self
    }

    /// The leases the writer holds; their epochs are checked and recorded in the commit.
    pub fn epochs(mut self, leases: impl IntoIterator<Item = Lease>) -> Self {
        self.leases.extend(leases);
        self
    }

    /// The Arrow-derived schema of the written rows (partition columns included); checked
    /// against the table schema.
    pub fn schema(mut self, schema: TableSchema) -> Self {
        self.write_schema = Some(schema);
        self
    }

    /// Allows the write to add nullable columns to the table schema.
    pub fn schema_evolution(mut self, allow: bool) -> Self {
        self.evolve = allow;
        self
    }

    /// The table version the job's decisions were based on (default: the cached snapshot's
    /// version when the builder was made, or the transaction's start version).
    pub fn read_version(mut self, version: i64) -> Self {
        self.read_version = version;
        self
    }

    pub(crate) fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    pub(crate) fn operation(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_string());
        self
    }

    /// The most attempts before giving up with [`Error::TooManyRetries`] (default 100).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    async fn run(mut self) -> Result<CommitOutcome> {
        let now = now_ms();
        // The adds are built once (moving each file's strings), serialised once, in the
        // background while the attempt checks the table, and finally moved into the cached
        // snapshot. Their log lines do not depend on the table state; only the few lines
        // before them (commitInfo, txn, removes) are rebuilt per attempt.
        let files = std::mem::take(&mut self.files);
        let mut adds = Vec::with_capacity(files.len());
        for file in files {
            validate_path(&file.path)?;
            adds.push(into_add(file, now));
        }
        let partitions = self.distinct_partitions(&adds);
        let mut prepared = PreparedAdds::start(adds);
        let table = self.table;
        let store = table.store();
        let url = table.url();
        let txn_id = self
            .txn
            .as_ref()
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        ensure_conditional_writes(store).await?;
        let mut checked_up_to = self.read_version;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > self.max_attempts {
                return Err(Error::TooManyRetries {
                    url,
                    attempts: self.max_attempts,
                });
            }
            let snapshot = table.refresh().await?;
            // Conflicts with (and duplicates among) versions committed since our read version.
            for version in checked_up_to + 1..=snapshot.version() {
                let Some(actions) = snapshot::read_version(store, version).await? else {
                    return Err(Error::CorruptLog {
                        version,
                        url: store.url_of(&commit_key(version)),
                        reason: "version vanished from the log".into(),
                    });
                };
                if commit_txn_id(&actions) == Some(txn_id.as_str()) {
                    let added = prepared.len();
                    return Ok(self.outcome(version, txn_id, attempt, false, (added, 0)));
                }
                self.check_conflict(&snapshot, version, &actions, &url, &partitions)?;
            }
            checked_up_to = snapshot.version();
            if let Some((job, run)) = &self.job
                && snapshot.app_version(job).is_some_and(|v| v >= *run)
            {
                tracing::info!(%url, job, run, "job run already committed; nothing to do");
                return Ok(self.outcome(snapshot.version(), txn_id, attempt, true, (0, 0)));
            }
            let overwriting = match self.mode {
                Mode::OverwritePartitions => Some(prepared.ready().await?.0),
                Mode::Append => None,
            };
            let (actions, removed) = self
                .build_actions(&snapshot, &txn_id, now, overwriting, &partitions)
                .await?;
            let version = snapshot.version() + 1;
            drop(snapshot);
            let header = Bytes::from(actions::to_ndjson(&actions));
            let bytes = PutPayload::from_iter([header, prepared.ready().await?.1.clone()]);
            failpoint::hit("before-log-put");
            let landed = match store.put_create(&commit_key(version), bytes).await {
                Ok(_) => true,
                Err(weir_store::Error::AlreadyExists { .. }) => {
                    // Ours if an earlier ambiguous attempt landed; otherwise another writer won.
                    is_own_commit(table, version, &txn_id).await?
                }
                Err(e) => {
                    tracing::warn!(%url, version, error = %e, "ambiguous commit PUT; reading it back");
                    match snapshot::read_version(store, version).await? {
                        Some(found) => commit_txn_id(&found) == Some(txn_id.as_str()),
                        None => false,
                    }
                }
            };
            if !landed {
                backoff(attempt).await;
                continue;
            }
            failpoint::hit("after-log-put");
            let added = prepared.len();
            let adds = prepared.into_adds().await?;
            let snapshot = table.apply_own_commit(version, actions, adds)?;
            self.after_commit(&snapshot, version).await;
            return Ok(self.outcome(version, txn_id, attempt, false, (added, removed)));
        }
    }

    fn outcome(
        &self,
        version: i64,
        txn_id: String,
        attempts: u32,
        already: bool,
        (added, removed): (usize, usize),
    ) -> CommitOutcome {
        CommitOutcome {
            version,
            txn_id,
            already_committed: already,
            attempts,
            files_added: if already { 0 } else { added },
            files_removed: removed,
        }
    }

    /// Best-effort work after a commit landed: checkpoint, and release the transaction record.
    async fn after_commit(&self, snapshot: &Arc<Snapshot>, version: i64) {
        let store = self.table.store();
        if snapshot.version() == version && version % snapshot.checkpoint_interval() == 0 {
            let mut state = Snapshot::clone(snapshot);
            state.expire_tombstones(now_ms() - TOMBSTONE_RETENTION_MS);
            if let Err(e) = checkpoint::write(store, &state).await {
                tracing::warn!(version, error = %e, "checkpoint failed; the log is still complete");
            }
        }
        if let Some((id, _)) = &self.txn
            && let Err(e) = store.delete(&crate::txn::txn_key(id)).await
        {
            tracing::warn!(txn = id, error = %e, "cannot remove the in-flight transaction record");
        }
    }

    /// The distinct partition values this commit writes (added files plus explicit overwrites),
    /// each with a file that has them (for messages). Few, however many files there are.
    fn distinct_partitions(&self, adds: &[Add]) -> Vec<(PartitionValues, Option<String>)> {
        let mut seen: hashbrown::HashSet<&PartitionValues> = hashbrown::HashSet::new();
        let mut out = Vec::new();
        for add in adds {
            if seen.insert(&add.partition_values) {
                out.push((add.partition_values.clone(), Some(add.path.clone())));
            }
        }
        for values in &self.overwrite {
            if seen.insert(values) {
                out.push((values.clone(), None));
            }
        }
        out
    }

    /// The partition paths this commit writes.
    fn touched_partitions(
        columns: &[String],
        partitions: &[(PartitionValues, Option<String>)],
    ) -> BTreeSet<String> {
        partitions
            .iter()
            .map(|(values, _)| partition_path(columns, values))
            .collect()
    }

    /// Rejects the commit if version `version` (committed after our read version) conflicts with it.
    fn check_conflict(
        &self,
        snapshot: &Snapshot,
        version: i64,
        actions: &[Action],
        url: &str,
        partitions: &[(PartitionValues, Option<String>)],
    ) -> Result<()> {
        let conflict = |reason: String| Error::Conflict {
            url: url.to_string(),
            version,
            reason,
        };
        let info = actions.iter().find_map(|a| match a {
            Action::CommitInfo(info) => Some(info),
            _ => None,
        });
        let by = info
            .and_then(|i| i.weir_job.clone().or_else(|| i.operation.clone()))
            .unwrap_or_else(|| "another writer".into());
        let columns = snapshot.partition_columns();
        let ours = Self::touched_partitions(columns, partitions);
        for action in actions {
            match action {
                Action::Protocol(_) => {
                    return Err(conflict(format!("{by} changed the table protocol")));
                }
                Action::MetaData(m) if m.partition_columns != columns => {
                    return Err(conflict(format!("{by} changed the partition columns")));
                }
                Action::MetaData(_) if self.metadata.is_some() => {
                    return Err(conflict(format!(
                        "{by} changed the table metadata concurrently"
                    )));
                }
                Action::Add(Add {
                    partition_values, ..
                })
                | Action::Remove(Remove {
                    partition_values: Some(partition_values),
                    ..
                }) if self.mode == Mode::OverwritePartitions => {
                    let theirs = partition_path(columns, partition_values);
                    if ours.contains(&theirs) {
                        return Err(conflict(format!(
                            "{by} changed partition {} that this commit overwrites",
                            display_partition(&theirs)
                        )));
                    }
                }
                Action::Remove(Remove {
                    partition_values: None,
                    path,
                    ..
                }) if self.mode == Mode::OverwritePartitions => {
                    return Err(conflict(format!(
                        "{by} removed {path} (partition unknown) while this commit overwrites partitions"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Validates against `snapshot` and builds the actions of the commit other than its adds.
    async fn build_actions(
        &self,
        snapshot: &Snapshot,
        txn_id: &str,
        now: i64,
        overwriting: Option<&ByPath<Add>>,
        partitions: &[(PartitionValues, Option<String>)],
    ) -> Result<(Vec<Action>, usize)> {
        let columns = snapshot.partition_columns().to_vec();
        for (values, file) in partitions {
            if let Some(path) = file {
                validate_partition_values(path, values, &columns)?;
            }
        }
        let mut metadata = self.metadata.clone();
        if let Some(write) = &self.write_schema
            && let Some(evolved) = snapshot.schema().check_write(write, self.evolve)?
        {
            let mut m = metadata.unwrap_or_else(|| snapshot.metadata().clone());
            m.schema_string = evolved.to_schema_string();
            metadata = Some(m);
        }
        let touched = Self::touched_partitions(&columns, partitions);
        for partition in &touched {
            snapshot
                .ownership()
                .check(partition, self.owner.as_deref())?;
        }
        let epochs = self.check_epochs(snapshot, &touched).await?;

        let mut actions = Vec::with_capacity(8);
        let mut info = CommitInfo {
            timestamp: Some(now),
            operation: Some(self.operation.clone().unwrap_or_else(|| "WRITE".into())),
            read_version: Some(self.read_version),
            is_blind_append: Some(self.mode == Mode::Append && metadata.is_none()),
            engine_info: Some(engine_info()),
            weir_txn_id: Some(txn_id.to_string()),
            weir_job: self.job.as_ref().map(|(j, _)| j.clone()),
            weir_run: self.job.as_ref().map(|(_, r)| *r),
            weir_owner: self.owner.clone(),
            weir_epochs: epochs.clone(),
            ..Default::default()
        };
        if self.metadata.is_none() {
            let mode = match self.mode {
                Mode::Append => "Append",
                Mode::OverwritePartitions => "Overwrite",
            };
            info.operation_parameters
                .insert("mode".into(), serde_json::Value::String(mode.into()));
            info.operation_parameters.insert(
                "partitionBy".into(),
                serde_json::Value::String(serde_json::to_string(&columns).unwrap_or_default()),
            );
        }
        actions.push(Action::CommitInfo(info));
        if let Some(m) = metadata {
            actions.push(Action::MetaData(m));
        }
        if let Some((job, run)) = &self.job {
            actions.push(Action::Txn(Txn {
                app_id: job.clone(),
                version: *run,
                last_updated: Some(now),
            }));
        }
        for (partition, epoch) in &epochs {
            actions.push(Action::Txn(Txn {
                app_id: format!("{EPOCH_APP_PREFIX}{partition}"),
                version: *epoch as i64,
                last_updated: Some(now),
            }));
        }
        let mut removed = 0;
        if let Some(adding) = overwriting {
            for add in snapshot.files() {
                if adding.contains(&add.path) || !touched.contains(&snapshot.partition_of(add)) {
                    continue;
                }
                removed += 1;
                actions.push(Action::Remove(Remove {
                    path: add.path.clone(),
                    deletion_timestamp: Some(now),
                    data_change: true,
                    extended_file_metadata: Some(true),
                    partition_values: Some(add.partition_values.share()),
                    size: Some(add.size),
                }));
            }
        }
        Ok((actions, removed))
    }

    /// Checks the commit's lease epochs for every partition it writes; returns the epochs to record.
    async fn check_epochs(
        &self,
        snapshot: &Snapshot,
        touched: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, u64>> {
        let store = self.table.store();
        let now = now_ms();
        let mut held_leases: BTreeMap<&str, &Lease> = BTreeMap::new();
        for lease in &self.leases {
            if touched.contains(&lease.partition) {
                held_leases.insert(&lease.partition, lease);
            }
        }
        let epochs = held_leases
            .iter()
            .map(|(partition, lease)| (partition.to_string(), lease.epoch))
            .collect();
        for partition in touched {
            let held = held_leases.get(partition.as_str()).copied();
            let latest = latest_lease(store, partition).await?;
            let Some(&Lease {
                epoch,
                holder: ref our_holder,
                ..
            }) = held
            else {
                // No lease presented: allowed only while nobody holds a live lease on it.
                if let Some(l) = latest.filter(|l| l.is_live(now)) {
                    return Err(Error::LeaseHeld {
                        partition: display_partition(partition).to_string(),
                        holder: l.holder,
                        epoch: l.epoch,
                        expires: fmt_millis(l.expires_at_ms),
                    });
                }
                continue;
            };
            let stale = |reason: String| Error::StaleEpoch {
                partition: display_partition(partition).to_string(),
                epoch,
                reason,
            };
            if let Some(committed) = snapshot.committed_epoch(partition)
                && committed > epoch
            {
                return Err(stale(format!(
                    "a commit at epoch {committed} already wrote it"
                )));
            }
            match latest {
                Some(l) if l.epoch > epoch => {
                    return Err(stale(format!(
                        "the lease was taken over by {} at epoch {}{}",
                        l.holder,
                        l.epoch,
                        if l.released { " (released)" } else { "" }
                    )));
                }
                Some(l) if l.epoch == epoch && !l.is_live(now) => {
                    return Err(stale(format!(
                        "the lease expired at {}",
                        fmt_millis(l.expires_at_ms)
                    )));
                }
                // Only on a store whose create-only PUTs race (see docs/s3.md) can two writers
                // both believe they created one epoch; the lease file names the one that did.
                Some(l) if l.epoch == epoch && l.holder != *our_holder => {
                    return Err(stale(format!(
                        "epoch {epoch} is held by {}, not {our_holder}",
                        l.holder
                    )));
                }
                Some(l) if l.epoch == epoch => {}
                _ => return Err(stale("no such lease was ever granted".into())),
            }
        }
        Ok(epochs)
    }
}

/// The `add` action of a data file: written once, straight from the file's own strings.
fn into_add(file: AddFile, now: i64) -> Add {
    let stats = file.stats.or_else(|| {
        let n = file.num_records?;
        let mut stats = String::with_capacity(32);
        stats.push_str("{\"numRecords\":");
        stats.push_str(itoa::Buffer::new().format(n));
        stats.push('}');
        Some(stats)
    });
    Add {
        path: file.path,
        partition_values: file.partition_values.into(),
        size: file.size,
        modification_time: file.modification_time.unwrap_or(now),
        data_change: true,
        stats,
        tags: None,
    }
}

/// Commits with at least this many adds serialise them on a blocking thread.
const BACKGROUND_ADDS: usize = 512;

/// A commit's adds, in the table form the cached snapshot takes them in, and their log lines
/// (`add` lines after the commit's other actions).
enum PreparedAdds {
    Pending(tokio::task::JoinHandle<(ByPath<Add>, Bytes)>, usize),
    Ready(ByPath<Add>, Bytes, usize),
}

impl PreparedAdds {
    /// Starts serialising `adds` and putting them in a table: in the background if there are
    /// many, so it overlaps the attempt's reads of the log and the leases.
    fn start(adds: Vec<Add>) -> Self {
        let len = adds.len();
        let prepare = move || {
            let bytes = add_lines(&adds);
            (ByPath::from_values(adds), bytes)
        };
        if len < BACKGROUND_ADDS {
            let (adds, bytes) = prepare();
            return Self::Ready(adds, bytes, len);
        }
        Self::Pending(tokio::task::spawn_blocking(prepare), len)
    }

    /// How many adds the commit has.
    fn len(&self) -> usize {
        match self {
            Self::Pending(_, len) | Self::Ready(_, _, len) => *len,
        }
    }

    /// The adds and their lines, waiting for the preparation if it is still running.
    async fn ready(&mut self) -> Result<(&ByPath<Add>, &Bytes)> {
        if let Self::Pending(task, len) = self {
            let len = *len;
            let (adds, bytes) = match task.await {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "serialising the commit's add actions was cancelled: {e}"
                    )));
                }
            };
            *self = Self::Ready(adds, bytes, len);
        }
        match self {
            Self::Ready(adds, bytes, _) => Ok((adds, bytes)),
            Self::Pending(..) => unreachable!("set to Ready above"),
        }
    }

    async fn into_adds(mut self) -> Result<ByPath<Add>> {
        self.ready().await?;
        match self {
            Self::Ready(adds, _, _) => Ok(adds),
            Self::Pending(..) => unreachable!("ready() leaves it Ready"),
        }
    }
}

/// The `add` lines of a commit, written straight into one buffer.
fn add_lines(adds: &[Add]) -> Bytes {
    // Sized from the first add; the buffer grows if later ones are longer.
    let per_add = adds.first().map_or(0, actions::add_size_hint);
    let mut out = Vec::with_capacity(per_add * adds.len() * 9 / 8);
    for add in adds {
        actions::write_add(&mut out, add);
        out.push(b'\n');
    }
    Bytes::from(out)
}

fn validate_path(path: &str) -> Result<()> {
    if path.is_empty() || path.starts_with('/') || path.contains("://") {
        return Err(Error::Invalid(format!(
            "data file path {path:?} must be relative to the table root"
        )));
    }
    if path.starts_with("_delta_log/") || path.starts_with("_weir/") {
        return Err(Error::Invalid(format!(
            "data file path {path:?} lies in a reserved directory"
        )));
    }
    Ok(())
}

/// Checks that a data file's partition values name exactly the partition columns.
fn validate_partition_values(
    path: &str,
    values: &PartitionValues,
    columns: &[String],
) -> Result<()> {
    let what = format!("data file {path}");
    for key in values.keys() {
        if !columns.contains(key) {
            return Err(Error::Invalid(format!(
                "{what} has partition value for `{key}`, which is not a partition column (columns: {})",
                if columns.is_empty() {
                    "none".to_string()
                } else {
                    columns.join(", ")
                }
            )));
        }
    }
    for column in columns {
        if !values.contains_key(column) {
            return Err(Error::Invalid(format!(
                "{what} lacks a value for partition column `{column}`"
            )));
        }
    }
    Ok(())
}

fn commit_txn_id(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        Action::CommitInfo(info) => info.weir_txn_id.as_deref(),
        _ => None,
    })
}

async fn is_own_commit(table: &Table, version: i64, txn_id: &str) -> Result<bool> {
    Ok(snapshot::read_version(table.store(), version)
        .await?
        .is_some_and(|actions| commit_txn_id(&actions) == Some(txn_id)))
}

/// Tombstones older than this are dropped from checkpoints (Delta's default, 7 days).
const TOMBSTONE_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn engine_info() -> String {
    format!("weir-manifest/{}", env!("CARGO_PKG_VERSION"))
}

impl<'a> IntoFuture for CommitBuilder<'a> {
    type Output = Result<CommitOutcome>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<CommitOutcome>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
