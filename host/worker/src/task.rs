//! [`InProcessWorker`]: runs tasks on this process's Tokio runtime and blocking threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use weir_lake::{PartitionedWriter, open_task};
use weir_runtime::Plugin;
use weir_store::Store;

use crate::chain::{Chain, Input, PassEnd, Skips};
use crate::{PassCounts, Progress, ProgressEvent, TaskError, TaskResult, TaskSpec, Worker};

/// Writer attempts per task attempt: each dead-letter re-run writes under its own attempt
/// number, so file names never collide.
const PASSES_PER_ATTEMPT: u32 = 10_000;

/// A worker in this process, holding the job's loaded plugins.
#[derive(Clone)]
pub struct InProcessWorker {
    plugins: Arc<HashMap<String, Plugin>>,
}

impl InProcessWorker {
    /// A worker that can run these plugins (found by digest).
    pub fn new(plugins: impl IntoIterator<Item = Plugin>) -> Self {
        let plugins = plugins
            .into_iter()
            .map(|p| (p.id().digest.clone(), p))
            .collect();
        Self {
            plugins: Arc::new(plugins),
        }
    }
}

impl Worker for InProcessWorker {
    fn run(
        &self,
        task: TaskSpec,
        progress: Arc<dyn Progress>,
    ) -> BoxFuture<'static, Result<TaskResult, TaskError>> {
        let plugins = self.plugins.clone();
        Box::pin(async move { run_task(task, &plugins, progress).await })
    }
}

async fn run_task(
    spec: TaskSpec,
    plugins: &HashMap<String, Plugin>,
    progress: Arc<dyn Progress>,
) -> Result<TaskResult, TaskError> {
    let chain_plugins: Vec<Plugin> = spec
        .steps
        .iter()
        .map(|s| {
            plugins
                .get(&s.digest)
                .cloned()
                .ok_or_else(|| TaskError::UnknownPlugin {
                    digest: s.digest.clone(),
                })
        })
        .collect::<Result<_, _>>()?;
    let input_store = store(&spec.input.store_url)?;
    let output_store = store(&spec.output.store_url)?;
    let mut skips = Skips::new();
    let mut rejected = Vec::new();
    let mut pass = 0u32;
    loop {
        let writer_attempt = spec
            .attempt
            .saturating_mul(PASSES_PER_ATTEMPT)
            .saturating_add(pass);
        let step_slots = spec.steps.iter().map(|s| s.index + 1).max().unwrap_or(0);
        let tally = Arc::new(PassTally::new(progress.clone(), spec.task, step_slots));
        let pass_progress: Arc<dyn Progress> = tally.clone();
        let outcome = run_pass(
            &spec,
            &chain_plugins,
            &input_store,
            &output_store,
            &skips,
            writer_attempt,
            &pass_progress,
        )
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                progress.report(ProgressEvent::PassDiscarded(tally.counts()));
                return Err(e);
            }
        };
        match outcome {
            Pass::Done(mut result) => {
                result.rejected = rejected;
                result.passes = pass + 1;
                // A job-scope step's task reads the job's intermediate output, not its source.
                let (input_files, input_bytes) = if spec.input.is_source {
                    (result.input_files, result.input_bytes)
                } else {
                    (0, 0)
                };
                progress.report(ProgressEvent::TaskDone {
                    task: spec.task,
                    input_files,
                    input_bytes,
                });
                return Ok(result);
            }
            Pass::Rejected {
                key,
                original_row,
                row,
            } => {
                progress.report(ProgressEvent::PassDiscarded(tally.counts()));
                let limit = spec.dead_letter.as_ref().map_or(0, |d| d.max_rows);
                if rejected.len() as u64 >= limit {
                    return Err(TaskError::TooManyRejected {
                        limit,
                        step: row.step,
                        label: row.step_label,
                        error: row.error,
                    });
                }
                tracing::info!(task = spec.task, step = row.step, error = %row.error, "row rejected; re-running the task without it");
                progress.report(ProgressEvent::RowRejected {
                    task: spec.task,
                    step: row.step,
                });
                skips.entry(key).or_default().insert(original_row);
                rejected.push(*row);
                pass += 1;
            }
        }
    }
}

