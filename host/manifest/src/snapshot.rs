//! Snapshots: the table state at one log version, built by replaying the Delta log.
//!
//! Load = read `_delta_log/_last_checkpoint`, read that Parquet checkpoint (and, meanwhile, the
//! JSON versions after it), then replay those versions. Versions are contiguous (each commit is
//! a create-only PUT of the next number), so later versions are found by reading forward until
//! one is missing: the cost depends on the number of commits since the last checkpoint, not on
//! the length of the log.
//!
//! The checkpoint's tombstones (`remove` rows) are not decoded on load: only checkpoint writers
//! and [`Snapshot::tombstones`] need them, so they stay in the checkpoint's Parquet until then
//! (decoded once, shared by the snapshot's clones). A tombstone there is superseded by a later
//! `add` or `remove` of its path; since a path is never both a live file and a tombstone, that
//! is: it is hidden if the path is a live file or has a newer tombstone.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use futures::StreamExt;
use hashbrown::hash_table::{Entry, HashTable};
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

/// Something stored under its file path.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for Add {
    fn key(&self) -> &str {
        &self.path
    }
}

impl Keyed for Remove {
    fn key(&self) -> &str {
        &self.path
    }
}

/// Actions by path. A hash table keyed by the action's own `path` (no second copy of every
/// path as a map key) with a fast hasher: building the state of a 10,000-file table is mostly
/// inserts into these.
#[derive(Clone)]
pub(crate) struct ByPath<T> {
    table: HashTable<T>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl<T> Default for ByPath<T> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            hasher: Default::default(),
        }
    }
}

impl<T: Keyed> ByPath<T> {
    /// Inserts `value`, replacing (and returning) any entry with the same path.
    pub fn insert(&mut self, value: T) -> Option<T> {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(value.key());
        match self.table.entry(
            hash,
            |v| v.key() == value.key(),
            |v| hasher.hash_one(v.key()),
        ) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(entry.get_mut(), value)),
            Entry::Vacant(entry) => {
                entry.insert(value);
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        let entry = self.table.find_entry(hash, |v| v.key() == key).ok()?;
        Some(entry.remove().0)
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        if self.is_empty() {
            return None;
        }
        self.table
            .find(self.hasher.hash_one(key), |v| v.key() == key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.table.iter()
    }

    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        let hasher = &self.hasher;
        self.table.reserve(additional, |v| hasher.hash_one(v.key()));
    }

    pub fn retain(&mut self, keep: impl FnMut(&mut T) -> bool) {
        self.table.retain(keep);
    }

    /// The entries, by value.
    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.table.into_iter()
    }

    /// A table of `values` (a later one replaces an earlier one with the same path).
    #[cfg(test)]
    pub fn from_values(values: Vec<T>) -> Self {
        let mut out = Self::default();
        out.reserve(values.len());
        for value in values {
            out.insert(value);
        }
        out
    }
}

impl<T: Keyed + fmt::Debug> fmt::Debug for ByPath<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.table.iter()).finish()
    }
}

/// Removed files still remembered: the checkpoint's (still in its Parquet, see the module docs)
/// and those of later versions.
#[derive(Clone, Default)]
pub(crate) struct Tombstones {
    /// The tombstones of the checkpoint the state was loaded from, if it has any. One of them
    /// counts only if its path is neither a live file nor in `recent`.
    pub checkpoint: Option<Arc<checkpoint::LazyRemoves>>,
    /// Tombstones of later versions (and of a checkpoint decoded eagerly).
    pub recent: ByPath<Remove>,
}

impl fmt::Debug for Tombstones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tombstones")
            .field("checkpoint", &self.checkpoint.as_ref().map(|c| c.version()))
            .field("recent", &self.recent)
            .finish()
    }
}

impl Tombstones {
    /// The checkpoint's tombstones, decoded (once) if there are any.
    fn checkpoint(&self, url: &str) -> Result<Option<&ByPath<Remove>>> {
        let Some(lazy) = &self.checkpoint else {
            return Ok(None);
        };
        lazy.removes()
            .map(Some)
            .map_err(|reason| Error::CorruptLog {
                version: lazy.version(),
                url: format!("{url}/{}", checkpoint_key(lazy.version())),
                reason,
            })
    }
}

/// Accumulates actions during replay. Later actions win.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogReplay {
    pub protocol: Option<Protocol>,
    pub metadata: Option<Metadata>,
    pub files: ByPath<Add>,
    pub tombstones: Tombstones,
    pub txns: HashMap<String, Txn>,
}

impl LogReplay {
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Protocol(p) => self.protocol = Some(p),
            Action::MetaData(m) => self.metadata = Some(m),
            Action::Add(add) => {
                self.tombstones.recent.remove(&add.path);
                self.files.insert(add);
            }
            Action::Remove(remove) => {
                self.files.remove(&remove.path);
                self.tombstones.recent.insert(remove);
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
    files: ByPath<Add>,
    pub(crate) tombstones: Tombstones,
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
        self.files.iter()
    }
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
    /// Whether `path` is a live data file.
    pub fn contains_file(&self, path: &str) -> bool {
        self.files.contains(path)
    }

