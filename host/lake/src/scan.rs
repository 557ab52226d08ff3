//! Parquet scans: list (a prefix, or a table snapshot's file list), prune partitions, split
//! files into row-group tasks, and stream record batches with a projection pushed down.
//!
//! Guarantees:
//! - Files in partitions that the filters exclude are never opened (not even their footer).
//! - The tasks of a plan cover every row group of every kept file exactly once.
//! - Only the requested file columns are decoded; partition columns are synthesized.
//! - Memory is bounded: [`Scan::stream`] decodes at most `read_ahead + 1` tasks at once (the one being consumed and `read_ahead` ahead), each
//!   holding at most two decoded batches (of `batch_size` rows) plus its current row group's
//!   column chunks.
//! - Any Parquet failure names the file's full URL.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::file::metadata::ParquetMetaData;
use serde::{Deserialize, Serialize};
use weir_store::Store;

use crate::error::{Error, Result};
use crate::hive::{self, CompiledFilter, PartitionFilter, TypedValue};
use crate::object_path;
use crate::reader::StoreReader;

/// Default rows per decoded batch.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;
/// Default split target: files larger than this are split into row-group ranges of about
/// this many (compressed) bytes.
pub const DEFAULT_SPLIT_BYTES: u64 = 128 * 1024 * 1024;
/// Default number of tasks decoded concurrently by [`Scan::stream`].
pub const DEFAULT_READ_AHEAD: usize = 2;
/// How many footers [`Scan::plan`] reads concurrently.
const FOOTER_CONCURRENCY: usize = 8;

/// One input file: its path relative to the store root (the physical key, already
/// URL-decoded from a Delta `add.path`), its size in bytes, and its partition values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub partition_values: BTreeMap<String, Option<String>>,
}

/// A unit of scan work: one file and a contiguous range of its row groups.
/// `row_groups: None` means the whole file (a file no larger than the split target is not
/// opened while planning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanTask {
    pub path: String,
    pub size: u64,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub row_groups: Option<Range<usize>>,
}

/// What to produce from each task: which columns, in which order, the partition columns'
/// types, and the batch size. Ships with tasks to whoever runs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// Output columns in order (file or partition columns); `None` = every file column in
    /// file order, then the partition columns.
    pub columns: Option<Vec<String>>,
    /// Partition columns (name and type), in path order.
    pub partition_columns: Vec<(String, DataType)>,
    pub batch_size: usize,
}

/// The result of [`Scan::plan`]: the tasks and how to read them with [`open_task`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanPlan {
    pub tasks: Vec<ScanTask>,
    pub projection: Projection,
}

#[derive(Debug, Clone)]
enum Source {
    Prefix(String),
    Files(Vec<FileEntry>),
}

/// A scan of Parquet files, configured as a builder and run with [`Scan::plan`],
/// [`Scan::schema`] or [`Scan::stream`].
#[derive(Debug, Clone)]
pub struct Scan {
    store: Store,
    source: Source,
    columns: Option<Vec<String>>,
    filters: Vec<PartitionFilter>,
    partition_types: BTreeMap<String, DataType>,
    batch_size: usize,
    split_bytes: u64,
    read_ahead: usize,
}

/// Files after listing, typing and pruning.
struct Resolved {
    partition_columns: Vec<(String, DataType)>,
    /// The first listed file (pruned or not), to take a schema from when nothing is kept.
    first: Option<FileEntry>,
    kept: Vec<FileEntry>,
}

impl Scan {
    /// A scan of every file below the store root (see [`Scan::prefix`]).
    pub fn new(store: Store) -> Self {
        Self {
            store,
            source: Source::Prefix(String::new()),
            columns: None,
            filters: Vec::new(),
            partition_types: BTreeMap::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            split_bytes: DEFAULT_SPLIT_BYTES,
            read_ahead: DEFAULT_READ_AHEAD,
        }
    }

