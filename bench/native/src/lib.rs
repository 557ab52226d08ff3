//! The engine benchmark's native-Rust baseline: the same job as `weir run`, with the plugins'
//! `weir_sdk::Transform` code linked into the host instead of running as sandboxed Wasm
//! components.
//!
//! Everything else is Weir's own machinery, so the ratio to `weir run` isolates the sandbox's
//! cost: the coordinator ([`weir_coordinator::Job`]: planning, parallelism, retries, the one
//! manifest commit) and, per task, the same scan ([`weir_lake::open_task`]), the same bounded
//! channels and blocking chain thread as `weir-worker`, and the same [`PartitionedWriter`].
//! [`NativeWorker`] implements the coordinator's [`Worker`] trait; only the step calls differ
//! (a direct `process(batch)` instead of an IPC round trip into a Wasm instance).
//!
//! Not a production worker: no dead letters (a rejected row fails the task), no CPU or memory
//! limits, no sandbox. It knows the five example plugins by their component file names
//! (`weir_plugin_<name>.wasm`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use weir_lake::{PartitionedWriter, open_task};
use weir_pipeline::Pipeline;
use weir_sdk::Transform;
use weir_store::Store;
use weir_worker::{Progress, ProgressEvent, StepStats, TaskError, TaskResult, TaskSpec, Worker};

/// A transform instance behind a trait object.
trait Step: Send {
    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, weir_sdk::Error>;
    fn finish(&mut self) -> Result<Vec<RecordBatch>, weir_sdk::Error>;
}

impl<T: Transform + Send> Step for T {
    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, weir_sdk::Error> {
        Transform::process(self, batch)
    }
    fn finish(&mut self) -> Result<Vec<RecordBatch>, weir_sdk::Error> {
        Transform::finish(self)
    }
}

/// Opens a transform from its JSON config on an input schema; returns it and its output schema.
type Opener = fn(&str, SchemaRef) -> Result<(Box<dyn Step>, SchemaRef), weir_sdk::Error>;

fn opener<T: Transform + Send + 'static>(
    config: &str,
    input: SchemaRef,
) -> Result<(Box<dyn Step>, SchemaRef), weir_sdk::Error> {
    let transform = T::open(weir_sdk::parse_config::<T>(config)?, input)?;
    let output = transform.output_schema();
    Ok((Box::new(transform), output))
}

/// The native implementation of an example plugin, by its component's file name.
fn native_plugin(path: &Path) -> Option<(&'static str, Opener)> {
    let stem = path.file_stem()?.to_str()?;
    Some(match stem {
        "weir_plugin_filter" => ("filter", opener::<weir_plugin_filter::Filter>),
        "weir_plugin_mask" => ("mask", opener::<weir_plugin_mask::Mask>),
        "weir_plugin_derive" => ("derive", opener::<weir_plugin_derive::Derive>),
        "weir_plugin_dedupe" => ("dedupe", opener::<weir_plugin_dedupe::Dedupe>),
        "weir_plugin_rollup" => ("rollup", opener::<weir_plugin_rollup::Rollup>),
        _ => return None,
    })
}

/// Why a pipeline cannot run natively.
#[derive(Debug)]
pub struct UnknownPlugin {
    pub step: usize,
    pub label: String,
    pub path: String,
}

impl std::fmt::Display for UnknownPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "step {} ({}): {} is not one of the example plugins this baseline links natively \
             (weir_plugin_{{filter,mask,derive,dedupe,rollup}}.wasm)",
            self.step, self.label, self.path
        )
    }
}

impl std::error::Error for UnknownPlugin {}

/// Runs tasks with the plugins' Rust code linked in (see the crate docs).
#[derive(Clone)]
pub struct NativeWorker {
    /// Component digest (hex) → (plugin name, opener).
    plugins: Arc<HashMap<String, (&'static str, Opener)>>,
}

impl NativeWorker {
    /// A worker for `pipeline`'s steps; fails naming the step whose plugin it does not know.
    pub fn for_pipeline(pipeline: &Pipeline) -> Result<Self, UnknownPlugin> {
        let mut plugins = HashMap::new();
        for step in &pipeline.steps {
            let native = native_plugin(&step.path).ok_or_else(|| UnknownPlugin {
                step: step.index,
                label: step.label.clone(),
                path: step.path.display().to_string(),
            })?;
            plugins.insert(
                step.digest.trim_start_matches("sha256:").to_string(),
                native,
            );
        }
        Ok(Self {
            plugins: Arc::new(plugins),
        })
    }
}

impl Worker for NativeWorker {
    fn run(
        &self,
        task: TaskSpec,
        progress: Arc<dyn Progress>,
    ) -> BoxFuture<'static, Result<TaskResult, TaskError>> {
        let plugins = self.plugins.clone();
        Box::pin(async move { run_task(task, &plugins, progress).await })
    }
}

