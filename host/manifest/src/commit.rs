//! Commits: one create-only write of the next log version, with optimistic concurrency.
//!
//! Each attempt: refresh the snapshot; scan the versions committed since the commit's read
//! version for conflicts (and for this commit's own transaction id, in case an earlier ambiguous
//! attempt landed); skip if the job's run is already committed (Delta `txn`); validate schema,
//! ownership and lease epochs against the latest state; then write version N+1 create-only:
//! a PUT, or for adds staged while the job ran ([`CommitBuilder::staged`]) a create-only copy
//! of the staging object, which holds exactly the bytes that PUT would (see `stage.rs`).
//! Losing the race (AlreadyExists) means rebase and retry with backoff. Any other write error is
//! ambiguous: the version is read back and the transaction id decides whether the commit landed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::IntoFuture;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use weir_store::object_store::PutPayload;

use crate::actions::{
    self, Action, Add, CommitInfo, Metadata, PartitionValues, Remove, SharedPartitionValues, Txn,
};
use crate::error::{Error, Result, fmt_millis};
use crate::lease::{Lease, latest_lease};
use crate::partition::{display_partition, partition_path};
use crate::schema::TableSchema;
use crate::snapshot::{self, ByPath, EPOCH_APP_PREFIX, Snapshot, commit_key};
use crate::stage::StagedAdds;
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
    /// True if the log entry was published from a staging object ([`CommitBuilder::staged`])
    /// by a create-only copy, rather than PUT.
    pub linked: bool,
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
    staged: Option<StagedAdds>,
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
            staged: None,
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

    /// Commits the files staged while the job ran (see [`StagedAdds`]), as the commit of their
    /// transaction (its id and start version, like [`CommitBuilder::transaction`]). The log
    /// entry is then published from the staging object without rewriting the adds when the
    /// store allows; otherwise it is PUT. Not combinable with [`CommitBuilder::add_files`].
    pub fn staged(mut self, staged: StagedAdds) -> Self {
        self.txn = Some((staged.txn_id().to_string(), staged.read_version()));
        self.read_version = staged.read_version();
        self.staged = Some(staged);
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
        let mut staged = self.staged.take();
        let result = self.attempts(staged.as_mut()).await;
        // The staging object is no longer needed: the log entry is a link or copy of it (or
        // was PUT), or the commit failed.
        if let Some(mut staged) = staged
            && let Err(e) = staged.discard_object().await
        {
            tracing::warn!(key = staged.staging_key(), error = %e, "cannot remove the staging object; vacuum will");
        }
        result
    }

    async fn attempts(&mut self, mut staged: Option<&mut StagedAdds>) -> Result<CommitOutcome> {
        let now = now_ms();
        // The files are checked and their add lines written once, straight from the files, in
        // the background while the attempt reads the log; then their adds are built (moving
        // each file's strings) into the path table the cached snapshot takes, while the PUT is
        // in flight. The add lines do not depend on the table state; only the few other lines
        // (commitInfo, txn, removes) are rebuilt per attempt. Staged adds were prepared chunk
        // by chunk as they were staged.
        let mut prepared = match staged.as_deref_mut() {
            Some(staged) => {
                if !self.files.is_empty() {
                    return Err(Error::Invalid(
                        "a commit takes staged adds or add_files, not both".into(),
                    ));
                }
                if self.txn.as_ref().map(|(id, _)| id.as_str()) != Some(staged.txn_id()) {
                    return Err(Error::Invalid(format!(
                        "the staged adds belong to transaction {}, not this commit's",
                        staged.txn_id()
                    )));
                }
                PreparedAdds::ready(staged.take_adds())
            }
            None => PreparedAdds::start(std::mem::take(&mut self.files), now),
        };
        let table = self.table;
        let store = table.store();
        let url = table.url();
        let txn_id = self
            .txn
            .as_ref()
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        ensure_conditional_writes(store).await?;
        let mut partitions = None;
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
            let partitions = match &mut partitions {
                Some(partitions) => &*partitions,
                None => partitions.insert(self.distinct_partitions(prepared.partitions().await?)),
            };
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
                self.check_conflict(&snapshot, version, &actions, &url, partitions)?;
            }
            checked_up_to = snapshot.version();
            if let Some((job, run)) = &self.job
                && snapshot.app_version(job).is_some_and(|v| v >= *run)
            {
                tracing::info!(%url, job, run, "job run already committed; nothing to do");
                return Ok(self.outcome(snapshot.version(), txn_id, attempt, true, (0, 0)));
            }
            let overwriting = match self.mode {
                Mode::OverwritePartitions => Some(prepared.table().await?),
                Mode::Append => None,
            };
            let (actions, removed) = self
                .build_actions(&snapshot, &txn_id, now, overwriting, partitions)
                .await?;
            let version = snapshot.version() + 1;
            drop(snapshot);
            let header = Bytes::from(actions::to_ndjson(&actions));
            let lines = prepared.lines().await?;
            failpoint::hit("before-log-put");
            // A staged commit's log entry is its adds, then the other actions: published from
            // the staging object if it can be, else PUT byte for byte the same.
            let published = match staged.as_deref_mut() {
                Some(staged) => staged.publish(&header, version).await,
                None => None,
            };
            let linked = published.is_some();
            let written = match published {
                Some(result) => result,
                None => {
                    let bytes = if staged.is_some() {
                        PutPayload::from_iter(lines.iter().cloned().chain(std::iter::once(header)))
                    } else {
                        PutPayload::from_iter(std::iter::once(header).chain(lines.iter().cloned()))
                    };
                    store
                        .put_create(&commit_key(version), bytes)
                        .await
                        .map(|_| ())
                }
            };
            let landed = match written {
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
            let adds = prepared.into_table().await?;
            let snapshot = table.apply_own_commit(version, actions, adds)?;
            self.after_commit(&snapshot, version).await;
            let mut outcome = self.outcome(version, txn_id, attempt, false, (added, removed));
            outcome.linked = linked;
            return Ok(outcome);
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
            linked: false,
        }
    }

    /// Best-effort work after a commit landed: checkpoint, and release the transaction record.
    async fn after_commit(&self, snapshot: &Arc<Snapshot>, version: i64) {
        let store = self.table.store();
        if snapshot.version() == version && version % snapshot.checkpoint_interval() == 0 {
            let mut state = Snapshot::clone(snapshot);
            let written = match state.expire_tombstones(now_ms() - TOMBSTONE_RETENTION_MS) {
                Ok(()) => checkpoint::write(store, &state).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(version, error = %e, "checkpoint failed; the log is still complete");
            }
        }
        if let Some((id, _)) = &self.txn
            && let Err(e) = store.delete(&crate::txn::txn_key(id)).await
        {
            tracing::warn!(txn = id, error = %e, "cannot remove the in-flight transaction record");
        }
    }

    /// The distinct partition values this commit writes: those of its files (each with a file
    /// that has them, for messages) plus explicit overwrites. Few, however many files there are.
    fn distinct_partitions(
        &self,
        files: &[(PartitionValues, String)],
    ) -> Vec<(PartitionValues, Option<String>)> {
        let mut out: Vec<_> = files
            .iter()
            .map(|(values, path)| (values.clone(), Some(path.clone())))
            .collect();
        for values in &self.overwrite {
            if !out.iter().any(|(seen, _)| seen == values) {
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
        // The latest leases are looked up concurrently (a few at a time), checked in order.
        let lookups: Vec<_> = touched
            .iter()
            .map(|partition| latest_lease(store, partition.as_str()))
            .collect();
        let mut latest_leases = futures::stream::iter(lookups).buffered(LEASE_LOOKUPS);
        for partition in touched {
            let held = held_leases.get(partition.as_str()).copied();
            let latest = latest_leases
                .next()
                .await
                .expect("one lookup per touched partition")?;
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
fn into_add(file: AddFile, partition_values: SharedPartitionValues, now: i64) -> Add {
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
        partition_values,
        size: file.size,
        modification_time: file.modification_time.unwrap_or(now),
        data_change: true,
        stats,
        tags: None,
    }
}

/// Lease lookups in flight at once when checking a commit's epochs.
const LEASE_LOOKUPS: usize = 16;

/// Commits (and staged chunks) with at least this many adds prepare them on a blocking thread.
pub(crate) const BACKGROUND_ADDS: usize = 512;

/// The distinct partition values of a commit's files, each with a file that has them.
type Partitions = Vec<(PartitionValues, String)>;

/// Checks a commit's files and finds their distinct partition values. Returns the partitions
/// (each with a file that has them), shared, and for each file the index of its partition;
/// the error is an [`Error::Invalid`] message.
fn check_files(
    files: &[AddFile],
) -> Result<(Partitions, Vec<SharedPartitionValues>, Vec<u32>), String> {
    let mut index: hashbrown::HashMap<&PartitionValues, u32> = hashbrown::HashMap::new();
    let mut partitions = Vec::new();
    let mut shared = Vec::new();
    let mut of_file = Vec::with_capacity(files.len());
    for file in files {
        validate_path(&file.path)?;
        let next = partitions.len() as u32;
        let i = *index.entry(&file.partition_values).or_insert_with(|| {
            partitions.push((file.partition_values.clone(), file.path.clone()));
            shared.push(SharedPartitionValues::from(file.partition_values.clone()));
            next
        });
        of_file.push(i);
    }
    Ok((partitions, shared, of_file))
}

/// The `add` lines of many files, in two buffers written at once on two threads (the PUT
/// sends the buffers one after the other; writing them measured 1-3 ms faster for 10,000 files
/// on a loaded 2-core machine than one buffer on one thread).
fn add_lines_split(files: &[AddFile], now: i64) -> Vec<Bytes> {
    let (first, second) = files.split_at(files.len() / 2);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| add_lines(second, now));
        let first = add_lines(first, now);
        let second = second
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        vec![first, second]
    })
}