    /// Scans every file below `prefix`, recursively, parsing `key=value/` directories as
    /// partition values. Skips `_delta_log/`, `_weir/` and every file or directory whose name
    /// starts with `_` or `.`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.source = Source::Prefix(prefix.into());
        self
    }

    /// Scans exactly these files (a table snapshot's), with their partition values.
    pub fn files(mut self, files: Vec<FileEntry>) -> Self {
        self.source = Source::Files(files);
        self
    }

    /// Reads only these columns (file or partition columns), in this order.
    pub fn columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a partition filter (filters are ANDed).
    pub fn filter(mut self, filter: PartitionFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// Types partition column `column` as `data_type` instead of inferring it
    /// (Int32, Int64, Date32, Utf8 or Boolean).
    pub fn partition_type(mut self, column: impl Into<String>, data_type: DataType) -> Self {
        self.partition_types.insert(column.into(), data_type);
        self
    }

    /// Rows per decoded batch (default [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Split target in bytes (default [`DEFAULT_SPLIT_BYTES`]).
    pub fn split_bytes(mut self, bytes: u64) -> Self {
        self.split_bytes = bytes;
        self
    }

    /// Tasks decoded concurrently by [`Scan::stream`] (default [`DEFAULT_READ_AHEAD`]).
    pub fn read_ahead(mut self, tasks: usize) -> Self {
        self.read_ahead = tasks;
        self
    }

    fn check_arguments(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidArgument(
                "batch_size must be at least 1".into(),
            ));
        }
        if self.split_bytes == 0 {
            return Err(Error::InvalidArgument(
                "split_bytes must be at least 1".into(),
            ));
        }
        if self.read_ahead == 0 {
            return Err(Error::InvalidArgument(
                "read_ahead must be at least 1".into(),
            ));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<FileEntry>> {
        let prefix = match &self.source {
            Source::Files(files) => return Ok(files.clone()),
            Source::Prefix(prefix) => prefix.trim_matches('/'),
        };
        let mut listed = self.store.list(prefix).await?;
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut files = Vec::new();
        for (key, meta) in listed {
            let relative = key
                .strip_prefix(prefix)
                .unwrap_or(&key)
                .trim_start_matches('/');
            let hidden = relative
                .split('/')
                .any(|part| part.starts_with('_') || part.starts_with('.'));
            if hidden || relative.is_empty() {
                continue;
            }
            let values = hive::parse_partition_path(relative).map_err(|e| match e {
                Error::InvalidPartition { reason, .. } => {
                    Error::partition(self.store.url_of(&key), reason)
                }
                other => other,
            })?;
            files.push(FileEntry {
                path: key,
                size: meta.size,
                partition_values: values.into_iter().collect(),
            });
        }
        Ok(files)
    }

    /// Lists, types partition columns, and prunes.
    async fn resolve(&self) -> Result<Resolved> {
        self.check_arguments()?;
        let files = self.list().await?;
        let partition_columns = self.partition_columns(&files)?;
        let filters = self
            .filters
            .iter()
            .map(|f| CompiledFilter::compile(f, &partition_columns))
            .collect::<Result<Vec<_>>>()?;
        let first = files.first().cloned();
        let mut kept = Vec::with_capacity(files.len());
        for file in files {
            let typed = typed_values(
                &self.store,
                &file.path,
                &file.partition_values,
                &partition_columns,
            )?;
            if filters.iter().all(|f| f.matches(&typed)) {
                kept.push(file);
            }
        }
        tracing::debug!(kept = kept.len(), "scan resolved");
        Ok(Resolved {
            partition_columns,
            first,
            kept,
        })
    }

    /// Partition column names (from the first file, which every file must agree with) and
    /// types (overridden or inferred from all files' values).
    fn partition_columns(&self, files: &[FileEntry]) -> Result<Vec<(String, DataType)>> {
        let Some(first) = files.first() else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = match &self.source {
            // Path order from the first file's directories.
            Source::Prefix(prefix) => {
                let relative = first
                    .path
                    .strip_prefix(prefix.trim_matches('/'))
                    .unwrap_or(&first.path);
                hive::parse_partition_path(relative)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect()
            }
            Source::Files(_) => first.partition_values.keys().cloned().collect(),
        };
        for file in files {
            let same = file.partition_values.len() == names.len()
                && names.iter().all(|n| file.partition_values.contains_key(n));
            if !same {
                let keys: Vec<&String> = file.partition_values.keys().collect();
                return Err(Error::partition(
                    self.store.url_of(&file.path),
                    format!("partition keys {keys:?} differ from the other files' {names:?}"),
                ));
            }
        }
        names
            .into_iter()
            .map(|name| {
                let data_type = match self.partition_types.get(&name) {
                    Some(t) if hive::is_supported_partition_type(t) => t.clone(),
                    Some(t) => {
                        return Err(Error::partition(
                            &name,
                            format!("unsupported partition column type {t}; use Int32, Int64, Date32, Utf8 or Boolean"),
                        ));
                    }
                    None => hive::infer_type(
                        files
                            .iter()
                            .filter_map(|f| f.partition_values.get(&name)?.as_deref()),
                    ),
                };
                Ok((name, data_type))
            })
            .collect()
    }

    fn projection(&self, partition_columns: Vec<(String, DataType)>) -> Projection {
        Projection {
            columns: self.columns.clone(),
            partition_columns,
            batch_size: self.batch_size,
        }
    }

    /// Lists, prunes and splits the input into tasks. Reads the footer of each kept file
    /// larger than the split target (to find its row groups), and of no other file.
    pub async fn plan(&self) -> Result<ScanPlan> {
        let resolved = self.resolve().await?;
        let split_bytes = self.split_bytes;
        let store = &self.store;
        let per_file: Vec<Vec<ScanTask>> = stream::iter(resolved.kept)
            .map(|file| async move {
                if file.size <= split_bytes {
                    return Ok::<_, Error>(vec![ScanTask {
                        path: file.path,
                        size: file.size,
                        partition_values: file.partition_values,
                        row_groups: None,
                    }]);
                }
                let metadata = read_metadata(store, &file.path, file.size).await?;
                let sizes: Vec<u64> = metadata
                    .row_groups()
                    .iter()
                    .map(|rg| u64::try_from(rg.compressed_size()).unwrap_or(0))
                    .collect();
                Ok(split_row_groups(&sizes, split_bytes)
                    .into_iter()
                    .map(|range| ScanTask {
                        path: file.path.clone(),
                        size: file.size,
                        partition_values: file.partition_values.clone(),
                        row_groups: Some(range),
                    })
                    .collect())
            })
            .buffered(FOOTER_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(ScanPlan {
            tasks: per_file.into_iter().flatten().collect(),
            projection: self.projection(resolved.partition_columns),
        })
    }

    /// The schema of the batches this scan produces: the projected file schema (from the
    /// first kept file's footer, or the first listed file if all are pruned) plus the
    /// partition columns. Fails if there are no files at all.
    pub async fn schema(&self) -> Result<SchemaRef> {
        let resolved = self.resolve().await?;
        let projection = self.projection(resolved.partition_columns);
        let Some(file) = resolved.kept.into_iter().next().or(resolved.first) else {
            return Err(Error::schema(
                self.store.url().as_str(),
                "no files to take a schema from",
            ));
        };
        let metadata = read_metadata(&self.store, &file.path, file.size).await?;
        let url = self.store.url_of(&file.path);
        let file_schema = parquet::arrow::parquet_to_arrow_schema(
            metadata.file_metadata().schema_descr(),
            metadata.file_metadata().key_value_metadata(),
        )
        .map_err(|e| Error::parquet(&url, e))?;
        Ok(OutputPlan::new(&file_schema, &projection, &url)?.schema)
    }

    /// Plans and streams every task's batches, in task order, decoding up to `read_ahead + 1`
    /// tasks concurrently. Every batch is checked against [`Scan::schema`]; a file whose
    /// columns differ fails with an error naming it. Must run inside a Tokio runtime.
    pub async fn stream(&self) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let plan = self.plan().await?;
        if plan.tasks.is_empty() {
            return Ok(stream::empty().boxed());
        }
        let expected = self.schema().await?;
        let store = self.store.clone();
        let projection = Arc::new(plan.projection);
        let batches = stream::iter(plan.tasks)
            .map(move |task| {
                let url = store.url_of(&task.path);
                let expected = expected.clone();
                let checked = open_task(&store, &task, &projection).map(move |batch| {
                    let batch = batch?;
                    check_schema(batch.schema_ref(), &expected, &url)?;
                    Ok(batch)
                });
                std::future::ready(prefetch(checked.boxed()))
            })
            .buffered(self.read_ahead)
            .flatten();
        Ok(batches.boxed())
    }
}

