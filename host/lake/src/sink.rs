//! The hive-partitioned Parquet sink.
//!
//! [`PartitionedWriter`] takes record batches, routes each row to its partition (the values
//! of the partition columns, which are dropped from the file data and encoded in the path as
//! `key=value/`), and writes Parquet files that roll at a target size.
//!
//! Guarantees:
//! - Each file is written once, straight to its final key
//!   `k1=v1/…/part-<txn>-t<task>-a<attempt>-<seq>.<codec>.parquet`, and never renamed. A
//!   file small enough to stay in the upload buffer is written with one create-only PUT (an
//!   existing object at that key is an error, never overwritten); a larger one with a
//!   multipart upload, which readers see only once it completes.
//! - Timestamps (any unit, any time zone or none, also inside structs and lists) are written
//!   as `Timestamp(Microsecond, "UTC")`, so a Delta table stays at reader 1 / writer 2. Naive
//!   timestamps are taken as UTC.
//! - Memory is bounded by `max_open_partitions × (row_group_bytes + 3 × upload_part_bytes)`
//!   (defaults: 16 × (16 MiB + 3 × 8 MiB)): each open file holds at most one in-progress row
//!   group and its upload buffer plus two parts in flight. Writing to a new partition when
//!   `max_open_partitions` are open closes the least recently written file first.
//! - [`PartitionedWriter::abort`] deletes everything this writer wrote (best effort).
//!
//! Encoding: zstd by default. Each file's columns keep Parquet's dictionary encoding unless a
//! sample of the file's first rows shows them mostly unique (ids, digests, timestamps), which
//! are written plain: their dictionary would be abandoned at its size limit anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, LargeListArray, ListArray, RecordBatch, StructArray, UInt32Array,
};
use arrow::compute::{cast, take, take_record_batch};
use arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;
use arrow::row::{Row, RowConverter, SortField};
use bytes::Bytes;
use futures::future::BoxFuture;
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart,
};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use weir_store::Store;

use crate::error::{Error, Result};
use crate::hive;
use crate::object_path;
use crate::stats::FileStats;

/// Default target size of one file.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;
/// Default maximum number of files open at once (one per partition being written).
pub const DEFAULT_MAX_OPEN_PARTITIONS: usize = 16;
/// Default in-progress row group size (encoded bytes) at which a row group is flushed.
pub const DEFAULT_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// Default upload buffer and multipart part size (S3 needs at least 5 MiB).
pub const DEFAULT_UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 2;

/// A file the writer produced, for the manifest to turn into a Delta `add` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// The object key relative to the table root, with hive-escaped partition directories
    /// (a Delta `add.path` is this key URI-encoded).
    pub path: String,
    pub size: u64,
    /// Partition values in Delta's string form (`2026-01-01`, `42`, `true`); null for nulls.
    pub partition_values: BTreeMap<String, Option<String>>,
    pub num_records: u64,
    /// Delta stats JSON: numRecords, minValues, maxValues, nullCount.
    pub stats: Option<String>,
}

/// Partition values of one file, in partition-column order.
type PartitionKey = Vec<Option<String>>;

struct OpenFile {
    key: String,
    writer: AsyncArrowWriter<ObjectSink>,
    stats: FileStats,
    last_used: u64,
}

/// What the writer derived from the first batch's schema.
struct Layout {
    input_schema: SchemaRef,
    data_schema: SchemaRef,
    partition_indices: Vec<usize>,
    data_indices: Vec<usize>,
    props: WriterProperties,
}

/// A hive-partitioned Parquet writer (see the module docs). Configure with the builder
/// methods, then [`write`](Self::write) batches and [`finish`](Self::finish) (or
/// [`abort`](Self::abort)). Must run inside a Tokio runtime.
pub struct PartitionedWriter {
    store: Store,
    txn: String,
    task: u64,
    attempt: u32,
    partition_columns: Vec<String>,
    compression: Compression,
    target_file_size: u64,
    max_open_partitions: usize,
    row_group_bytes: usize,
    upload_part_bytes: usize,
    layout: Option<Layout>,
    open: HashMap<PartitionKey, OpenFile>,
    written: Vec<WrittenFile>,
    next_seq: u64,
    clock: u64,
}

impl std::fmt::Debug for PartitionedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedWriter")
            .field("store", &self.store)
            .field("txn", &self.txn)
            .field("task", &self.task)
            .field("attempt", &self.attempt)
            .field("open", &self.open.len())
            .field("written", &self.written.len())
            .finish()
    }
}

