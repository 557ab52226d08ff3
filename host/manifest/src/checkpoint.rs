//! Delta checkpoints: the whole table state at one version as a single Parquet file
//! (`_delta_log/NNN.checkpoint.parquet`, one action per row in the columns `txn`, `add`, `remove`,
//! `metaData`, `protocol`), plus `_delta_log/_last_checkpoint` pointing at it.
//!
//! The Parquet schema follows the Delta protocol so other engines (Spark, delta-rs) read it.
//! Rows are built from the same serde actions as the JSON log (via arrow-json), so the two forms
//! cannot drift apart.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::properties::WriterProperties;
use weir_store::Store;

use crate::actions::{self, Action};
use crate::error::{Error, Result};
use crate::snapshot::{LAST_CHECKPOINT, LastCheckpoint, LogReplay, Snapshot, checkpoint_key};

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
fn checkpoint_actions(snapshot: &Snapshot) -> Vec<Action> {
    let mut out = Vec::with_capacity(snapshot.file_count() + 2);
    out.push(Action::Protocol(snapshot.protocol().clone()));
    out.push(Action::MetaData(snapshot.metadata().clone()));
    let mut txns: Vec<_> = snapshot.txns().cloned().collect();
    txns.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    out.extend(txns.into_iter().map(Action::Txn));
    let mut adds: Vec<_> = snapshot.files().cloned().collect();
    adds.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(adds.into_iter().map(Action::Add));
    let mut removes: Vec<_> = snapshot.tombstones().cloned().collect();
    removes.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(removes.into_iter().map(Action::Remove));
    out
}

/// Encodes the checkpoint Parquet file of `snapshot`.
pub(crate) fn encode(snapshot: &Snapshot) -> Result<Bytes> {
    let failed = |reason: String| Error::CorruptLog {
        version: snapshot.version(),
        url: snapshot.url().to_string(),
        reason: format!("cannot encode checkpoint: {reason}"),
    };
    let schema = checkpoint_schema();
    let actions = checkpoint_actions(snapshot);
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
    Ok(Bytes::from(bytes))
}

/// Writes the checkpoint of `snapshot` and points `_last_checkpoint` at it.
pub(crate) async fn write(store: &Store, snapshot: &Snapshot) -> Result<()> {
    let bytes = encode(snapshot)?;
    let rows =
        (snapshot.file_count() + snapshot.tombstone_count() + snapshot.txns().count() + 2) as i64;
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
    decode(bytes).map_err(|reason| Error::CorruptLog {
        version,
        url: store.url_of(&key),
        reason,
    })
}

/// Rows per checkpoint row group.
const ROW_GROUP_ROWS: usize = 4096;

pub(crate) fn decode(bytes: Bytes) -> Result<LogReplay, String> {
    let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default())
        .map_err(|e| e.to_string())?;
    let rows = usize::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    // Decoded on this thread: on a loaded 2-core machine, decoding row groups on scoped threads
    // measured slower (thread start-up, cross-thread frees of every string) than doing it here.
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata)
        .with_batch_size(8192)
        .build()
        .map_err(|e| e.to_string())?;
    let mut decoded = Vec::new();
    for batch in reader {
        decoded.push(batch_actions(&batch.map_err(|e| e.to_string())?));
    }
    let mut replay = LogReplay::default();
    replay.files.reserve(rows);
    for actions in decoded {
        for action in actions? {
            match action {
                // In a checkpoint a remove is only a tombstone; it never hides an add.
                Action::Remove(remove) => {
                    replay.tombstones.insert(remove);
                }
                action => replay.apply(action),
            }
        }
    }
    Ok(replay)
}

/// Converts checkpoint rows back to actions (only the columns Weir understands). `add` and
/// `remove` (the bulk of a checkpoint) are decoded straight from Arrow; anything else, or columns
/// with unexpected types written by another engine, goes through arrow-json.
fn batch_actions(batch: &RecordBatch) -> Result<Vec<Action>, String> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut rest = Vec::new();
    for name in ["txn", "add", "remove", "metaData", "protocol"] {
        let Ok(index) = schema.index_of(name) else {
            continue;
        };
        let column = batch.column(index);
        let fast = match name {
            "add" => fast::adds(column, &mut out),
            "remove" => fast::removes(column, &mut out),
            _ => false,
        };
        if !fast {
            rest.push(index);
        }
    }
    if rest.is_empty() {
        return Ok(out);
    }
    let batch = batch.project(&rest).map_err(|e| e.to_string())?;
    // Only the few rows that hold one of these actions (most rows are adds or removes).
    let rows: Vec<usize> = (0..batch.num_rows())
        .filter(|&row| batch.columns().iter().any(|c| c.is_valid(row)))
        .collect();
    if rows.is_empty() {
        return Ok(out);
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
        return Ok(out);
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    for row in rows {
        if let Some(action) = actions::parse_action(row)? {
            out.push(action);
        }
    }
    Ok(out)
}