fn typed_values(
    store: &Store,
    path: &str,
    values: &BTreeMap<String, Option<String>>,
    columns: &[(String, DataType)],
) -> Result<Vec<Option<TypedValue>>> {
    columns
        .iter()
        .map(|(name, data_type)| {
            let Some(value) = values.get(name) else {
                return Err(Error::partition(
                    store.url_of(path),
                    format!("no value for partition column {name:?}"),
                ));
            };
            let Some(value) = value else { return Ok(None) };
            hive::parse_typed(value, data_type).map(Some).ok_or_else(|| {
                Error::partition(
                    store.url_of(path),
                    format!("value {value:?} of partition column {name:?} is not a valid {data_type}"),
                )
            })
        })
        .collect()
}

/// Groups consecutive row groups into ranges of at least `target` compressed bytes (the last
/// range may be smaller). Every row group lands in exactly one range.
pub fn split_row_groups(sizes: &[u64], target: u64) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, size) in sizes.iter().enumerate() {
        bytes = bytes.saturating_add(*size);
        if bytes >= target {
            ranges.push(start..i + 1);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    debug_assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), sizes.len());
    ranges
}

fn reader(store: &Store, path: &str, size: u64) -> Result<StoreReader> {
    Ok(StoreReader::new(
        store.object_store().clone(),
        object_path(store, path)?,
        size,
    ))
}

