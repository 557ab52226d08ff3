//! Delta checkpoints: the whole table state at one version as a single Parquet file
//! (`_delta_log/NNN.checkpoint.parquet`, one action per row in the columns `txn`, `add`, `remove`,
//! `metaData`, `protocol`), plus `_delta_log/_last_checkpoint` pointing at it.
//!
//! The Parquet schema follows the Delta protocol so other engines (Spark, delta-rs) read it.
//! Rows are built from the same serde actions as the JSON log (via arrow-json), so the two forms
//! cannot drift apart.
//!
//! Reading decodes every action but `remove`: the tombstones are left in the Parquet (a
//! [`LazyRemoves`] holding the file's bytes) until something needs them.

use std::sync::{Arc, OnceLock};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::properties::WriterProperties;
use weir_store::Store;

use crate::actions::{self, Action, Remove, ValuesInterner};
use crate::error::{Error, Result};
use crate::snapshot::{
    ByPath, LAST_CHECKPOINT, LastCheckpoint, LogReplay, Snapshot, checkpoint_key,
};

fn string_map() -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn strukt(fields: Vec<Field>) -> DataType {
    DataType::Struct(Fields::from(fields))
}

/// The checkpoint schema from the Delta protocol (the columns Weir writes).
pub fn checkpoint_schema() -> SchemaRef {
    let txn = strukt(vec![
        Field::new("appId", DataType::Utf8, true),
        Field::new("version", DataType::Int64, true),
        Field::new("lastUpdated", DataType::Int64, true),
    ]);
    let add = strukt(vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("partitionValues", string_map(), true),
        Field::new("size", DataType::Int64, true),
        Field::new("modificationTime", DataType::Int64, true),
        Field::new("dataChange", DataType::Boolean, true),
        Field::new("stats", DataType::Utf8, true),
        Field::new("tags", string_map(), true),
    ]);
    let remove = strukt(vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("deletionTimestamp", DataType::Int64, true),
        Field::new("dataChange", DataType::Boolean, true),
        Field::new("extendedFileMetadata", DataType::Boolean, true),
        Field::new("partitionValues", string_map(), true),
        Field::new("size", DataType::Int64, true),
    ]);
    let format = strukt(vec![
        Field::new("provider", DataType::Utf8, true),
        Field::new("options", string_map(), true),
    ]);
    let metadata = strukt(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("format", format, true),
        Field::new("schemaString", DataType::Utf8, true),
        Field::new(
            "partitionColumns",
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
        Field::new("configuration", string_map(), true),
        Field::new("createdTime", DataType::Int64, true),
    ]);
    let protocol = strukt(vec![
        Field::new("minReaderVersion", DataType::Int32, true),
        Field::new("minWriterVersion", DataType::Int32, true),
    ]);
    Arc::new(Schema::new(vec![
        Field::new("txn", txn, true),
        Field::new("add", add, true),
        Field::new("remove", remove, true),
        Field::new("metaData", metadata, true),
        Field::new("protocol", protocol, true),
    ]))
}

/// The rows of a checkpoint for `snapshot`, in a stable order.
fn checkpoint_actions(snapshot: &Snapshot) -> Result<Vec<Action>> {
    let mut out = Vec::with_capacity(snapshot.file_count() + 2);
    out.push(Action::Protocol(snapshot.protocol().clone()));
    out.push(Action::MetaData(snapshot.metadata().clone()));
    let mut txns: Vec<_> = snapshot.txns().cloned().collect();
    txns.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    out.extend(txns.into_iter().map(Action::Txn));
    let mut adds: Vec<_> = snapshot.files().cloned().collect();
    adds.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(adds.into_iter().map(Action::Add));
    let mut removes: Vec<_> = snapshot.tombstones()?.cloned().collect();
    removes.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(removes.into_iter().map(Action::Remove));
    Ok(out)
}

