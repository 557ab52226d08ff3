//! [`Table`]: a handle on one Delta table in a [`Store`], with a cached snapshot that commits keep
//! up to date; and the builders to create and open tables.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use weir_store::Store;

use crate::actions::{self, Action, CommitInfo, Format, Metadata, PartitionValues, Protocol};
use crate::commit::{CommitBuilder, CommitOutcome, engine_info, now_ms};
use crate::error::{Error, Result};
use crate::lease::LeaseBuilder;
use crate::ownership::{OWNERSHIP_KEY, Ownership};
use crate::partition::partition_path;
use crate::schema::{DataType, TableSchema};
use crate::snapshot::{self, CHECKPOINT_INTERVAL_KEY, LOG_DIR, Snapshot, commit_key};
use crate::txn::TransactionBuilder;
use crate::vacuum::VacuumBuilder;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A Delta table. Cheap to clone; clones share the cached snapshot.
#[derive(Clone, Debug)]
pub struct Table {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    snapshot: Mutex<Arc<Snapshot>>,
}

impl Table {
    /// Starts creating a table at `store`'s root: `Table::create(store).schema(..).partition_by(..).await`.
    pub fn create(store: Store) -> CreateBuilder {
        CreateBuilder {
            store,
            schema: None,
            partition_by: Vec::new(),
            ownership: Ownership::default(),
            name: None,
            configuration: BTreeMap::new(),
        }
    }

    /// Opens the table at `store`'s root (loads the latest snapshot).
    pub fn open(store: Store) -> OpenBuilder {
        OpenBuilder { store }
    }

    fn from_snapshot(store: Store, snapshot: Snapshot) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                snapshot: Mutex::new(Arc::new(snapshot)),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The table URL (without a trailing slash).
    pub fn url(&self) -> String {
        self.inner
            .store
            .url()
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    /// The most recently loaded snapshot (no I/O). Use [`Table::refresh`] for the latest.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Snapshot>> {
        // A panic while holding this lock cannot leave the Arc half-written; keep going.
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Reads log versions committed since the cached snapshot and returns the latest snapshot.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>> {
        let from = self.snapshot().version() + 1;
        let mut new = Vec::new();
        snapshot::read_forward(self.store(), from, snapshot::READ_AHEAD, |v, actions| {
            new.push((v, actions));
            Ok(())
        })
        .await?;
        if new.is_empty() {
            return Ok(self.snapshot());
        }
        let mut guard = self.lock();
        let snap = Arc::make_mut(&mut guard);
        for (version, actions) in new {
            if version == snap.version() + 1 {
                snap.apply_version(version, actions)?;
            }
        }
        Ok(guard.clone())
    }

    /// Applies a version this process just committed (its actions, then its adds) to the cache,
    /// if the cache is right before it.
    pub(crate) fn apply_own_commit(
        &self,
        version: i64,
        actions: Vec<Action>,
        adds: snapshot::ByPath<crate::actions::Add>,
    ) -> Result<Arc<Snapshot>> {
        let mut guard = self.lock();
        if guard.version() + 1 == version {
            Arc::make_mut(&mut guard).apply_commit(version, actions, adds)?;
        }
        Ok(guard.clone())
    }

    /// Starts a commit (see [`CommitBuilder`]).
    pub fn commit(&self) -> CommitBuilder<'_> {
        CommitBuilder::new(self)
    }