    /// The live file at `path`, if any.
    pub fn file(&self, path: &str) -> Option<&Add> {
        self.files.get(path)
    }
    /// Removed files still remembered (tombstones), for checkpoints and vacuum (in no
    /// particular order). The first call decodes those of the checkpoint the snapshot was
    /// loaded from, which fails if they are corrupt.
    pub fn tombstones(&self) -> Result<impl Iterator<Item = &Remove>> {
        let recent = &self.tombstones.recent;
        let from_checkpoint = self
            .tombstones
            .checkpoint(&self.url)?
            .into_iter()
            .flat_map(ByPath::iter)
            .filter(move |r| !self.files.contains(&r.path) && !recent.contains(&r.path));
        Ok(from_checkpoint.chain(recent.iter()))
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
        for add in self.files.iter() {
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
        self.apply_commit(version, actions, ByPath::default())
    }

    /// Applies the next version in place: its actions, then its adds (a commit's bulk, kept
    /// apart so a committer can hand them over already in a table, built off the commit's
    /// critical path). The smaller of the two tables is merged into the larger, so a commit
    /// larger than the table (a first load) costs the table's size here, not the commit's.
    pub(crate) fn apply_commit(
        &mut self,
        version: i64,
        actions: Vec<Action>,
        adds: ByPath<Add>,
    ) -> Result<()> {
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
                    self.tombstones.recent.remove(&add.path);
                    self.files.insert(add);
                }
                Action::Remove(remove) => {
                    self.files.remove(&remove.path);
                    self.tombstones.recent.insert(remove);
                }
                Action::Txn(txn) => {
                    self.txns.insert(txn.app_id.clone(), txn);
                }
                Action::CommitInfo(_) => {}
            }
        }
        // (The checkpoint's tombstones of these paths are hidden by the files themselves.)
        if !self.tombstones.recent.is_empty() {
            for add in adds.iter() {
                self.tombstones.recent.remove(&add.path);
            }
        }
        if adds.len() > self.files.len() {
            // The commit's adds win over files already at their paths.
            let existing = std::mem::replace(&mut self.files, adds);
            for add in existing.into_values() {
                if !self.files.contains(&add.path) {
                    self.files.insert(add);
                }
            }
        } else {
            self.files.reserve(adds.len());
            for add in adds.into_values() {
                self.files.insert(add);
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

    /// Drops tombstones deleted before `cutoff_ms` (used when writing checkpoints). Decodes
    /// the checkpoint's tombstones, so fails if they are corrupt.
    pub(crate) fn expire_tombstones(&mut self, cutoff_ms: i64) -> Result<()> {
        let keep = |r: &Remove| r.deletion_timestamp.unwrap_or(i64::MAX) >= cutoff_ms;
        if let Some(checkpoint) = self.tombstones.checkpoint(&self.url)? {
            let recent = &self.tombstones.recent;
            let kept: Vec<Remove> = checkpoint
                .iter()
                .filter(|r| keep(r) && !self.files.contains(&r.path) && !recent.contains(&r.path))
                .cloned()
                .collect();
            self.tombstones.recent.reserve(kept.len());
            for remove in kept {
                self.tombstones.recent.insert(remove);
            }
            self.tombstones.checkpoint = None;
        }
        self.tombstones.recent.retain(|r| keep(r));
        Ok(())
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
pub(crate) const READ_AHEAD: usize = 8;

/// How many versions to fetch at once first when reading forward from a checkpoint: enough for
/// all the versions up to the next checkpoint at the default interval and the missing one after
/// them, so they all come in one round trip, started while the checkpoint is fetched (and not a
/// second round once it is decoded).
const READ_AHEAD_AFTER_CHECKPOINT: usize = DEFAULT_CHECKPOINT_INTERVAL as usize;

/// Reads versions `from..` until the first missing one, calling `apply` in order; the first
/// `first_batch` at once, then [`READ_AHEAD`] at a time.
pub(crate) async fn read_forward(
    store: &Store,
    from: i64,
    first_batch: usize,
    mut apply: impl FnMut(i64, Vec<Action>) -> Result<()>,
) -> Result<Option<i64>> {
    let mut next = from;
    let mut last = None;
    let mut size = first_batch.max(1);
    loop {
        let batch: Vec<_> = futures::stream::iter(next..next + size as i64)
            .map(|v| async move { (v, read_version(store, v).await) })
            .buffered(size)
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
        next += size as i64;
        size = READ_AHEAD;
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
    let (mut replay, start, later) = start_point(store).await?;
    let mut version = start - 1;
    let mut apply = |v, actions: Vec<Action>| {
        for action in actions {
            replay.apply(action);
        }
        version = v;
        Ok(())
    };
    match later {
        Some(later) => {
            for (v, actions) in later {
                apply(v, actions)?;
            }
        }
        None => {
            read_forward(store, start, READ_AHEAD, apply).await?;
        }
    }
    if version < 0 {
        return Err(Error::NotATable { url });
    }
    replay.into_snapshot(version, &url)
}

/// Log versions read ahead, in order, up to the last one.
type Versions = Vec<(i64, Vec<Action>)>;

/// The state to replay from, the first version after it, and (if already read) the versions
/// after it: the checkpoint `_last_checkpoint` names (read straight away, no separate
/// existence check, while the versions after it are read), else the newest listed
/// checkpoint, else the empty state before version 0.
async fn start_point(store: &Store) -> Result<(LogReplay, i64, Option<Versions>)> {
    match store.get(LAST_CHECKPOINT).await {
        Ok(bytes) => match serde_json::from_slice::<LastCheckpoint>(&bytes) {
            Ok(last) => {
                let mut later = Vec::new();
                let (checkpoint, read) = futures::join!(
                    checkpoint::read(store, last.version),
                    read_forward(
                        store,
                        last.version + 1,
                        READ_AHEAD_AFTER_CHECKPOINT,
                        |v, actions| {
                            later.push((v, actions));
                            Ok(())
                        }
                    )
                );
                match checkpoint {
                    Ok(replay) => {
                        read?;
                        return Ok((replay, last.version + 1, Some(later)));
                    }
                    Err(Error::Store(weir_store::Error::NotFound { .. })) => {
                        tracing::warn!(url = %store.url_of(LAST_CHECKPOINT), version = last.version, "_last_checkpoint names a missing checkpoint; listing the log");
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => {
                tracing::warn!(url = %store.url_of(LAST_CHECKPOINT), error = %e, "unusable _last_checkpoint; listing the log");
            }
        },
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
    Ok(match newest {
        Some(version) => (checkpoint::read(store, version).await?, version + 1, None),
        None => (LogReplay::default(), 0, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(path: &str, size: i64) -> Add {
        Add {
            path: path.into(),
            partition_values: Default::default(),
            size,
            modification_time: 0,
            data_change: true,
            stats: None,
            tags: None,
        }
    }

    fn snapshot_with(files: &[(&str, i64)]) -> Snapshot {
        let mut replay = LogReplay::default();
        replay.apply(Action::Protocol(Protocol::default()));
        replay.apply(Action::MetaData(Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Default::default(),
            schema_string: TableSchema::parse_spec("id:long")
                .unwrap()
                .to_schema_string(),
            partition_columns: vec![],
            configuration: Default::default(),
            created_time: None,
        }));
        for (path, size) in files {
            replay.apply(Action::Add(add(path, *size)));
        }
        replay.apply(Action::Remove(Remove {
            path: "gone".into(),
            deletion_timestamp: Some(1),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
        }));
        replay.into_snapshot(0, "memory://t").unwrap()
    }

    fn sizes(snapshot: &Snapshot) -> Vec<(String, i64)> {
        let mut out: Vec<_> = snapshot.files().map(|a| (a.path.clone(), a.size)).collect();
        out.sort();
        out
    }

    /// Whichever table is larger, the commit's adds replace files at their paths, its removes
    /// apply first, and re-added paths leave the tombstones.
    #[test]
    fn a_commit_merges_into_the_snapshot_either_way_round() {
        let remove_a = || {
            vec![Action::Remove(Remove {
                path: "a".into(),
                deletion_timestamp: Some(2),
                data_change: true,
                extended_file_metadata: None,
                partition_values: None,
                size: None,
            })]
        };
        // More adds than files: the adds' table becomes the snapshot's.
        let mut small = snapshot_with(&[("a", 1), ("b", 1)]);
        let adds = ByPath::from_values(vec![add("b", 2), add("c", 2), add("gone", 2)]);
        small.apply_commit(1, remove_a(), adds).unwrap();
        assert_eq!(
            sizes(&small),
            [("b".into(), 2), ("c".into(), 2), ("gone".into(), 2)]
        );
        // Fewer adds than files: they are inserted into the snapshot's table.
        let mut large = snapshot_with(&[("a", 1), ("b", 1), ("d", 1), ("e", 1)]);
        let adds = ByPath::from_values(vec![add("b", 2), add("gone", 2)]);
        large.apply_commit(1, remove_a(), adds).unwrap();
        assert_eq!(
            sizes(&large),
            [
                ("b".into(), 2),
                ("d".into(), 1),
                ("e".into(), 1),
                ("gone".into(), 2)
            ]
        );
        for snapshot in [&small, &large] {
            assert_eq!(snapshot.version(), 1);
            let tombstones: Vec<_> = snapshot
                .tombstones()
                .unwrap()
                .map(|r| r.path.as_str())
                .collect();
            assert_eq!(tombstones, ["a"]);
        }
    }
}
