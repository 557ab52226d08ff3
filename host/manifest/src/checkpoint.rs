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
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), None)
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
    let rows = (snapshot.file_count() + snapshot.tombstones().count() + snapshot.txns().count() + 2)
        as i64;
    match store
        .put_create(&checkpoint_key(snapshot.version()), bytes)
        .await
    {
        // Another writer checkpointed the same version: the content is the same state.
        Ok(_) | Err(weir_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Never move `_last_checkpoint` backwards past a newer checkpoint another writer recorded.
    if let Ok(existing) = store.get(LAST_CHECKPOINT).await {
        if let Ok(last) = serde_json::from_slice::<LastCheckpoint>(&existing) {
            if last.version >= snapshot.version() {
                return Ok(());
            }
        }
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

pub(crate) fn decode(bytes: Bytes) -> Result<LogReplay, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| e.to_string())?
        .with_batch_size(8192)
        .build()
        .map_err(|e| e.to_string())?;
    let mut replay = LogReplay::default();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        for action in batch_actions(&batch)? {
            replay.apply(action);
        }
    }
    Ok(replay)
}

/// Converts checkpoint rows back to actions (only the columns Weir understands).
fn batch_actions(batch: &RecordBatch) -> Result<Vec<Action>, String> {
    let wanted: Vec<usize> = ["txn", "add", "remove", "metaData", "protocol"]
        .iter()
        .filter_map(|name| batch.schema().index_of(name).ok())
        .collect();
    let batch = batch.project(&wanted).map_err(|e| e.to_string())?;
    let mut json = Vec::new();
    {
        let mut writer = arrow_json::ArrayWriter::new(&mut json);
        writer.write(&batch).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    if json.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(action) = actions::parse_action(row)? {
            out.push(action);
        }
    }
    Ok(out)
}