fn store(url: &str) -> Result<Store, TaskError> {
    Store::from_url(url).map_err(|e| TaskError::Lake(weir_lake::Error::Store(e)))
}

fn step_error(spec: &TaskSpec, i: usize, error: weir_sdk::Error) -> TaskError {
    let step = &spec.steps[i];
    TaskError::Other(format!("step {} ({}): {error}", step.index, step.label))
}

/// One task, shaped like `weir-worker`'s: an async scan feeding a blocking chain thread over a
/// channel of 2 batches, the chain feeding the writer over a channel of 4.
async fn run_task(
    spec: TaskSpec,
    plugins: &HashMap<String, (&'static str, Opener)>,
    progress: Arc<dyn Progress>,
) -> Result<TaskResult, TaskError> {
    let openers: Vec<(&'static str, Opener)> = spec
        .steps
        .iter()
        .map(|s| {
            plugins
                .get(s.digest.trim_start_matches("sha256:"))
                .copied()
                .ok_or_else(|| TaskError::UnknownPlugin {
                    digest: s.digest.clone(),
                })
        })
        .collect::<Result<_, _>>()?;
    let input_store = store(&spec.input.store_url)?;
    let output_store = store(&spec.output.store_url)?;
    let schema: SchemaRef = Arc::new(spec.input.schema.clone());
    let mut writer =
        PartitionedWriter::new(output_store, spec.txn.clone(), spec.task, spec.attempt)
            .partition_by(spec.output.partition_by.clone())
            .target_file_size(spec.output.target_file_size);

    let (in_tx, in_rx) = mpsc::channel::<RecordBatch>(2);
    let (out_tx, mut out_rx) = mpsc::channel::<RecordBatch>(4);
    let chain = {
        let (spec, schema, progress) = (spec.clone(), schema.clone(), progress.clone());
        tokio::task::spawn_blocking(move || {
            run_chain(&spec, &openers, schema, in_rx, out_tx, &*progress)
        })
    };

    let (mut input_rows, mut input_bytes, mut input_files) = (0u64, 0u64, 0u64);
    let producer = async {
        let in_tx = in_tx;
        for scan in &spec.input.scans {
            if scan.row_groups.as_ref().is_none_or(|r| r.start == 0) {
                input_files += 1;
                input_bytes += scan.size;
            }
            let mut batches = open_task(&input_store, scan, &spec.input.projection);
            while let Some(batch) = batches.next().await {
                let batch = batch?;
                // Same relabelling as the worker: batches carry the planned schema.
                let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| TaskError::SchemaDrift {
                        file: input_store.url_of(&scan.path),
                        reason: e.to_string(),
                    })?;
                input_rows += batch.num_rows() as u64;
                if spec.input.is_source {
                    progress.report(ProgressEvent::InputRows {
                        rows: batch.num_rows() as u64,
                    });
                }
                if in_tx.send(batch).await.is_err() {
                    return Ok(()); // the chain stopped; its result says why
                }
            }
        }
        Ok::<(), TaskError>(())
    };
    let mut rows_written = 0u64;
    let consumer = async {
        while let Some(batch) = out_rx.recv().await {
            rows_written += batch.num_rows() as u64;
            progress.report(ProgressEvent::RowsWritten {
                rows: batch.num_rows() as u64,
            });
            writer.write(&batch).await?;
        }
        Ok::<(), TaskError>(())
    };
    let (produced, consumed) = tokio::join!(producer, consumer);
    let chained = chain
        .await
        .map_err(|e| TaskError::Other(format!("chain thread failed: {e}")))
        .and_then(|r| r);
    let steps = match (chained, produced, consumed) {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        (Ok(steps), Ok(()), Ok(())) => Ok(steps),
    };
    let finished = match steps {
        Ok(steps) => writer
            .finish()
            .await
            .map_err(TaskError::from)
            .map(|files| (steps, files)),
        Err(e) => Err(e),
    };
    let (steps, files) = match finished {
        Ok(done) => done,
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                eprintln!("could not delete every file of a failed task: {abort}");
            }
            return Err(e);
        }
    };
    progress.report(ProgressEvent::TaskDone {
        task: spec.task,
        input_files,
        input_bytes,
    });
    Ok(TaskResult {
        task: spec.task,
        attempt: spec.attempt,
        bytes_written: files.iter().map(|f| f.size).sum(),
        files,
        input_rows,
        input_bytes,
        input_files,
        rows_written,
        steps,
        rejected: Vec::new(),
        passes: 1,
    })
}