impl PartitionedWriter {
    /// A writer into the table rooted at `store`, naming files after transaction `txn`
    /// (letters, digits, `-` and `_`), task `task` and attempt `attempt`.
    pub fn new(store: Store, txn: impl Into<String>, task: u64, attempt: u32) -> Self {
        Self {
            store,
            txn: txn.into(),
            task,
            attempt,
            partition_columns: Vec::new(),
            compression: Compression::ZSTD(ZstdLevel::default()),
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            max_open_partitions: DEFAULT_MAX_OPEN_PARTITIONS,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            upload_part_bytes: DEFAULT_UPLOAD_PART_BYTES,
            layout: None,
            open: HashMap::new(),
            written: Vec::new(),
            next_seq: 0,
            clock: 0,
        }
    }

    /// Partition by these columns (Utf8, integer, Date32 or Boolean), outermost first.
    pub fn partition_by<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.partition_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Compression codec (default zstd).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Roll to a new file once a file reaches about this many bytes (default 128 MiB).
    pub fn target_file_size(mut self, bytes: u64) -> Self {
        self.target_file_size = bytes;
        self
    }

    /// Maximum files open at once (default 16).
    pub fn max_open_partitions(mut self, files: usize) -> Self {
        self.max_open_partitions = files;
        self
    }

    /// Flush a row group once its encoded size reaches this many bytes (default 16 MiB).
    pub fn row_group_bytes(mut self, bytes: usize) -> Self {
        self.row_group_bytes = bytes;
        self
    }

    /// Upload buffer and multipart part size (default 8 MiB; S3 needs at least 5 MiB).
    pub fn upload_part_bytes(mut self, bytes: usize) -> Self {
        self.upload_part_bytes = bytes;
        self
    }

    /// Files completed so far (not counting open ones).
    pub fn written(&self) -> &[WrittenFile] {
        &self.written
    }

    fn check_arguments(&self) -> Result<()> {
        let txn_ok = !self.txn.is_empty()
            && self.txn.len() <= 128
            && self
                .txn
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !txn_ok {
            return Err(Error::InvalidArgument(format!(
                "transaction id {:?} must be 1-128 letters, digits, '-' or '_'",
                self.txn
            )));
        }
        if self.target_file_size == 0 || self.max_open_partitions == 0 || self.row_group_bytes == 0
        {
            return Err(Error::InvalidArgument(
                "target_file_size, max_open_partitions and row_group_bytes must be at least 1"
                    .into(),
            ));
        }
        if self.upload_part_bytes < 1024 {
            return Err(Error::InvalidArgument(
                "upload_part_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    fn layout_for(&self, schema: &SchemaRef) -> Result<Layout> {
        self.check_arguments()?;
        let location = self.store.url().to_string();
        let mut partition_indices = Vec::new();
        for name in &self.partition_columns {
            let Some((index, field)) = schema.column_with_name(name) else {
                return Err(Error::schema(
                    &location,
                    format!("partition column {name:?} is not in the batch schema"),
                ));
            };
            if !is_partition_type(field.data_type()) {
                return Err(Error::partition(
                    name,
                    format!(
                        "unsupported partition column type {}; use a string, integer, Date32 or Boolean column",
                        field.data_type()
                    ),
                ));
            }
            if partition_indices.contains(&index) {
                return Err(Error::partition(name, "listed twice in partition_by"));
            }
            partition_indices.push(index);
        }
        let data_indices: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !partition_indices.contains(i))
            .collect();
        if data_indices.is_empty() {
            return Err(Error::schema(
                &location,
                "every column is a partition column; a file needs at least one data column",
            ));
        }
        let data_fields: Vec<FieldRef> = data_indices
            .iter()
            .map(|&i| normalize_field(&schema.fields()[i]))
            .collect();
        let data_schema = Arc::new(Schema::new_with_metadata(
            data_fields,
            schema.metadata().clone(),
        ));
        let props = WriterProperties::builder()
            .set_compression(self.compression)
            .build();
        Ok(Layout {
            input_schema: schema.clone(),
            data_schema,
            partition_indices,
            data_indices,
            props,
        })
    }

    /// Writes a batch, routing its rows to their partitions' files.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.layout.is_none() {
            self.layout = Some(self.layout_for(batch.schema_ref())?);
        }
        let Some(layout) = &self.layout else {
            unreachable!("layout set above")
        };
        check_same_fields(
            batch.schema_ref(),
            &layout.input_schema,
            self.store.url().as_str(),
        )?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let data = normalize_batch(batch, layout)?;
        for (key, rows) in partition_groups(batch, layout, &self.partition_columns)? {
            let part = if rows.len() == data.num_rows() {
                data.clone()
            } else {
                take_record_batch(&data, &UInt32Array::from(rows))
                    .map_err(|e| Error::schema(self.store.url().as_str(), e.to_string()))?
            };
            self.write_partition(key, part).await?;
        }
        Ok(())
    }