    /// Starts taking a lease on a partition path such as `dt=2026-01-01` (see [`LeaseBuilder`]).
    pub fn lease(&self, partition: impl Into<String>) -> LeaseBuilder<'_> {
        LeaseBuilder::new(self, partition.into())
    }

    /// Starts a transaction: registers an in-flight transaction id (used to name data files) that
    /// vacuum will not touch while it is live.
    pub fn begin_transaction(&self) -> TransactionBuilder<'_> {
        TransactionBuilder::new(self)
    }

    /// Starts a vacuum (see [`VacuumBuilder`]).
    pub fn vacuum(&self) -> VacuumBuilder<'_> {
        VacuumBuilder::new(self)
    }

    /// The partition path of `values` for this table (`dt=2026-01-01`).
    pub fn partition_path(&self, values: &PartitionValues) -> String {
        partition_path(self.snapshot().partition_columns(), values)
    }

    /// Replaces the ownership policy with a commit (audited in the log), retrying on races.
    /// `actor` is recorded in commitInfo.
    pub async fn set_ownership(
        &self,
        ownership: Ownership,
        actor: Option<&str>,
    ) -> Result<CommitOutcome> {
        let snapshot = self.refresh().await?;
        let mut metadata = snapshot.metadata().clone();
        metadata.configuration.insert(
            OWNERSHIP_KEY.to_string(),
            ownership.to_configuration_value(),
        );
        let mut builder = self
            .commit()
            .metadata(metadata)
            .operation("SET OWNERSHIP")
            .read_version(snapshot.version());
        if let Some(actor) = actor {
            builder = builder.owner(actor);
        }
        builder.await
    }

    /// The commits in the log, oldest first (reads every JSON version; for inspection tools).
    pub async fn history(&self) -> Result<Vec<CommitRecord>> {
        let (_, objects) = self.store().list_dir(LOG_DIR).await?;
        let mut versions: Vec<i64> = objects
            .iter()
            .filter_map(|(key, _)| key.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
            .collect();
        versions.sort_unstable();
        let snapshot = self.snapshot();
        let mut out = Vec::with_capacity(versions.len());
        for version in versions {
            let Some(actions) = snapshot::read_version(self.store(), version).await? else {
                continue;
            };
            out.push(CommitRecord::from_actions(
                version,
                &actions,
                snapshot.partition_columns(),
            ));
        }
        Ok(out)
    }
}

/// A summary of one log version, for `weir table log`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommitRecord {
    pub version: i64,
    pub timestamp: Option<i64>,
    pub operation: Option<String>,
    pub txn_id: Option<String>,
    pub job: Option<String>,
    pub run: Option<i64>,
    pub owner: Option<String>,
    pub read_version: Option<i64>,
    pub files_added: u64,
    pub files_removed: u64,
    pub bytes_added: u64,
    /// Partitions the commit added or removed files in.
    pub partitions: Vec<String>,
    pub metadata_changed: bool,
}

impl CommitRecord {
    fn from_actions(version: i64, actions: &[Action], partition_columns: &[String]) -> Self {
        let mut record = CommitRecord {
            version,
            ..Default::default()
        };
        let mut partitions = std::collections::BTreeSet::new();
        for action in actions {
            match action {
                Action::CommitInfo(info) => {
                    record.timestamp = info.timestamp;
                    record.operation = info.operation.clone();
                    record.txn_id = info.weir_txn_id.clone();
                    record.job = info.weir_job.clone();
                    record.run = info.weir_run;
                    record.owner = info.weir_owner.clone();
                    record.read_version = info.read_version;
                }
                Action::Add(add) => {
                    record.files_added += 1;
                    record.bytes_added += add.size.max(0) as u64;
                    partitions.insert(partition_path(partition_columns, &add.partition_values));
                }
                Action::Remove(remove) => {
                    record.files_removed += 1;
                    if let Some(values) = &remove.partition_values {
                        partitions.insert(partition_path(partition_columns, values));
                    }
                }
                Action::MetaData(_) => record.metadata_changed = true,
                _ => {}
            }
        }
        record.partitions = partitions.into_iter().collect();
        record
    }
}

/// Builder for [`Table::create`]. Await it to write log version 0.
#[must_use = "a builder does nothing until awaited"]
pub struct CreateBuilder {
    store: Store,
    schema: Option<TableSchema>,
    partition_by: Vec<String>,
    ownership: Ownership,
    name: Option<String>,
    configuration: BTreeMap<String, String>,
}