/// The chain on its blocking thread: every batch through every step, then every step's
/// `finish` in order (its output going through the later steps).
fn run_chain(
    spec: &TaskSpec,
    openers: &[(&'static str, Opener)],
    schema: SchemaRef,
    mut input: mpsc::Receiver<RecordBatch>,
    output: mpsc::Sender<RecordBatch>,
    progress: &dyn Progress,
) -> Result<Vec<StepStats>, TaskError> {
    let mut steps: Vec<Box<dyn Step>> = Vec::with_capacity(openers.len());
    let mut stats = Vec::with_capacity(openers.len());
    let mut schema = schema;
    for (i, (name, open)) in openers.iter().enumerate() {
        let config = &spec.steps[i].config;
        let (step, out) = open(config, schema).map_err(|e| step_error(spec, i, e))?;
        steps.push(step);
        schema = out;
        stats.push(StepStats {
            index: spec.steps[i].index,
            label: spec.steps[i].label.clone(),
            plugin: format!("{name} (native)"),
            ..Default::default()
        });
    }
    let busy = vec![Duration::ZERO; steps.len()];
    let mut chain = Chain {
        spec,
        steps,
        stats,
        busy,
        output,
        progress,
    };
    while let Some(batch) = input.blocking_recv() {
        if !chain.push(0, batch)? {
            return Ok(chain.into_stats()); // the writer went away; its error explains why
        }
    }
    for i in 0..chain.steps.len() {
        let started = Instant::now();
        let result = chain.steps[i].finish();
        chain.busy[i] += started.elapsed();
        for batch in result.map_err(|e| step_error(spec, i, e))? {
            chain.stats[i].rows_out += batch.num_rows() as u64;
            if !chain.push(i + 1, batch)? {
                return Ok(chain.into_stats());
            }
        }
    }
    Ok(chain.into_stats())
}

struct Chain<'a> {
    spec: &'a TaskSpec,
    steps: Vec<Box<dyn Step>>,
    stats: Vec<StepStats>,
    /// Time inside each step (summed as durations: most calls take under a millisecond).
    busy: Vec<Duration>,
    output: mpsc::Sender<RecordBatch>,
    progress: &'a dyn Progress,
}

impl Chain<'_> {
    fn into_stats(mut self) -> Vec<StepStats> {
        for (stats, busy) in self.stats.iter_mut().zip(&self.busy) {
            stats.cpu_ms = busy.as_millis() as u64;
        }
        self.stats
    }

    /// Feeds `batch` to step `i` (the writer past the last step); false once the writer is gone.
    fn push(&mut self, i: usize, batch: RecordBatch) -> Result<bool, TaskError> {
        if i == self.steps.len() {
            return Ok(self.output.blocking_send(batch).is_ok());
        }
        let rows_in = batch.num_rows() as u64;
        let started = Instant::now();
        let result = self.steps[i].process(batch);
        self.busy[i] += started.elapsed();
        let stats = &mut self.stats[i];
        let outputs = result.map_err(|e| step_error(self.spec, i, e))?;
        let rows_out: u64 = outputs.iter().map(|b| b.num_rows() as u64).sum();
        stats.batches_in += 1;
        stats.rows_in += rows_in;
        stats.rows_out += rows_out;
        self.progress.report(ProgressEvent::StepRows {
            step: stats.index,
            rows_in,
            rows_out,
        });
        for out in outputs {
            if !self.push(i + 1, out)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