    async fn write_partition(&mut self, key: PartitionKey, batch: RecordBatch) -> Result<()> {
        let limit = self
            .row_group_bytes
            .min(self.target_file_size.try_into().unwrap_or(usize::MAX));
        let bytes_per_row = (batch.get_array_memory_size() / batch.num_rows().max(1)).max(1);
        let rows_per_chunk = (limit / bytes_per_row).max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = rows_per_chunk.min(batch.num_rows() - offset);
            let chunk = batch.slice(offset, len);
            offset += len;
            self.clock += 1;
            if !self.open.contains_key(&key) {
                if self.open.len() >= self.max_open_partitions {
                    self.close_least_recent().await?;
                }
                let file = self.open_file(&key, &chunk)?;
                self.open.insert(key.clone(), file);
            }
            let Some(file) = self.open.get_mut(&key) else {
                unreachable!("file opened above")
            };
            file.last_used = self.clock;
            let url = self.store.url_of(&file.key);
            file.writer
                .write(&chunk)
                .await
                .map_err(|e| write_error(&url, e))?;
            file.stats.observe(&chunk);
            if file.writer.in_progress_size() >= self.row_group_bytes {
                file.writer
                    .flush()
                    .await
                    .map_err(|e| write_error(&url, e))?;
            }
            let estimate = file.writer.bytes_written() + file.writer.in_progress_size();
            if estimate as u64 >= self.target_file_size {
                self.close(&key).await?;
            }
        }
        Ok(())
    }

    /// Opens the file for partition `key`, whose first rows are `first`.
    fn open_file(&mut self, key: &PartitionKey, first: &RecordBatch) -> Result<OpenFile> {
        let Some(layout) = &self.layout else {
            unreachable!("layout set by write")
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let dirs: Vec<String> = self
            .partition_columns
            .iter()
            .zip(key)
            .map(|(name, value)| hive::partition_segment(name, value.as_deref()))
            .collect();
        let codec = match self.compression {
            Compression::UNCOMPRESSED => String::new(),
            Compression::SNAPPY => ".snappy".into(),
            Compression::ZSTD(_) => ".zstd".into(),
            Compression::GZIP(_) => ".gz".into(),
            Compression::LZ4 | Compression::LZ4_RAW => ".lz4".into(),
            Compression::BROTLI(_) => ".br".into(),
            other => format!(".{other:?}").to_ascii_lowercase(),
        };
        let name = format!(
            "part-{}-t{}-a{}-{seq:05}{codec}.parquet",
            self.txn, self.task, self.attempt
        );
        let file_key = dirs.into_iter().chain([name]).collect::<Vec<_>>().join("/");
        let url = self.store.url_of(&file_key);
        let sink = ObjectSink {
            store: self.store.object_store().clone(),
            path: object_path(&self.store, &file_key)?,
            capacity: self.upload_part_bytes,
            buffer: Vec::new(),
            buffered: 0,
            upload: None,
        };
        let props = file_properties(layout.props.clone(), first);
        let writer = AsyncArrowWriter::try_new(sink, layout.data_schema.clone(), Some(props))
            .map_err(|e| Error::parquet(&url, e))?;
        tracing::debug!(%url, "opened parquet file");
        Ok(OpenFile {
            key: file_key,
            writer,
            stats: FileStats::new(&layout.data_schema),
            last_used: self.clock,
        })
    }

    async fn close_least_recent(&mut self) -> Result<()> {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_used)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => self.close(&key).await,
            None => Ok(()),
        }
    }

    async fn close(&mut self, key: &PartitionKey) -> Result<()> {
        let Some(mut file) = self.open.remove(key) else {
            return Ok(());
        };
        let url = self.store.url_of(&file.key);
        let footer = match file.writer.finish().await {
            Ok(footer) => footer,
            Err(e) => {
                let mut sink = file.writer.into_inner();
                let _ = sink.abort().await;
                return Err(write_error(&url, e));
            }
        };
        let size = file.writer.bytes_written() as u64;
        let Some(layout) = &self.layout else {
            unreachable!("a file is open, so write set the layout")
        };
        let num_records = u64::try_from(footer.file_metadata().num_rows()).unwrap_or(0);
        let stats = file.stats.to_json(&layout.data_schema, &footer);
        let partition_values = self
            .partition_columns
            .iter()
            .cloned()
            .zip(key.iter().cloned())
            .collect();
        tracing::debug!(%url, size, rows = num_records, "wrote parquet file");
        self.written.push(WrittenFile {
            path: file.key,
            size,
            partition_values,
            num_records,
            stats: Some(stats),
        });
        Ok(())
    }

    /// Closes every open file and returns every file written, in the order they completed.
    /// After a failure, call [`abort`](Self::abort) to remove the partial output.
    pub async fn finish(&mut self) -> Result<Vec<WrittenFile>> {
        let mut keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        keys.sort();
        for key in keys {
            self.close(&key).await?;
        }
        Ok(self.written.clone())
    }

    /// Deletes every file this writer wrote, including those returned by
    /// [`finish`](Self::finish), and abandons open files (aborting their uploads). Best
    /// effort: tries every file and returns the first error.
    pub async fn abort(&mut self) -> Result<()> {
        let mut first_error = None;
        for (_, file) in self.open.drain() {
            let key = file.key;
            let mut sink = file.writer.into_inner();
            if let Err(e) = sink.abort().await {
                first_error.get_or_insert(Error::parquet(self.store.url_of(&key), e));
            }
        }
        for file in std::mem::take(&mut self.written) {
            let path = match object_path(&self.store, &file.path) {
                Ok(path) => path,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            match self.store.object_store().delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    let url = self.store.url_of(&file.path);
                    tracing::warn!(%url, %source, "abort could not delete a written file");
                    first_error
                        .get_or_insert(Error::Store(weir_store::Error::Other { url, source }));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for PartitionedWriter {
    fn drop(&mut self) {
        if !self.open.is_empty() {
            tracing::warn!(
                open = self.open.len(),
                "PartitionedWriter dropped with open files; call finish or abort"
            );
        }
    }
}

fn write_error(url: &str, e: ParquetError) -> Error {
    if let ParquetError::External(source) = &e
        && let Some(object_store::Error::AlreadyExists { .. }) =
            source.downcast_ref::<object_store::Error>()
    {
        return Error::Store(weir_store::Error::AlreadyExists {
            url: url.to_string(),
        });
    }
    Error::parquet(url, e)
}

fn is_partition_type(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
                | DataType::Boolean
        )
}

/// The type a column is written as: every timestamp becomes microseconds in UTC.
fn normalize_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::List(f) => DataType::List(normalize_field(f)),
        DataType::LargeList(f) => DataType::LargeList(normalize_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(normalize_field(f), *n),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(normalize_field).collect::<Fields>())
        }
        DataType::Map(f, sorted) => DataType::Map(normalize_field(f), *sorted),
        other => other.clone(),
    }
}