/// Encodes the checkpoint Parquet file of `snapshot`; returns it and its number of rows.
pub(crate) fn encode(snapshot: &Snapshot) -> Result<(Bytes, usize)> {
    let failed = |reason: String| Error::CorruptLog {
        version: snapshot.version(),
        url: snapshot.url().to_string(),
        reason: format!("cannot encode checkpoint: {reason}"),
    };
    let schema = checkpoint_schema();
    let actions = checkpoint_actions(snapshot)?;
    // Several row groups, so a reader can decode them in parallel.
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
        .map_err(|e| failed(e.to_string()))?;
    for chunk in actions.chunks(8192) {
        let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(chunk.len())
            .build_decoder()
            .map_err(|e| failed(e.to_string()))?;
        decoder
            .serialize(chunk)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(batch) = decoder.flush().map_err(|e| failed(e.to_string()))? {
            writer.write(&batch).map_err(|e| failed(e.to_string()))?;
        }
    }
    let bytes = writer.into_inner().map_err(|e| failed(e.to_string()))?;
    Ok((Bytes::from(bytes), actions.len()))
}

/// Writes the checkpoint of `snapshot` and points `_last_checkpoint` at it.
pub(crate) async fn write(store: &Store, snapshot: &Snapshot) -> Result<()> {
    let (bytes, rows) = encode(snapshot)?;
    let rows = rows as i64;
    match store
        .put_create(&checkpoint_key(snapshot.version()), bytes)
        .await
    {
        // Another writer checkpointed the same version: the content is the same state.
        Ok(_) | Err(weir_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Never move `_last_checkpoint` backwards past a newer checkpoint another writer recorded.
    if let Ok(existing) = store.get(LAST_CHECKPOINT).await
        && let Ok(last) = serde_json::from_slice::<LastCheckpoint>(&existing)
        && last.version >= snapshot.version()
    {
        return Ok(());
    }
    let last = LastCheckpoint {
        version: snapshot.version(),
        size: rows,
    };
    let json = serde_json::to_vec(&last).expect("serialises");
    store.put(LAST_CHECKPOINT, Bytes::from(json)).await?;
    tracing::debug!(version = snapshot.version(), rows, "wrote checkpoint");
    Ok(())
}

/// Reads the checkpoint at `version` into a replay state.
pub(crate) async fn read(store: &Store, version: i64) -> Result<LogReplay> {
    let key = checkpoint_key(version);
    let bytes = store.get(&key).await?;
    decode(bytes, version).map_err(|reason| Error::CorruptLog {
        version,
        url: store.url_of(&key),
        reason,
    })
}

/// Rows per checkpoint row group.
const ROW_GROUP_ROWS: usize = 4096;

/// The tombstones (`remove` rows) of a checkpoint, left in its Parquet until first needed.
pub(crate) struct LazyRemoves {
    version: i64,
    bytes: Bytes,
    metadata: ArrowReaderMetadata,
    /// The row groups that hold `remove` rows.
    groups: Vec<usize>,
    decoded: OnceLock<Result<ByPath<Remove>, String>>,
}

impl LazyRemoves {
    /// The checkpoint's version.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The tombstones, decoded on the first call.
    pub fn removes(&self) -> Result<&ByPath<Remove>, String> {
        self.decoded
            .get_or_init(|| self.decode())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn decode(&self) -> Result<ByPath<Remove>, String> {
        let root = remove_root(&self.metadata).ok_or("the checkpoint has no remove column")?;
        let mut replay = LogReplay::default();
        read_groups(
            &self.bytes,
            &self.metadata,
            self.groups.clone(),
            vec![root],
            &mut replay,
            &mut ValuesInterner::default(),
        )?;
        Ok(replay.tombstones.recent)
    }
}

/// The index of the checkpoint's top-level `remove` column, if it has one.
fn remove_root(metadata: &ArrowReaderMetadata) -> Option<usize> {
    let fields = metadata
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields();
    fields.iter().position(|field| field.name() == "remove")
}

/// Reads the top-level columns `roots` of the row groups `groups` into `replay`.
fn read_groups(
    bytes: &Bytes,
    metadata: &ArrowReaderMetadata,
    groups: Vec<usize>,
    roots: Vec<usize>,
    replay: &mut LogReplay,
    interner: &mut ValuesInterner,
) -> Result<(), String> {
    let mask = ProjectionMask::roots(metadata.metadata().file_metadata().schema_descr(), roots);
    let reader =
        ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
            .with_row_groups(groups)
            .with_projection(mask)
            .with_batch_size(ROW_GROUP_ROWS)
            .build()
            .map_err(|e| e.to_string())?;
    for batch in reader {
        apply_batch(&batch.map_err(|e| e.to_string())?, replay, interner)?;
    }
    Ok(())
}

/// Decodes a checkpoint (at `version`) into a replay state, its tombstones left undecoded.
pub(crate) fn decode(bytes: Bytes, version: i64) -> Result<LogReplay, String> {
    let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default())
        .map_err(|e| e.to_string())?;
    let rows = usize::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut replay = LogReplay::default();
    replay.files.reserve(rows);
    let mut interner = ValuesInterner::default();
    // Each row group is read with only the action columns that have a value in it (by the
    // column chunks' null counts): the few protocol/metaData/txn rows do not make every row
    // group decode those (wide, nested) columns, nor an append-only table its empty `remove`.
    // `remove` itself is left for [`LazyRemoves`].
    // Decoded on this thread. With glibc's allocator, decoding anywhere else (half the row
    // groups on a scoped thread, or all of them on the blocking pool) measured 1.7x slower even
    // on an idle machine: the snapshot's strings are then freed across malloc arenas, which
    // trims and re-faults the decoding thread's heap.
    // Consecutive row groups that need the same columns share one reader.
    let remove_root = remove_root(&metadata);
    let mut plan: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let mut remove_groups = Vec::new();
    for (group, mut roots) in row_group_roots(&metadata) {
        if let Some(at) = roots.iter().position(|&root| Some(root) == remove_root) {
            roots.remove(at);
            remove_groups.push(group);
        }
        match plan.last_mut() {
            Some((groups, same)) if *same == roots => groups.push(group),
            _ => plan.push((vec![group], roots)),
        }
    }
    for (groups, roots) in plan {
        if roots.is_empty() {
            continue;
        }
        read_groups(&bytes, &metadata, groups, roots, &mut replay, &mut interner)?;
    }
    if !remove_groups.is_empty() {
        replay.tombstones.checkpoint = Some(Arc::new(LazyRemoves {
            version,
            bytes,
            metadata,
            groups: remove_groups,
            decoded: OnceLock::new(),
        }));
    }
    Ok(replay)
}

/// The action columns Weir reads from a checkpoint.
const ACTION_COLUMNS: [&str; 5] = ["txn", "add", "remove", "metaData", "protocol"];

/// For each row group, the indices of the top-level action columns that may hold a value in
/// it. A column is left out only if every one of its non-repeated leaves is null in every row
/// of the group (by the column chunk statistics); every action has a required field, so a
/// present action always has a non-null leaf. Without statistics a column is read.
fn row_group_roots(metadata: &ArrowReaderMetadata) -> Vec<(usize, Vec<usize>)> {
    let parquet = metadata.metadata();
    let schema = parquet.file_metadata().schema_descr();
    let roots: Vec<usize> = (0..schema.root_schema().get_fields().len())
        .filter(|&root| ACTION_COLUMNS.contains(&schema.root_schema().get_fields()[root].name()))
        .collect();
    (0..parquet.num_row_groups())
        .map(|group| {
            let rg = parquet.row_group(group);
            let mut present = vec![false; schema.root_schema().get_fields().len()];
            let mut seen = vec![false; present.len()];
            for (leaf, chunk) in rg.columns().iter().enumerate() {
                let root = schema.get_column_root_idx(leaf);
                let descr = schema.column(leaf);
                if descr.max_rep_level() > 0 {
                    continue;
                }
                seen[root] = true;
                let all_null = chunk
                    .statistics()
                    .and_then(|s| s.null_count_opt())
                    .is_some_and(|nulls| i64::try_from(nulls).ok() == Some(rg.num_rows()));
                if !all_null {
                    present[root] = true;
                }
            }
            let wanted = roots
                .iter()
                .copied()
                .filter(|&root| present[root] || !seen[root])
                .collect();
            (group, wanted)
        })
        .collect()
}

/// Applies the actions of checkpoint rows to `replay`. `add` and `remove` (the bulk of a
/// checkpoint) are decoded straight from Arrow into the replay state; anything else, or columns
/// with unexpected types written by another engine, goes through arrow-json.
fn apply_batch(
    batch: &RecordBatch,
    replay: &mut LogReplay,
    interner: &mut ValuesInterner,
) -> Result<(), String> {
    let schema = batch.schema();
    let mut rest = Vec::new();
    for name in ACTION_COLUMNS {
        let Ok(index) = schema.index_of(name) else {
            continue;
        };
        let column = batch.column(index);
        let fast = match name {
            "add" => fast::adds(column, interner, |add| {
                replay.tombstones.recent.remove(&add.path);
                replay.files.insert(add);
            }),
            // In a checkpoint a remove is only a tombstone; it never hides an add.
            "remove" => fast::removes(column, interner, |remove| {
                replay.tombstones.recent.insert(remove);
            }),
            _ => None,
        };
        match fast {
            Some(result) => result?,
            None => rest.push(index),
        }
    }
    if rest.is_empty() {
        return Ok(());
    }
    let batch = batch.project(&rest).map_err(|e| e.to_string())?;
    // Only the few rows that hold one of these actions (most rows are adds or removes).
    let rows: Vec<usize> = (0..batch.num_rows())
        .filter(|&row| batch.columns().iter().any(|c| c.is_valid(row)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut json = Vec::new();
    {
        let mut writer = arrow_json::ArrayWriter::new(&mut json);
        for row in rows {
            writer
                .write(&batch.slice(row, 1))
                .map_err(|e| e.to_string())?;
        }
        writer.finish().map_err(|e| e.to_string())?;
    }
    if json.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    for row in rows {
        match actions::parse_action(row)? {
            Some(Action::Remove(remove)) => {
                replay.tombstones.recent.insert(remove);
            }
            Some(action) => replay.apply(action),
            None => {}
        }
    }
    Ok(())
}

mod fast {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Array, ArrayRef, MapArray, StringArray};

    use crate::actions::{
        Add, PartitionValues, Remove, SharedPartitionValues, ValuesInterner, decode_path,
    };

    /// A `map<string, string>` column, its keys and values checked to be strings.
    struct StringMap<'a> {
        map: &'a MapArray,
        keys: &'a StringArray,
        values: &'a StringArray,
    }

    impl<'a> StringMap<'a> {
        fn new(column: &'a ArrayRef) -> Option<Self> {
            let map = column.as_map_opt()?;
            Some(Self {
                map,
                keys: map.keys().as_string_opt::<i32>()?,
                values: map.values().as_string_opt::<i32>()?,
            })
        }

        fn at(&self, row: usize) -> Option<PartitionValues> {
            if self.map.is_null(row) {
                return None;
            }
            Some(
                self.entries(row)
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                    .collect(),
            )
        }

        fn entries(
            &self,
            row: usize,
        ) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + Clone + use<'a> {
            let offsets = self.map.value_offsets();
            let (keys, values) = (self.keys, self.values);
            (offsets[row] as usize..offsets[row + 1] as usize)
                .map(move |i| (keys.value(i), (!values.is_null(i)).then(|| values.value(i))))
        }

        /// The partition values at `row`, shared with every other row that has the same.
        /// `last` is the previous call's row and result: rows are sorted by path, so runs of
        /// one partition are the common case, and comparing with the previous row is cheaper
        /// than hashing.
        fn shared_at(
            &self,
            row: usize,
            interner: &mut ValuesInterner,
            last: &mut Option<(usize, SharedPartitionValues)>,
        ) -> Option<SharedPartitionValues> {
            if self.map.is_null(row) {
                return None;
            }
            if let Some((previous, values)) = last
                && self.entries(*previous).eq(self.entries(row))
            {
                return Some(values.share());
            }
            let values = interner.intern(self.entries(row));
            *last = Some((row, values.share()));
            Some(values)
        }
    }

    fn string_at(column: Option<&StringArray>, row: usize) -> Option<String> {
        column.and_then(|c| (!c.is_null(row)).then(|| c.value(row).to_string()))
    }

    fn key_at(path: &StringArray, row: usize, what: &str) -> Result<String, String> {
        decode_path(path.value(row))
            .map(|p| p.into_owned())
            .map_err(|e| format!("{what} row {row}: {e}"))
    }

    /// Decodes the `add` column, handing each add to `sink`. `None` (and nothing handed over)
    /// if the column's shape is unexpected; an error for an add that lacks a required field.
    pub fn adds(
        column: &ArrayRef,
        interner: &mut ValuesInterner,
        mut sink: impl FnMut(Add),
    ) -> Option<Result<(), String>> {
        let s = column.as_struct_opt()?;
        let path = s.column_by_name("path")?.as_string_opt::<i32>()?;
        let pv = StringMap::new(s.column_by_name("partitionValues")?)?;
        let size = s.column_by_name("size")?.as_primitive_opt::<Int64Type>()?;
        let mtime = s
            .column_by_name("modificationTime")?
            .as_primitive_opt::<Int64Type>()?;
        let data_change = s.column_by_name("dataChange")?.as_boolean_opt()?;
        let stats = match s.column_by_name("stats") {
            Some(c) => Some(c.as_string_opt::<i32>()?),
            None => None,
        };
        let tags = match s.column_by_name("tags") {
            Some(c) => Some(StringMap::new(c)?),
            None => None,
        };
        let mut last_values = None;
        let mut run = || {
            for row in 0..s.len() {
                if s.is_null(row) {
                    continue;
                }
                if path.is_null(row)
                    || size.is_null(row)
                    || mtime.is_null(row)
                    || data_change.is_null(row)
                {
                    return Err(format!(
                        "add row {row} lacks one of path, size, modificationTime, dataChange"
                    ));
                }
                sink(Add {
                    path: key_at(path, row, "add")?,
                    partition_values: pv
                        .shared_at(row, interner, &mut last_values)
                        .unwrap_or_default(),
                    size: size.value(row),
                    modification_time: mtime.value(row),
                    data_change: data_change.value(row),
                    stats: string_at(stats, row),
                    tags: tags.as_ref().and_then(|t| t.at(row)),
                });
            }
            Ok(())
        };
        Some(run())
    }

    /// Decodes the `remove` column, handing each remove to `sink` (see [`adds`]).
    pub fn removes(
        column: &ArrayRef,
        interner: &mut ValuesInterner,
        mut sink: impl FnMut(Remove),
    ) -> Option<Result<(), String>> {
        let s = column.as_struct_opt()?;
        let path = s.column_by_name("path")?.as_string_opt::<i32>()?;
        let deleted = s
            .column_by_name("deletionTimestamp")?
            .as_primitive_opt::<Int64Type>()?;
        let data_change = s.column_by_name("dataChange")?.as_boolean_opt()?;
        let extended = s.column_by_name("extendedFileMetadata")?.as_boolean_opt()?;
        let pv = StringMap::new(s.column_by_name("partitionValues")?)?;
        let size = s.column_by_name("size")?.as_primitive_opt::<Int64Type>()?;
        let mut last_values = None;
        let mut run = || {
            for row in 0..s.len() {
                if s.is_null(row) {
                    continue;
                }
                if path.is_null(row) || data_change.is_null(row) {
                    return Err(format!("remove row {row} lacks path or dataChange"));
                }
                sink(Remove {
                    path: key_at(path, row, "remove")?,
                    deletion_timestamp: (!deleted.is_null(row)).then(|| deleted.value(row)),
                    data_change: data_change.value(row),
                    extended_file_metadata: (!extended.is_null(row)).then(|| extended.value(row)),
                    partition_values: pv.shared_at(row, interner, &mut last_values),
                    size: (!size.is_null(row)).then(|| size.value(row)),
                });
            }
            Ok(())
        };
        Some(run())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{Add, Remove};

    /// The replay state of a new table: its protocol and a metaData with this schema spec and
    /// these partition columns.
    fn new_table(schema: &str, partition_columns: &[&str]) -> LogReplay {
        let mut replay = LogReplay::default();
        replay.apply(Action::Protocol(Default::default()));
        replay.apply(Action::MetaData(crate::actions::Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Default::default(),
            schema_string: crate::schema::TableSchema::parse_spec(schema)
                .unwrap()
                .to_schema_string(),
            partition_columns: partition_columns.iter().map(|c| c.to_string()).collect(),
            configuration: Default::default(),
            created_time: None,
        }));
        replay
    }

    #[test]
    fn checkpoint_round_trips_through_the_fast_decoder() {
        let mut replay = new_table("id:long,dt:string", &["dt"]);
        for i in 0..3 {
            replay.apply(Action::Add(Add {
                path: format!("dt=d{i}/f.parquet"),
                partition_values: [(
                    "dt".into(),
                    if i == 0 { None } else { Some(format!("d{i}")) },
                )]
                .into(),
                size: i,
                modification_time: 5,
                data_change: true,
                stats: (i == 1).then(|| "{\"numRecords\":1}".to_string()),
                tags: None,
            }));
        }
        replay.apply(Action::Remove(Remove {
            path: "dt=d2/f.parquet".into(),
            deletion_timestamp: Some(9),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: Some(2),
        }));
        let snapshot = replay.into_snapshot(4, "memory://x").unwrap();
        let (bytes, _) = encode(&snapshot).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let mut out = 0;
            let interner = &mut ValuesInterner::default();
            fast::adds(batch.column_by_name("add").unwrap(), interner, |_| out += 1)
                .expect("the fast add decoder understands Weir's checkpoints")
                .unwrap();
            fast::removes(batch.column_by_name("remove").unwrap(), interner, |_| {
                out += 1
            })
            .expect("the fast remove decoder understands Weir's checkpoints")
            .unwrap();
            assert_eq!(out, 3);
        }
        let decoded = decode(bytes, 4)
            .unwrap()
            .into_snapshot(4, "memory://x")
            .unwrap();
        let mut files: Vec<_> = decoded.files().cloned().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut want: Vec<_> = snapshot.files().cloned().collect();
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(files, want);
        assert_eq!(
            decoded.tombstones().unwrap().cloned().collect::<Vec<_>>(),
            snapshot.tombstones().unwrap().cloned().collect::<Vec<_>>()
        );
        assert_eq!(decoded.metadata(), snapshot.metadata());
        assert_eq!(decoded.protocol(), snapshot.protocol());
    }

    /// Runs of one partition share its values; a neighbour that differs in any value (a null
    /// and an empty string included) gets its own.
    #[test]
    fn neighbouring_rows_share_partition_values_only_when_equal() {
        let mut replay = new_table("id:long,a:string,b:string", &["a", "b"]);
        let values = [
            ("1", Some("1")),
            ("1", Some("2")),
            ("1", Some("2")),
            ("2", None),
            ("2", Some("")),
            ("2", None),
        ];
        for (i, (a, b)) in values.iter().enumerate() {
            replay.apply(Action::Add(Add {
                path: format!("f{i}.parquet"),
                partition_values: [
                    ("a".to_string(), Some(a.to_string())),
                    ("b".to_string(), b.map(str::to_string)),
                ]
                .into(),
                size: 1,
                modification_time: 1,
                data_change: true,
                stats: None,
                tags: None,
            }));
        }
        let snapshot = replay.into_snapshot(1, "memory://x").unwrap();
        let (bytes, _) = encode(&snapshot).unwrap();
        let decoded = decode(bytes, 1)
            .unwrap()
            .into_snapshot(1, "memory://x")
            .unwrap();
        let file = |i: usize| decoded.file(&format!("f{i}.parquet")).unwrap();
        for i in 0..values.len() {
            assert_eq!(file(i), snapshot.file(&format!("f{i}.parquet")).unwrap());
        }
        let shared = |i: usize, j: usize| {
            std::ptr::eq(&*file(i).partition_values, &*file(j).partition_values)
        };
        assert!(shared(1, 2) && shared(3, 5));
        assert!(!shared(0, 1) && !shared(3, 4));
    }

    /// A checkpoint's tombstones are left undecoded on load; once decoded, those whose path a
    /// later version re-added or removed again give way to the later state.
    #[test]
    fn checkpoint_tombstones_are_decoded_lazily_and_give_way_to_later_versions() {
        let remove = |path: &str, at: i64| Remove {
            path: path.into(),
            deletion_timestamp: Some(at),
            data_change: true,
            extended_file_metadata: None,
            partition_values: None,
            size: None,
        };
        let add = |path: &str| Add {
            path: path.into(),
            partition_values: Default::default(),
            size: 1,
            modification_time: 5,
            data_change: true,
            stats: None,
            tags: None,
        };
        let mut replay = new_table("id:long", &[]);
        replay.apply(Action::Add(add("live")));
        for path in ["kept", "re-added", "removed-again"] {
            replay.apply(Action::Remove(remove(path, 1)));
        }
        let (bytes, rows) = encode(&replay.into_snapshot(3, "memory://x").unwrap()).unwrap();
        assert_eq!(rows, 6);
        let loaded = decode(bytes, 3).unwrap();
        let lazy = Arc::clone(loaded.tombstones.checkpoint.as_ref().unwrap());
        assert!(lazy.decoded.get().is_none(), "decoded on load");
        assert!(loaded.tombstones.recent.is_empty());
        let mut snapshot = loaded.into_snapshot(3, "memory://x").unwrap();
        snapshot
            .apply_version(4, vec![Action::Add(add("re-added"))])
            .unwrap();
        snapshot
            .apply_version(5, vec![Action::Remove(remove("removed-again", 2))])
            .unwrap();
        assert!(lazy.decoded.get().is_none(), "decoded by later versions");
        let mut tombstones: Vec<_> = snapshot
            .tombstones()
            .unwrap()
            .map(|r| (r.path.as_str(), r.deletion_timestamp))
            .collect();
        tombstones.sort();
        assert_eq!(tombstones, [("kept", Some(1)), ("removed-again", Some(2))]);
        assert!(lazy.decoded.get().is_some());
        // Expiring copies the checkpoint's survivors out of the Parquet.
        snapshot.expire_tombstones(2).unwrap();
        assert!(snapshot.tombstones.checkpoint.is_none());
        let left: Vec<_> = snapshot.tombstones().unwrap().map(|r| &r.path).collect();
        assert_eq!(left, ["removed-again"]);
    }

    #[test]
    fn large_checkpoints_have_several_row_groups_and_decode_in_order() {
        let mut replay = new_table("id:long,dt:string", &["dt"]);
        let n = ROW_GROUP_ROWS * 2 + 5;
        for i in 0..n {
            replay.apply(Action::Add(Add {
                path: format!("dt=d {}/f{i}.parquet", i % 7),
                partition_values: [("dt".into(), Some(format!("d {}", i % 7)))].into(),
                size: i as i64,
                modification_time: 5,
                data_change: true,
                stats: Some(format!("{{\"numRecords\":{i}}}")),
                tags: None,
            }));
        }
        replay.apply(Action::Txn(crate::actions::Txn {
            app_id: "job".into(),
            version: 3,
            last_updated: None,
        }));
        // Tombstones after the adds (rows are sorted by kind), some with partition values.
        for i in 0..10 {
            replay.apply(Action::Remove(Remove {
                path: format!("old/f{i}.parquet"),
                deletion_timestamp: Some(i),
                data_change: true,
                extended_file_metadata: Some(true),
                partition_values: (i % 2 == 0).then(|| [("dt".into(), None)].into()),
                size: Some(i),
            }));
        }
        let snapshot = replay.into_snapshot(9, "memory://x").unwrap();
        let (bytes, _) = encode(&snapshot).unwrap();
        let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default()).unwrap();
        let groups = metadata.metadata().num_row_groups();
        assert!(groups >= 3, "{groups} row groups");
        // Only the columns with a value in a row group are read from it.
        let names = |roots: &[usize]| -> Vec<&str> {
            roots
                .iter()
                .map(|&r| metadata.schema().field(r).name().as_str())
                .collect()
        };
        let plan = row_group_roots(&metadata);
        assert_eq!(names(&plan[0].1), ["txn", "add", "metaData", "protocol"]);
        assert_eq!(names(&plan[1].1), ["add"]);
        assert_eq!(names(&plan[groups - 1].1), ["add", "remove"]);
        let decoded = decode(bytes, 9)
            .unwrap()
            .into_snapshot(9, "memory://x")
            .unwrap();
        assert_eq!(decoded.file_count(), n);
        for add in snapshot.files() {
            assert_eq!(decoded.file(&add.path), Some(add));
        }
        assert_eq!(decoded.app_version("job"), Some(3));
        assert_eq!(decoded.metadata(), snapshot.metadata());
        assert_eq!(decoded.protocol(), snapshot.protocol());
        let mut tombstones: Vec<_> = decoded.tombstones().unwrap().cloned().collect();
        tombstones.sort_by(|a, b| a.path.cmp(&b.path));
        let mut want: Vec<_> = snapshot.tombstones().unwrap().cloned().collect();
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(tombstones, want);
        // Stats are kept; equal partition values are one shared map.
        let a = decoded.file("dt=d 1/f1.parquet").unwrap();
        assert_eq!(a.stats.as_deref(), Some("{\"numRecords\":1}"));
        let b = decoded.file("dt=d 1/f8.parquet").unwrap();
        assert!(std::ptr::eq(&*a.partition_values, &*b.partition_values));
    }
}
