//! Snapshots: the table state at one log version, built by replaying the Delta log.
//!
//! Load = read `_delta_log/_last_checkpoint`, read that Parquet checkpoint, then replay the JSON
//! versions after it. Versions are contiguous (each commit is a create-only PUT of the next
//! number), so later versions are found by reading forward until one is missing: the cost depends
//! on the number of commits since the last checkpoint, not on the length of the log.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use weir_store::Store;

use crate::actions::{self, Action, Add, Metadata, Protocol, Remove, Txn};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::ownership::Ownership;
use crate::partition::partition_path;
use crate::schema::TableSchema;

pub const LOG_DIR: &str = "_delta_log";
pub const LAST_CHECKPOINT: &str = "_delta_log/_last_checkpoint";
/// Table property: commits between checkpoints.
pub const CHECKPOINT_INTERVAL_KEY: &str = "delta.checkpointInterval";
pub const DEFAULT_CHECKPOINT_INTERVAL: i64 = 10;
/// `txn` app ids with this prefix record the highest lease epoch committed per partition.
pub const EPOCH_APP_PREFIX: &str = "weir.epoch/";

/// The key of log version `version`.
pub fn commit_key(version: i64) -> String {
    format!("{LOG_DIR}/{version:020}.json")
}

/// The key of the checkpoint at `version`.
pub fn checkpoint_key(version: i64) -> String {
    format!("{LOG_DIR}/{version:020}.checkpoint.parquet")
}

/// Accumulates actions during replay. Later actions win.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogReplay {
    pub protocol: Option<Protocol>,
    pub metadata: Option<Metadata>,
    pub files: HashMap<String, Add>,
    pub tombstones: HashMap<String, Remove>,
    pub txns: HashMap<String, Txn>,
}

impl LogReplay {
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Protocol(p) => self.protocol = Some(p),
            Action::MetaData(m) => self.metadata = Some(m),
            Action::Add(add) => {
                self.tombstones.remove(&add.path);
                self.files.insert(add.path.clone(), add);
            }
            Action::Remove(remove) => {
                self.files.remove(&remove.path);
                self.tombstones.insert(remove.path.clone(), remove);
            }
            Action::Txn(txn) => {
                self.txns.insert(txn.app_id.clone(), txn);
            }
            Action::CommitInfo(_) => {}
        }
    }

    pub fn into_snapshot(self, version: i64, url: &str) -> Result<Snapshot> {
        let corrupt = |reason: String| Error::CorruptLog {
            version,
            url: url.to_string(),
            reason,
        };
        let protocol = self
            .protocol
            .ok_or_else(|| corrupt("no protocol action".into()))?;
        let metadata = self
            .metadata
            .ok_or_else(|| corrupt("no metaData action".into()))?;
        let (schema, ownership) = parse_metadata(&metadata).map_err(corrupt)?;
        Ok(Snapshot {
            url: url.to_string(),
            version,
            protocol,
            metadata,
            schema,
            ownership,
            files: self.files,
            tombstones: self.tombstones,
            txns: self.txns,
        })
    }
}

fn parse_metadata(metadata: &Metadata) -> Result<(TableSchema, Ownership), String> {
    let schema = TableSchema::from_schema_string(&metadata.schema_string)?;
    let ownership = Ownership::from_configuration(&metadata.configuration)?;
    Ok((schema, ownership))
}

/// The state of a table at one version. Cheap to share (`Arc<Snapshot>`); immutable once built.
#[derive(Clone, Debug)]
pub struct Snapshot {
    url: String,
    version: i64,
    protocol: Protocol,
    metadata: Metadata,
    schema: TableSchema,
    ownership: Ownership,
    files: HashMap<String, Add>,
    tombstones: HashMap<String, Remove>,
    txns: HashMap<String, Txn>,
}

/// Files and bytes of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartitionSummary {
    pub files: u64,
    pub bytes: u64,
}