impl CreateBuilder {
    pub fn schema(mut self, schema: TableSchema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Partition columns, in path order.
    pub fn partition_by<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.partition_by = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Makes `owner` the owner of partitions matching `pattern` (`*` for the whole table).
    pub fn owner(mut self, pattern: &str, owner: &str) -> Self {
        // Invalid patterns are reported when awaited.
        if self.ownership.set(pattern, owner).is_err() {
            self.ownership.rules.push(crate::ownership::OwnershipRule {
                pattern: pattern.to_string(),
                owner: owner.to_string(),
            });
        }
        self
    }

    pub fn ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Commits between checkpoints (default 10).
    pub fn checkpoint_interval(mut self, commits: u32) -> Self {
        self.configuration
            .insert(CHECKPOINT_INTERVAL_KEY.into(), commits.max(1).to_string());
        self
    }

    /// Sets a table property (`metaData.configuration`).
    pub fn configuration(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configuration.insert(key.into(), value.into());
        self
    }

    async fn run(self) -> Result<Table> {
        let url = self.store.url().as_str().trim_end_matches('/').to_string();
        let schema = self
            .schema
            .ok_or_else(|| Error::Invalid(format!("creating {url}: no schema given")))?;
        if schema.fields.is_empty() {
            return Err(Error::Invalid(format!(
                "creating {url}: the schema has no columns"
            )));
        }
        for column in &self.partition_by {
            let field = schema.field(column).ok_or_else(|| {
                Error::Invalid(format!("partition column `{column}` is not in the schema"))
            })?;
            if matches!(
                field.data_type,
                DataType::Struct(_) | DataType::Array(..) | DataType::Map(..)
            ) {
                return Err(Error::Invalid(format!(
                    "partition column `{column}` has type {}, which cannot be a partition value",
                    field.data_type
                )));
            }
        }
        let mut checked = Ownership::default();
        for rule in &self.ownership.rules {
            checked.set(&rule.pattern, &rule.owner)?;
        }
        let mut configuration = self.configuration;
        if !checked.rules.is_empty() {
            configuration.insert(OWNERSHIP_KEY.into(), checked.to_configuration_value());
        }
        let now = now_ms();
        let metadata = Metadata {
            id: uuid::Uuid::new_v4().to_string(),
            name: self.name,
            description: None,
            format: Format::default(),
            schema_string: schema.to_schema_string(),
            partition_columns: self.partition_by,
            configuration,
            created_time: Some(now),
        };
        let info = CommitInfo {
            timestamp: Some(now),
            operation: Some("CREATE TABLE".into()),
            engine_info: Some(engine_info()),
            weir_txn_id: Some(uuid::Uuid::new_v4().simple().to_string()),
            ..Default::default()
        };
        let actions = vec![
            Action::CommitInfo(info),
            Action::Protocol(Protocol::default()),
            Action::MetaData(metadata),
        ];
        let bytes = Bytes::from(actions::to_ndjson(&actions));
        ensure_conditional_writes(&self.store).await?;
        match self.store.put_create(&commit_key(0), bytes).await {
            Ok(_) => {}
            Err(weir_store::Error::AlreadyExists { .. }) => return Err(Error::TableExists { url }),
            Err(e) => return Err(e.into()),
        }
        let mut replay = snapshot::LogReplay::default();
        for action in actions {
            replay.apply(action);
        }
        let snapshot = replay.into_snapshot(0, &url)?;
        tracing::info!(%url, "created table");
        Ok(Table::from_snapshot(self.store, snapshot))
    }
}

impl IntoFuture for CreateBuilder {
    type Output = Result<Table>;
    type IntoFuture = BoxFuture<'static, Result<Table>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Builder for [`Table::open`].
#[must_use = "a builder does nothing until awaited"]
pub struct OpenBuilder {
    store: Store,
}

impl IntoFuture for OpenBuilder {
    type Output = Result<Table>;
    type IntoFuture = BoxFuture<'static, Result<Table>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let snapshot = snapshot::load(&self.store).await?;
            Ok(Table::from_snapshot(self.store, snapshot))
        })
    }
}

/// Refuses to commit (or take a lease) on a store that does not honour create-only writes:
/// runs `weir_store`'s conditional-write probe, once per process per store.
pub(crate) async fn ensure_conditional_writes(store: &Store) -> Result<()> {
    match store.ensure_conditional_writes().await {
        Ok(()) => Ok(()),
        Err(weir_store::Error::ConditionalWritesNotHonoured { url, detail }) => {
            Err(Error::ConditionalWritesNotHonoured { url, detail })
        }
        Err(e) => Err(e.into()),
    }
}

/// Sleeps for an exponential backoff with jitter (attempt 1 = ~2ms, capped near 500ms).
pub(crate) async fn backoff(attempt: u32) {
    let base = 2u64.saturating_mul(1 << attempt.min(8)).min(500);
    let jitter = rand::random_range(0..=base);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}