fn normalize_field(field: &FieldRef) -> FieldRef {
    let data_type = normalize_type(field.data_type());
    if &data_type == field.data_type() {
        return field.clone();
    }
    Arc::new(Field::clone(field).with_data_type(data_type))
}

/// Converts `array` to `target` (its [`normalize_type`]). Timestamps are reinterpreted in UTC
/// after a unit conversion (a naive timestamp is taken as UTC, so no time zone database is
/// needed); structs and lists are rebuilt around their converted children.
fn normalize_array(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    match (array.data_type(), target) {
        (DataType::Timestamp(_, tz), DataType::Timestamp(_, _)) => {
            let micros = cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            )?;
            let utc = micros
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone("UTC");
            Ok(Arc::new(utc))
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let array = array.as_struct();
            let children = array
                .columns()
                .iter()
                .zip(fields)
                .map(|(child, field)| normalize_array(child, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                array.nulls().cloned(),
            )?))
        }
        (DataType::List(_), DataType::List(field)) => {
            let array = array.as_list::<i32>();
            let values = normalize_array(array.values(), field.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                field.clone(),
                array.offsets().clone(),
                values,
                array.nulls().cloned(),
            )?))
        }
        (DataType::LargeList(_), DataType::LargeList(field)) => {
            let array = array.as_list::<i64>();
            let values = normalize_array(array.values(), field.data_type())?;
            Ok(Arc::new(LargeListArray::try_new(
                field.clone(),
                array.offsets().clone(),
                values,
                array.nulls().cloned(),
            )?))
        }
        _ => cast(array, target),
    }
}