async fn read_metadata(store: &Store, path: &str, size: u64) -> Result<Arc<ParquetMetaData>> {
    let builder = ParquetRecordBatchStreamBuilder::new(reader(store, path, size)?)
        .await
        .map_err(|e| Error::parquet(store.url_of(path), e))?;
    Ok(builder.metadata().clone())
}

fn check_schema(actual: &SchemaRef, expected: &SchemaRef, url: &str) -> Result<()> {
    if actual.fields().len() != expected.fields().len() {
        return Err(Error::schema(
            url,
            format!(
                "has {} columns where the scan expects {}",
                actual.fields().len(),
                expected.fields().len()
            ),
        ));
    }
    for (a, e) in actual.fields().iter().zip(expected.fields()) {
        if a.name() != e.name() || a.data_type() != e.data_type() {
            return Err(Error::schema(
                url,
                format!(
                    "column {:?} is {} where the scan expects {:?} {}",
                    a.name(),
                    a.data_type(),
                    e.name(),
                    e.data_type()
                ),
            ));
        }
    }
    Ok(())
}

/// Where each output column comes from.
enum ColumnSource {
    /// Index into the decoded (projected) batch.
    File(usize),
    /// Index into the partition columns.
    Partition(usize),
}

/// How to turn one file's decoded batches into output batches.
struct OutputPlan {
    schema: SchemaRef,
    /// Root column indices of the file to decode, ascending.
    file_indices: Vec<usize>,
    sources: Vec<ColumnSource>,
}

impl OutputPlan {
    fn new(file_schema: &Schema, projection: &Projection, url: &str) -> Result<Self> {
        let partition_index = |name: &str| {
            projection
                .partition_columns
                .iter()
                .position(|(n, _)| n == name)
        };
        // Output column names; partition values shadow same-named file columns.
        let names: Vec<String> = match &projection.columns {
            Some(columns) => columns.clone(),
            None => file_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| partition_index(n).is_none())
                .chain(projection.partition_columns.iter().map(|(n, _)| n.clone()))
                .collect(),
        };
        let mut file_indices = Vec::new();
        for name in &names {
            if partition_index(name).is_some() {
                continue;
            }
            let Some((index, _)) = file_schema.column_with_name(name) else {
                return Err(Error::schema(
                    url,
                    format!("no column {name:?} in the file or the partition columns"),
                ));
            };
            file_indices.push(index);
        }
        file_indices.sort_unstable();
        file_indices.dedup();
        let mut fields = Vec::with_capacity(names.len());
        let mut sources = Vec::with_capacity(names.len());
        for name in &names {
            if let Some(p) = partition_index(name) {
                fields.push(Arc::new(Field::new(
                    name,
                    projection.partition_columns[p].1.clone(),
                    true,
                )));
                sources.push(ColumnSource::Partition(p));
                continue;
            }
            let (index, field) = file_schema
                .column_with_name(name)
                .ok_or_else(|| Error::schema(url, format!("no column {name:?}")))?;
            let position = file_indices.binary_search(&index).unwrap_or_default();
            fields.push(Arc::new(field.clone()));
            sources.push(ColumnSource::File(position));
        }
        Ok(Self {
            schema: Arc::new(Schema::new(fields)),
            file_indices,
            sources,
        })
    }

    fn assemble(
        &self,
        decoded: &RecordBatch,
        partitions: &[ArrayRef],
        url: &str,
    ) -> Result<RecordBatch> {
        let rows = decoded.num_rows();
        let columns: Vec<ArrayRef> = self
            .sources
            .iter()
            .map(|source| match source {
                ColumnSource::File(i) => decoded.column(*i).clone(),
                ColumnSource::Partition(p) => partitions[*p].slice(0, rows),
            })
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| Error::schema(url, e.to_string()))
    }
}