/// Forwards one pass's progress and sums it, so that a discarded pass can be taken back.
struct PassTally {
    inner: Arc<dyn Progress>,
    task: u64,
    input_rows: AtomicU64,
    rows_written: AtomicU64,
    steps: Vec<(AtomicU64, AtomicU64)>,
}

impl PassTally {
    fn new(inner: Arc<dyn Progress>, task: u64, steps: usize) -> Self {
        Self {
            inner,
            task,
            input_rows: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            steps: (0..steps)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        }
    }

    fn counts(&self) -> PassCounts {
        PassCounts {
            task: self.task,
            input_rows: self.input_rows.load(Ordering::Relaxed),
            steps: self
                .steps
                .iter()
                .map(|(i, o)| (i.load(Ordering::Relaxed), o.load(Ordering::Relaxed)))
                .collect(),
            rows_written: self.rows_written.load(Ordering::Relaxed),
        }
    }
}

impl Progress for PassTally {
    fn report(&self, event: ProgressEvent) {
        match &event {
            ProgressEvent::InputRows { rows } => {
                self.input_rows.fetch_add(*rows, Ordering::Relaxed);
            }
            ProgressEvent::RowsWritten { rows } => {
                self.rows_written.fetch_add(*rows, Ordering::Relaxed);
            }
            ProgressEvent::StepRows {
                step,
                rows_in,
                rows_out,
            } => {
                if let Some((i, o)) = self.steps.get(*step) {
                    i.fetch_add(*rows_in, Ordering::Relaxed);
                    o.fetch_add(*rows_out, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        self.inner.report(event);
    }
}

fn store(url: &str) -> Result<Store, TaskError> {
    Store::from_url(url).map_err(|e| TaskError::Lake(weir_lake::Error::Store(e)))
}

enum Pass {
    Done(TaskResult),
    Rejected {
        key: (usize, u64),
        original_row: usize,
        row: Box<crate::RejectedRow>,
    },
}

/// One run of the chain over the whole input. On any failure or rejection, the files this pass
/// wrote are deleted before returning.
async fn run_pass(
    spec: &TaskSpec,
    plugins: &[Plugin],
    input_store: &Store,
    output_store: &Store,
    skips: &Skips,
    writer_attempt: u32,
    progress: &Arc<dyn Progress>,
) -> Result<Pass, TaskError> {
    let schema: SchemaRef = Arc::new(spec.input.schema.clone());
    let mut writer = PartitionedWriter::new(
        output_store.clone(),
        spec.txn.clone(),
        spec.task,
        writer_attempt,
    )
    .partition_by(spec.output.partition_by.clone())
    .target_file_size(spec.output.target_file_size);

    let (in_tx, in_rx) = mpsc::channel::<Input>(2);
    let (out_tx, mut out_rx) = mpsc::channel::<RecordBatch>(4);
    let cancelled = Arc::new(AtomicBool::new(false));

    let chain = {
        let (steps, plugins, schema) = (spec.steps.clone(), plugins.to_vec(), schema.clone());
        let (skips, dead_letter) = (skips.clone(), spec.dead_letter.is_some());
        let (progress, cancelled) = (progress.clone(), cancelled.clone());
        tokio::task::spawn_blocking(move || {
            let chain = Chain::open(&steps, &plugins, schema, skips, dead_letter, progress)?;
            chain.run(in_rx, out_tx, &cancelled)
        })
    };

    let mut input_rows = 0u64;
    let mut input_bytes = 0u64;
    let mut input_files = 0u64;
    let producer = async {
        let in_tx = in_tx;
        let result = async {
            for scan in &spec.input.scans {
                if scan.row_groups.as_ref().is_none_or(|r| r.start == 0) {
                    input_files += 1;
                    input_bytes += scan.size;
                }
                let url: Arc<str> = input_store.url_of(&scan.path).into();
                let mut batches = open_task(input_store, scan, &spec.input.projection);
                while let Some(batch) = batches.next().await {
                    let batch = conform(batch?, &schema, &url)?;
                    let rows = batch.num_rows() as u64;
                    input_rows += rows;
                    if spec.input.is_source {
                        progress.report(ProgressEvent::InputRows { rows });
                    }
                    let input = Input {
                        batch,
                        source: url.clone(),
                    };
                    if in_tx.send(input).await.is_err() {
                        // The chain stopped; its result says why.
                        return Ok(());
                    }
                }
            }
            Ok::<(), TaskError>(())
        }
        .await;
        if result.is_err() {
            cancelled.store(true, Ordering::SeqCst);
        }
        drop(in_tx);
        result
    };
    let mut rows_written = 0u64;
    let consumer = async {
        while let Some(batch) = out_rx.recv().await {
            rows_written += batch.num_rows() as u64;
            if !spec.output.intermediate {
                progress.report(ProgressEvent::RowsWritten {
                    rows: batch.num_rows() as u64,
                });
            }
            writer.write(&batch).await?;
        }
        Ok::<(), TaskError>(())
    };
    let (produced, consumed) = tokio::join!(producer, consumer);
    let chained = chain
        .await
        .map_err(|e| TaskError::Other(format!("plugin chain thread failed: {e}")))
        .and_then(|r| r);

    // The root cause first: a plugin failure explains a closed channel, not the other way round.
    let outcome = match (chained, produced, consumed) {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        (Ok(PassEnd::Cancelled), _, _) => Err(TaskError::Other(
            "plugin chain cancelled without an error".into(),
        )),
        (
            Ok(PassEnd::Rejected {
                key,
                original_row,
                row,
            }),
            _,
            _,
        ) => Ok(Pass::Rejected {
            key,
            original_row,
            row,
        }),
        (Ok(PassEnd::Done(steps)), Ok(()), Ok(())) => Ok(Pass::Done(TaskResult {
            task: spec.task,
            attempt: spec.attempt,
            input_rows,
            input_bytes,
            input_files,
            rows_written,
            steps,
            ..Default::default()
        })),
    };
    match outcome {
        Ok(Pass::Done(mut result)) => match writer.finish().await {
            Ok(files) => {
                result.bytes_written = files.iter().map(|f| f.size).sum();
                result.files = files;
                Ok(Pass::Done(result))
            }
            Err(e) => {
                abort(&mut writer).await;
                Err(e.into())
            }
        },
        other => {
            abort(&mut writer).await;
            other
        }
    }
}

async fn abort(writer: &mut PartitionedWriter) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(error = %e, "could not delete every file of a failed task");
    }
}

/// Checks a scanned batch against the planned schema (names and types) and relabels it with
/// that schema, so the plugin's IPC encoder sees one schema throughout.
fn conform(batch: RecordBatch, schema: &SchemaRef, url: &str) -> Result<RecordBatch, TaskError> {
    let drift = |reason: String| TaskError::SchemaDrift {
        file: url.to_string(),
        reason,
    };
    let got = batch.schema();
    if got.fields().len() != schema.fields().len() {
        return Err(drift(format!(
            "it has columns {}, expected {}",
            names(&got),
            names(schema)
        )));
    }
    for (have, want) in got.fields().iter().zip(schema.fields()) {
        if have.name() != want.name() || have.data_type() != want.data_type() {
            return Err(drift(format!(
                "column `{}` is {}, expected `{}` {}",
                have.name(),
                have.data_type(),
                want.name(),
                want.data_type()
            )));
        }
    }
    if got.as_ref() == schema.as_ref() {
        return Ok(batch);
    }
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| drift(e.to_string()))
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