fn check_same_fields(actual: &Schema, expected: &Schema, location: &str) -> Result<()> {
    let same = actual.fields().len() == expected.fields().len()
        && actual
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(a, e)| a.name() == e.name() && a.data_type() == e.data_type());
    if same {
        return Ok(());
    }
    let describe = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Error::schema(
        location,
        format!(
            "batch schema [{}] differs from the writer's first batch [{}]",
            describe(actual),
            describe(expected)
        ),
    ))
}

/// The batch's data columns, with timestamps normalized.
fn normalize_batch(batch: &RecordBatch, layout: &Layout) -> Result<RecordBatch> {
    let columns = layout
        .data_indices
        .iter()
        .zip(layout.data_schema.fields())
        .map(|(&i, field)| {
            let column = batch.column(i);
            if column.data_type() == field.data_type() {
                return Ok(column.clone());
            }
            normalize_array(column, field.data_type()).map_err(|e| {
                Error::schema(
                    field.name(),
                    format!(
                        "cannot convert column {:?} to {}: {e}",
                        field.name(),
                        field.data_type()
                    ),
                )
            })
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(layout.data_schema.clone(), columns)
        .map_err(|e| Error::schema("batch", e.to_string()))
}

/// Rows sampled from a file's first batch to choose its column encodings.
const DICTIONARY_SAMPLE_ROWS: usize = 8192;
/// A column whose sample holds at least this many distinct values, and more than half of the
/// sampled rows, is written without a dictionary.
const DICTIONARY_MAX_DISTINCT: usize = 512;

/// The writer properties for a file whose first rows are `first`: `base`, with dictionary
/// encoding turned off for the top-level columns that look mostly unique (ids, digests,
/// timestamps).
///
/// Parquet's writer otherwise interns every value of such a column until the dictionary page
/// reaches its size limit, then falls back to plain encoding anyway, once per row group: work
/// that buys nothing. A column with few distinct values keeps its dictionary.
fn file_properties(base: WriterProperties, first: &RecordBatch) -> WriterProperties {
    let sample = first.slice(0, first.num_rows().min(DICTIONARY_SAMPLE_ROWS));
    let mostly_unique: Vec<&str> = sample
        .schema_ref()
        .fields()
        .iter()
        .zip(sample.columns())
        .filter(|(field, column)| {
            !field.data_type().is_nested() && mostly_unique(column, sample.num_rows())
        })
        .map(|(field, _)| field.name().as_str())
        .collect();
    if mostly_unique.is_empty() {
        return base;
    }
    let mut builder = base.into_builder();
    for name in mostly_unique {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    builder.build()
}

/// Whether `column`'s `rows` sampled values are mostly distinct (see [`DICTIONARY_MAX_DISTINCT`]).
fn mostly_unique(column: &ArrayRef, rows: usize) -> bool {
    if rows < DICTIONARY_MAX_DISTINCT {
        return false;
    }
    let Ok(converter) = RowConverter::new(vec![SortField::new(column.data_type().clone())]) else {
        return false;
    };
    let Ok(values) = converter.convert_columns(std::slice::from_ref(column)) else {
        return false;
    };
    let distinct: std::collections::HashSet<Row<'_>> = values.iter().collect();
    distinct.len() >= DICTIONARY_MAX_DISTINCT && distinct.len() * 2 > rows
}

/// The batch's rows grouped by partition, in order of first appearance: each group's partition
/// values in Delta string form (empty strings become null) and its row indices.
///
/// Rows are compared in Arrow's row format, and each group's values are rendered once from its
/// first row, so the per-row cost is one comparison with the previous row (runs of one
/// partition are the common case) or one hash lookup.
fn partition_groups(
    batch: &RecordBatch,
    layout: &Layout,
    names: &[String],
) -> Result<Vec<(PartitionKey, Vec<u32>)>> {
    if layout.partition_indices.is_empty() {
        return Ok(vec![(Vec::new(), (0..batch.num_rows() as u32).collect())]);
    }
    let columns: Vec<ArrayRef> = layout
        .partition_indices
        .iter()
        .map(|&i| batch.column(i).clone())
        .collect();
    let render_error =
        |name: &str, e: ArrowError| Error::partition(name, format!("cannot render values: {e}"));
    let fields = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let first_name = names.first().map_or("", String::as_str);
    let converter = RowConverter::new(fields).map_err(|e| render_error(first_name, e))?;
    let rows = converter
        .convert_columns(&columns)
        .map_err(|e| render_error(first_name, e))?;
    let mut groups: Vec<Vec<u32>> = Vec::new();
    let mut index: HashMap<Row<'_>, usize> = HashMap::new();
    let mut previous: Option<(Row<'_>, usize)> = None;
    for (i, row) in rows.iter().enumerate() {
        let group = match previous {
            Some((last, group)) if last == row => group,
            _ => *index.entry(row).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            }),
        };
        groups[group].push(i as u32);
        previous = Some((row, group));
    }
    let firsts = UInt32Array::from_iter_values(groups.iter().map(|rows| rows[0]));
    let mut keys: Vec<PartitionKey> = vec![Vec::with_capacity(names.len()); groups.len()];
    for (column, name) in columns.iter().zip(names) {
        let values = take(column, &firsts, None).map_err(|e| render_error(name, e))?;
        let strings = cast(&values, &DataType::Utf8).map_err(|e| render_error(name, e))?;
        let strings = strings.as_string::<i32>();
        for (group, key) in keys.iter_mut().enumerate() {
            let value = strings
                .is_valid(group)
                .then(|| strings.value(group))
                .filter(|v| !v.is_empty());
            key.push(value.map(str::to_string));
        }
    }
    // Distinct values can render alike (null and the empty string): such groups are one
    // partition, whose rows keep their input order.
    let mut merged: Vec<(PartitionKey, Vec<u32>)> = Vec::with_capacity(groups.len());
    let mut position: HashMap<PartitionKey, usize> = HashMap::with_capacity(groups.len());
    for (key, rows) in keys.into_iter().zip(groups) {
        if let Some(&at) = position.get(&key) {
            let existing = &mut merged[at].1;
            existing.extend(rows);
            existing.sort_unstable();
            continue;
        }
        position.insert(key.clone(), merged.len());
        merged.push((key, rows));
    }
    Ok(merged)
}

/// Uploads one Parquet file: buffered and written with one create-only PUT if it fits in
/// `capacity`, else a multipart upload of `capacity`-sized parts.
struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    path: Path,
    capacity: usize,
    buffer: Vec<Bytes>,
    buffered: usize,
    upload: Option<WriteMultipart>,
}

impl ObjectSink {
    async fn abort(&mut self) -> Result<(), ParquetError> {
        self.buffer.clear();
        self.buffered = 0;
        match self.upload.take() {
            Some(upload) => upload
                .abort()
                .await
                .map_err(|e| ParquetError::External(Box::new(e))),
            None => Ok(()),
        }
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileWriter for ObjectSink {
    fn write(&mut self, bytes: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            if let Some(upload) = &mut self.upload {
                upload
                    .wait_for_capacity(UPLOAD_CONCURRENCY)
                    .await
                    .map_err(external)?;
                upload.put(bytes);
                return Ok(());
            }
            self.buffered += bytes.len();
            self.buffer.push(bytes);
            if self.buffered < self.capacity {
                return Ok(());
            }
            let multipart = self
                .store
                .put_multipart_opts(&self.path, PutMultipartOptions::default())
                .await
                .map_err(external)?;
            let mut upload = WriteMultipart::new_with_chunk_size(multipart, self.capacity);
            for chunk in self.buffer.drain(..) {
                upload.put(chunk);
            }
            self.buffered = 0;
            self.upload = Some(upload);
            Ok(())
        })
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        Box::pin(async move {
            if let Some(upload) = self.upload.take() {
                upload.finish().await.map_err(external)?;
                return Ok(());
            }
            let payload: PutPayload = self.buffer.drain(..).collect();
            self.buffered = 0;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            self.store
                .put_opts(&self.path, payload, opts)
                .await
                .map_err(external)?;
            Ok(())
        })
    }
}