/// Streams the batches of one task. Must run inside a Tokio runtime. Errors name the file.
pub fn open_task(
    store: &Store,
    task: &ScanTask,
    projection: &Projection,
) -> BoxStream<'static, Result<RecordBatch>> {
    let (store, task, projection) = (store.clone(), task.clone(), projection.clone());
    stream::once(async move { open_task_inner(store, task, projection).await })
        .try_flatten()
        .boxed()
}

async fn open_task_inner(
    store: Store,
    task: ScanTask,
    projection: Projection,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    if projection.batch_size == 0 {
        return Err(Error::InvalidArgument(
            "batch_size must be at least 1".into(),
        ));
    }
    let url = store.url_of(&task.path);
    let typed = typed_values(
        &store,
        &task.path,
        &task.partition_values,
        &projection.partition_columns,
    )?;
    let builder = ParquetRecordBatchStreamBuilder::new(reader(&store, &task.path, task.size)?)
        .await
        .map_err(|e| Error::parquet(&url, e))?;
    let plan = OutputPlan::new(builder.schema(), &projection, &url)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), plan.file_indices.iter().copied());
    let mut builder = builder
        .with_projection(mask)
        .with_batch_size(projection.batch_size);
    if let Some(range) = &task.row_groups {
        let available = builder.metadata().num_row_groups();
        if range.start > range.end || range.end > available {
            return Err(Error::InvalidArgument(format!(
                "task for {url} asks for row groups {range:?} but the file has {available}"
            )));
        }
        builder = builder.with_row_groups(range.clone().collect());
    }
    let reader = builder.build().map_err(|e| Error::parquet(&url, e))?;
    // One array per partition column, grown on demand to the largest batch seen.
    let mut partitions: HashMap<usize, ArrayRef> = HashMap::new();
    let columns = projection.partition_columns;
    let batches = reader.map(move |decoded| {
        let decoded = decoded.map_err(|e| Error::parquet(&url, e))?;
        let rows = decoded.num_rows();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .enumerate()
            .map(|(i, (_, data_type))| {
                let array = partitions
                    .entry(i)
                    .or_insert_with(|| hive::constant_array(data_type, typed[i].as_ref(), rows));
                if array.len() < rows {
                    *array = hive::constant_array(data_type, typed[i].as_ref(), rows);
                }
                array.clone()
            })
            .collect();
        plan.assemble(&decoded, &arrays, &url)
    });
    Ok(batches.boxed())
}

/// Runs `inner` on a spawned task that stays at most two batches ahead of the consumer.
/// Dropping the returned stream stops the task.
fn prefetch(
    inner: BoxStream<'static, Result<RecordBatch>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let handle = tokio::spawn(async move {
        let mut inner = inner;
        while let Some(item) = inner.next().await {
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    let guard = AbortOnDrop(handle);
    stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
        let item = receiver.recv().await?;
        Some((item, (receiver, guard)))
    })
    .boxed()
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_every_row_group_once() {
        assert_eq!(split_row_groups(&[], 10), Vec::<Range<usize>>::new());
        assert_eq!(
            split_row_groups(&[5, 5, 5, 5, 5], 10),
            vec![0..2, 2..4, 4..5]
        );
        assert_eq!(split_row_groups(&[100, 1, 1], 10), vec![0..1, 1..3]);
        assert_eq!(split_row_groups(&[1, 1, 1], u64::MAX), vec![0..3]);
    }
}