/// The `add` lines of a commit's files, written straight from them into one buffer.
fn add_lines(files: &[AddFile], now: i64) -> Bytes {
    let mut out = Vec::with_capacity(
        files.first().map_or(0, |f| line_size_hint(f, now)) * files.len() * 9 / 8,
    );
    for file in files {
        actions::write_add_line(&mut out, &add_line(file, now));
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// Roughly the bytes of a file's `add` line (sized from the first file; the buffer grows if
/// later ones are longer).
fn line_size_hint(file: &AddFile, now: i64) -> usize {
    let mut one = Vec::with_capacity(256);
    actions::write_add_line(&mut one, &add_line(file, now));
    one.len() + 1
}

/// The fields of a file's `add` line: those of [`into_add`]'s [`Add`].
fn add_line(file: &AddFile, now: i64) -> actions::AddLine<'_> {
    actions::AddLine {
        path: &file.path,
        partition_values: &file.partition_values,
        size: file.size,
        modification_time: file.modification_time.unwrap_or(now),
        data_change: true,
        stats: match (&file.stats, file.num_records) {
            (Some(stats), _) => actions::Stats::Json(stats),
            (None, Some(n)) => actions::Stats::NumRecords(n),
            (None, None) => actions::Stats::None,
        },
        tags: None,
    }
}

/// The commit's adds by path (moving each file's strings), with the shared partition values;
/// and the files' own partition values, left for the caller to drop (after it has handed the
/// table on: freeing a map per file is not something a commit should wait for).
fn add_table(
    files: Vec<AddFile>,
    shared: &[SharedPartitionValues],
    of_file: &[u32],
    now: i64,
) -> (ByPath<Add>, Vec<PartitionValues>) {
    let mut table = ByPath::default();
    table.reserve(files.len());
    let mut replaced = Vec::with_capacity(files.len());
    for (mut file, &i) in files.into_iter().zip(of_file) {
        replaced.push(std::mem::take(&mut file.partition_values));
        table.insert(into_add(file, shared[i as usize].share(), now));
    }
    (table, replaced)
}

/// A commit's adds, accumulated chunk by chunk as they are staged: their distinct partitions
/// (each with a file that has them), their `add` lines (one buffer per chunk, in order) and
/// the table form the cached snapshot takes them in.
#[derive(Debug, Default)]
pub(crate) struct Accumulated {
    pub len: usize,
    partitions: Partitions,
    index: hashbrown::HashMap<PartitionValues, u32>,
    shared: Vec<SharedPartitionValues>,
    lines: Vec<Bytes>,
    table: ByPath<Add>,
}

impl Accumulated {
    /// Adds a chunk of files; returns its `add` lines. An invalid file (the error is an
    /// [`Error::Invalid`] message) leaves the accumulation unchanged.
    pub fn push(&mut self, files: Vec<AddFile>, now: i64) -> Result<Bytes, String> {
        for file in &files {
            validate_path(&file.path)?;
        }
        let lines = add_lines(&files, now);
        self.table.reserve(files.len());
        self.len += files.len();
        for file in files {
            let i = match self.index.get(&file.partition_values) {
                Some(&i) => i,
                None => {
                    let i = self.partitions.len() as u32;
                    self.partitions
                        .push((file.partition_values.clone(), file.path.clone()));
                    self.shared
                        .push(SharedPartitionValues::from(file.partition_values.clone()));
                    self.index.insert(file.partition_values.clone(), i);
                    i
                }
            };
            self.table
                .insert(into_add(file, self.shared[i as usize].share(), now));
        }
        self.lines.push(lines.clone());
        debug_assert_eq!(self.partitions.len(), self.shared.len());
        Ok(lines)
    }
}

/// A step of the preparation that may still be running.
enum Stage<T> {
    Pending(tokio::sync::oneshot::Receiver<T>),
    Ready(T),
}

/// A commit's adds, prepared once for all its attempts: checked (with their distinct
/// partitions), their log lines (`add` lines after the commit's other actions), and the table
/// form the cached snapshot takes them in. Large commits prepare on a blocking thread in that
/// order (the lines on two threads), so an attempt waits for each only when it needs it: the
/// partitions after reading the log, the lines when it is about to PUT, the table once the PUT
/// is done (it is built while the PUT is in flight).
struct PreparedAdds {
    len: usize,
    /// The preparation thread, if any (to pass on its panic).
    task: Option<tokio::task::JoinHandle<()>>,
    partitions: Stage<Result<Partitions, String>>,
    lines: Stage<Vec<Bytes>>,
    table: Stage<ByPath<Add>>,
}

impl PreparedAdds {
    /// Starts preparing `files` (in the background if there are many).
    fn start(files: Vec<AddFile>, now: i64) -> Self {
        let len = files.len();
        if len < BACKGROUND_ADDS {
            let (partitions, lines, table) = match check_files(&files) {
                Ok((partitions, shared, of_file)) => {
                    let lines = vec![add_lines(&files, now)];
                    let (table, _) = add_table(files, &shared, &of_file, now);
                    (Ok(partitions), lines, table)
                }
                Err(e) => (Err(e), Vec::new(), ByPath::default()),
            };
            return Self {
                len,
                task: None,
                partitions: Stage::Ready(partitions),
                lines: Stage::Ready(lines),
                table: Stage::Ready(table),
            };
        }
        let (partitions_tx, partitions_rx) = tokio::sync::oneshot::channel();
        let (lines_tx, lines_rx) = tokio::sync::oneshot::channel();
        let (table_tx, table_rx) = tokio::sync::oneshot::channel();
        // A commit that ends early (an error, a run already committed) drops the receivers and
        // the thread's results with them.
        let task = tokio::task::spawn_blocking(move || match check_files(&files) {
            Ok((partitions, shared, of_file)) => {
                let _ = partitions_tx.send(Ok(partitions));
                let _ = lines_tx.send(add_lines_split(&files, now));
                let (table, replaced) = add_table(files, &shared, &of_file, now);
                let _ = table_tx.send(table);
                drop(replaced);
            }
            Err(e) => {
                let _ = partitions_tx.send(Err(e));
            }
        });
        Self {
            len,
            task: Some(task),
            partitions: Stage::Pending(partitions_rx),
            lines: Stage::Pending(lines_rx),
            table: Stage::Pending(table_rx),
        }
    }

    /// Adds prepared already, chunk by chunk as they were staged.
    fn ready(adds: Accumulated) -> Self {
        Self {
            len: adds.len,
            task: None,
            partitions: Stage::Ready(Ok(adds.partitions)),
            lines: Stage::Ready(adds.lines),
            table: Stage::Ready(adds.table),
        }
    }

    /// How many adds the commit has.
    fn len(&self) -> usize {
        self.len
    }

    /// The distinct partition values of the files (each with a file that has them). Fails if
    /// a file is invalid.
    async fn partitions(&mut self) -> Result<&Partitions> {
        if let Stage::Pending(rx) = &mut self.partitions {
            let partitions = match rx.await {
                Ok(partitions) => partitions,
                Err(_) => Err(self.failed().await),
            };
            self.partitions = Stage::Ready(partitions);
        }
        match &self.partitions {
            Stage::Ready(Ok(partitions)) => Ok(partitions),
            Stage::Ready(Err(message)) => Err(Error::Invalid(message.clone())),
            Stage::Pending(_) => unreachable!("set to Ready above"),
        }
    }

    /// The files' `add` lines.
    async fn lines(&mut self) -> Result<&[Bytes]> {
        self.partitions().await?;
        if let Stage::Pending(rx) = &mut self.lines {
            let lines = match rx.await {
                Ok(lines) => lines,
                Err(_) => return Err(Error::Invalid(self.failed().await)),
            };
            self.lines = Stage::Ready(lines);
        }
        match &self.lines {
            Stage::Ready(lines) => Ok(lines),
            Stage::Pending(_) => unreachable!("set to Ready above"),
        }
    }

    /// The adds by path.
    async fn table(&mut self) -> Result<&ByPath<Add>> {
        self.lines().await?;
        if let Stage::Pending(rx) = &mut self.table {
            let table = match rx.await {
                Ok(table) => table,
                Err(_) => return Err(Error::Invalid(self.failed().await)),
            };
            self.table = Stage::Ready(table);
        }
        match &self.table {
            Stage::Ready(table) => Ok(table),
            Stage::Pending(_) => unreachable!("set to Ready above"),
        }
    }

    /// Why the preparation thread ended without a result; passes on its panic.
    async fn failed(&mut self) -> String {
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            return format!("preparing the commit's add actions was cancelled: {e}");
        }
        "preparing the commit's add actions ended without a result".into()
    }

    async fn into_table(mut self) -> Result<ByPath<Add>> {
        self.table().await?;
        match self.table {
            Stage::Ready(table) => Ok(table),
            Stage::Pending(_) => unreachable!("table() leaves it Ready"),
        }
    }
}