mod fast {
    use std::collections::BTreeMap;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Array, ArrayRef, MapArray, StructArray};

    use crate::actions::{Action, Add, PartitionValues, Remove, decode_path};

    fn map_at(map: &MapArray, row: usize) -> Option<Option<PartitionValues>> {
        if map.is_null(row) {
            return Some(None);
        }
        let keys = map.keys().as_string_opt::<i32>()?;
        let values = map.values().as_string_opt::<i32>()?;
        let offsets = map.value_offsets();
        let mut out = BTreeMap::new();
        for i in offsets[row] as usize..offsets[row + 1] as usize {
            let value = (!values.is_null(i)).then(|| values.value(i).to_string());
            out.insert(keys.value(i).to_string(), value);
        }
        Some(Some(out))
    }

    fn parts(column: &ArrayRef) -> Option<&StructArray> {
        column.as_struct_opt()
    }

    /// Decodes the `add` column; false (and nothing pushed) if its shape is unexpected.
    pub fn adds(column: &ArrayRef, out: &mut Vec<Action>) -> bool {
        decode_adds(column).map(|adds| out.extend(adds)).is_some()
    }

    fn decode_adds(column: &ArrayRef) -> Option<Vec<Action>> {
        let s = parts(column)?;
        let path = s.column_by_name("path")?.as_string_opt::<i32>()?;
        let pv = s.column_by_name("partitionValues")?.as_map_opt()?;
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
            Some(c) => Some(c.as_map_opt()?),
            None => None,
        };
        let mut out = Vec::new();
        for row in 0..s.len() {
            if s.is_null(row) {
                continue;
            }
            if path.is_null(row)
                || size.is_null(row)
                || mtime.is_null(row)
                || data_change.is_null(row)
            {
                return None;
            }
            out.push(Action::Add(Add {
                path: decode_path(path.value(row)).ok()?.into_owned(),
                partition_values: map_at(pv, row)?.unwrap_or_default(),
                size: size.value(row),
                modification_time: mtime.value(row),
                data_change: data_change.value(row),
                stats: stats.and_then(|c| (!c.is_null(row)).then(|| c.value(row).to_string())),
                tags: match tags {
                    Some(t) => map_at(t, row)?,
                    None => None,
                },
            }));
        }
        Some(out)
    }

    /// Decodes the `remove` column; false (and nothing pushed) if its shape is unexpected.
    pub fn removes(column: &ArrayRef, out: &mut Vec<Action>) -> bool {
        decode_removes(column).map(|r| out.extend(r)).is_some()
    }

    fn decode_removes(column: &ArrayRef) -> Option<Vec<Action>> {
        let s = parts(column)?;
        let path = s.column_by_name("path")?.as_string_opt::<i32>()?;
        let deleted = s
            .column_by_name("deletionTimestamp")?
            .as_primitive_opt::<Int64Type>()?;
        let data_change = s.column_by_name("dataChange")?.as_boolean_opt()?;
        let extended = s.column_by_name("extendedFileMetadata")?.as_boolean_opt()?;
        let pv = s.column_by_name("partitionValues")?.as_map_opt()?;
        let size = s.column_by_name("size")?.as_primitive_opt::<Int64Type>()?;
        let mut out = Vec::new();
        for row in 0..s.len() {
            if s.is_null(row) {
                continue;
            }
            if path.is_null(row) || data_change.is_null(row) {
                return None;
            }
            out.push(Action::Remove(Remove {
                path: decode_path(path.value(row)).ok()?.into_owned(),
                deletion_timestamp: (!deleted.is_null(row)).then(|| deleted.value(row)),
                data_change: data_change.value(row),
                extended_file_metadata: (!extended.is_null(row)).then(|| extended.value(row)),
                partition_values: map_at(pv, row)?,
                size: (!size.is_null(row)).then(|| size.value(row)),
            }));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{Add, Remove};

    #[test]
    fn checkpoint_round_trips_through_the_fast_decoder() {
        let mut replay = LogReplay::default();
        replay.apply(Action::Protocol(Default::default()));
        replay.apply(Action::MetaData(crate::actions::Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Default::default(),
            schema_string: crate::schema::TableSchema::parse_spec("id:long,dt:string")
                .unwrap()
                .to_schema_string(),
            partition_columns: vec!["dt".into()],
            configuration: Default::default(),
            created_time: None,
        }));
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
        let bytes = encode(&snapshot).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let mut out = Vec::new();
            assert!(fast::adds(batch.column_by_name("add").unwrap(), &mut out));
            assert!(fast::removes(
                batch.column_by_name("remove").unwrap(),
                &mut out
            ));
            assert_eq!(out.len(), 3);
        }
        let decoded = decode(bytes)
            .unwrap()
            .into_snapshot(4, "memory://x")
            .unwrap();
        let mut files: Vec<_> = decoded.files().cloned().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut want: Vec<_> = snapshot.files().cloned().collect();
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(files, want);
        assert_eq!(
            decoded.tombstones().cloned().collect::<Vec<_>>(),
            snapshot.tombstones().cloned().collect::<Vec<_>>()
        );
        assert_eq!(decoded.metadata(), snapshot.metadata());
        assert_eq!(decoded.protocol(), snapshot.protocol());
    }

    #[test]
    fn large_checkpoints_have_several_row_groups_and_decode_in_order() {
        let mut replay = LogReplay::default();
        replay.apply(Action::Protocol(Default::default()));
        replay.apply(Action::MetaData(crate::actions::Metadata {
            id: "t".into(),
            name: None,
            description: None,
            format: Default::default(),
            schema_string: crate::schema::TableSchema::parse_spec("id:long,dt:string")
                .unwrap()
                .to_schema_string(),
            partition_columns: vec!["dt".into()],
            configuration: Default::default(),
            created_time: None,
        }));
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
        let snapshot = replay.into_snapshot(9, "memory://x").unwrap();
        let bytes = encode(&snapshot).unwrap();
        let groups = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default())
            .unwrap()
            .metadata()
            .num_row_groups();
        assert!(groups >= 3, "{groups} row groups");
        let decoded = decode(bytes)
            .unwrap()
            .into_snapshot(9, "memory://x")
            .unwrap();
        assert_eq!(decoded.file_count(), n);
        for add in snapshot.files() {
            assert_eq!(decoded.file(&add.path), Some(add));
        }
        assert_eq!(decoded.app_version("job"), Some(3));
        assert_eq!(decoded.metadata(), snapshot.metadata());
    }
}