impl Snapshot {
    /// The table URL.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The log version this snapshot reflects.
    pub fn version(&self) -> i64 {
        self.version
    }
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }
    pub fn partition_columns(&self) -> &[String] {
        &self.metadata.partition_columns
    }
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }
    /// The live data files (in no particular order).
    pub fn files(&self) -> impl Iterator<Item = &Add> {
        self.files.values()
    }
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
    /// Whether `path` is a live data file.
    pub fn contains_file(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }
    /// Removed files still remembered (tombstones), for checkpoints and vacuum.
    pub fn tombstones(&self) -> impl Iterator<Item = &Remove> {
        self.tombstones.values()
    }
    /// The last committed version of application `app_id` (Delta `txn`), e.g. a job's last run.
    pub fn app_version(&self, app_id: &str) -> Option<i64> {
        self.txns.get(app_id).map(|t| t.version)
    }
    pub fn txns(&self) -> impl Iterator<Item = &Txn> {
        self.txns.values()
    }
    /// The highest lease epoch any commit carried for `partition`.
    pub fn committed_epoch(&self, partition: &str) -> Option<u64> {
        self.app_version(&format!("{EPOCH_APP_PREFIX}{partition}"))
            .map(|v| v as u64)
    }
    /// The partition path of a file's partition values.
    pub fn partition_of(&self, add: &Add) -> String {
        partition_path(self.partition_columns(), &add.partition_values)
    }
    /// Live files grouped by partition path.
    pub fn partitions(&self) -> BTreeMap<String, PartitionSummary> {
        let mut out: BTreeMap<String, PartitionSummary> = BTreeMap::new();
        for add in self.files.values() {
            let summary = out.entry(self.partition_of(add)).or_default();
            summary.files += 1;
            summary.bytes += add.size.max(0) as u64;
        }
        out
    }
    /// Commits between checkpoints (`delta.checkpointInterval`, default 10).
    pub fn checkpoint_interval(&self) -> i64 {
        self.metadata
            .configuration
            .get(CHECKPOINT_INTERVAL_KEY)
            .and_then(|v| v.parse().ok())
            .filter(|&n: &i64| n > 0)
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL)
    }

    /// Applies the actions of the next version in place.
    pub(crate) fn apply_version(&mut self, version: i64, actions: Vec<Action>) -> Result<()> {
        debug_assert_eq!(version, self.version + 1, "versions are applied in order");
        let mut metadata_changed = false;
        for action in actions {
            match action {
                Action::Protocol(p) => self.protocol = p,
                Action::MetaData(m) => {
                    self.metadata = m;
                    metadata_changed = true;
                }
                Action::Add(add) => {
                    self.tombstones.remove(&add.path);
                    self.files.insert(add.path.clone(), add);
                }
                Action::Remove(remove) => {
                    self.files.remove(&remove.path);
                    self.tombstones.insert(remove.path.clone(), remove);
                }
                Action::Txn(txn) => {
                    self.txns.insert(txn.app_id.clone(), txn);
                }
                Action::CommitInfo(_) => {}
            }
        }
        if metadata_changed {
            let (schema, ownership) =
                parse_metadata(&self.metadata).map_err(|reason| Error::CorruptLog {
                    version,
                    url: self.url.clone(),
                    reason,
                })?;
            self.schema = schema;
            self.ownership = ownership;
        }
        self.version = version;
        Ok(())
    }

    /// Drops tombstones deleted before `cutoff_ms` (used when writing checkpoints).
    pub(crate) fn expire_tombstones(&mut self, cutoff_ms: i64) {
        self.tombstones
            .retain(|_, r| r.deletion_timestamp.unwrap_or(i64::MAX) >= cutoff_ms);
    }
}

/// Reads log version `version`; `Ok(None)` if it does not exist.
pub(crate) async fn read_version(store: &Store, version: i64) -> Result<Option<Vec<Action>>> {
    let key = commit_key(version);
    let bytes = match store.get(&key).await {
        Ok(bytes) => bytes,
        Err(weir_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    actions::parse_ndjson(&bytes)
        .map(Some)
        .map_err(|reason| Error::CorruptLog {
            version,
            url: store.url_of(&key),
            reason,
        })
}

/// How many versions to fetch at once when reading forward.
const READ_AHEAD: usize = 8;

/// Reads versions `from..` until the first missing one, calling `apply` in order.
pub(crate) async fn read_forward(
    store: &Store,
    from: i64,
    mut apply: impl FnMut(i64, Vec<Action>) -> Result<()>,
) -> Result<Option<i64>> {
    let mut next = from;
    let mut last = None;
    loop {
        let batch: Vec<_> = futures::stream::iter(next..next + READ_AHEAD as i64)
            .map(|v| async move { (v, read_version(store, v).await) })
            .buffered(READ_AHEAD)
            .collect()
            .await;
        for (version, result) in batch {
            match result? {
                Some(actions) => {
                    apply(version, actions)?;
                    last = Some(version);
                }
                None => return Ok(last),
            }
        }
        next += READ_AHEAD as i64;
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
pub(crate) struct LastCheckpoint {
    pub version: i64,
    pub size: i64,
}

/// Loads the latest snapshot of the table in `store`.
pub(crate) async fn load(store: &Store) -> Result<Snapshot> {
    let url = store.url().as_str().trim_end_matches('/').to_string();
    let (mut replay, start) = match start_point(store).await? {
        Some(checkpoint_version) => (
            checkpoint::read(store, checkpoint_version).await?,
            checkpoint_version + 1,
        ),
        None => (LogReplay::default(), 0),
    };
    let mut version = start - 1;
    let last = read_forward(store, start, |v, actions| {
        for action in actions {
            replay.apply(action);
        }
        version = v;
        Ok(())
    })
    .await?;
    if last.is_none() && start == 0 {
        return Err(Error::NotATable { url });
    }
    replay.into_snapshot(version, &url)
}

/// The checkpoint version to start from: `_last_checkpoint`, else the newest listed checkpoint.
async fn start_point(store: &Store) -> Result<Option<i64>> {
    match store.get(LAST_CHECKPOINT).await {
        Ok(bytes) => {
            if let Ok(last) = serde_json::from_slice::<LastCheckpoint>(&bytes)
                && store.head(&checkpoint_key(last.version)).await.is_ok()
            {
                return Ok(Some(last.version));
            }
            tracing::warn!(url = %store.url_of(LAST_CHECKPOINT), "unusable _last_checkpoint; listing the log");
        }
        Err(weir_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let (_, objects) = store.list_dir(LOG_DIR).await?;
    let newest = objects
        .iter()
        .filter_map(|(key, _)| {
            let name = key.rsplit('/').next()?;
            name.strip_suffix(".checkpoint.parquet")?
                .parse::<i64>()
                .ok()
        })
        .max();
    Ok(newest)
}