/// Checks a data file path; the error is the message of an [`Error::Invalid`].
fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.contains("://") {
        return Err(format!(
            "data file path {path:?} must be relative to the table root"
        ));
    }
    if path.starts_with("_delta_log/") || path.starts_with("_weir/") {
        return Err(format!(
            "data file path {path:?} lies in a reserved directory"
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's `add` line, written straight from the file, is the line of its [`Add`].
    #[test]
    fn add_lines_from_files_match_their_adds() {
        let files = vec![
            AddFile {
                path: "dt=a b%2F/x é.parquet".into(),
                size: 7,
                partition_values: [("dt".to_string(), Some("a b/\"q".to_string()))].into(),
                num_records: Some(-3),
                ..Default::default()
            },
            AddFile {
                path: "dt=n/y.parquet".into(),
                size: 0,
                partition_values: [("dt".to_string(), None)].into(),
                num_records: Some(5),
                stats: Some("{\"numRecords\":5,\"nullCount\":{\"s\":\"\\n\"}}".into()),
                modification_time: Some(11),
            },
            AddFile {
                path: "z.parquet".into(),
                ..Default::default()
            },
        ];
        let now = 1_700_000_000_000;
        let (partitions, shared, of_file) = check_files(&files).unwrap();
        assert_eq!(partitions.len(), 3);
        let lines = add_lines(&files, now);
        let split = add_lines_split(&files, now).concat();
        assert_eq!(split, lines.to_vec());
        let (table, _) = add_table(files.clone(), &shared, &of_file, now);
        let mut want = Vec::new();
        for file in files {
            let values = SharedPartitionValues::from(file.partition_values.clone());
            let add = into_add(file, values, now);
            assert_eq!(table.get(&add.path), Some(&add));
            actions::write_add(&mut want, &add);
            want.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(lines.to_vec()).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
