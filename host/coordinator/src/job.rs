//! The job: planning, the task and job stages, retries, the commit, and cleanup on failure.

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::ObjectStoreExt;
use tokio::task::JoinSet;
use weir_lake::{FilterOp, PartitionFilter, Projection, Scan, ScanTask, WrittenFile};
use weir_manifest::{AddFile, Lease, Mode, StagedAdds, Table, TableSchema, partition_path};
use weir_pipeline::{FilterValue, Pipeline, Scope, SinkMode, SourceKind};
use weir_runtime::{Limits, Plugin, Runtime, RuntimeConfig};
use weir_store::Store;
use weir_worker::{
    DeadLetterPolicy, InProcessWorker, NoProgress, OutputSpec, Progress, StepSpec, TaskError,
    TaskInput, TaskResult, TaskSpec, Worker,
};

use crate::report::{InputReport, JobReport, JobStatus, OutputReport, StepReport};
use crate::{JobError, quarantine};

/// Called once planning is done.
type PlanHook = Box<dyn FnOnce(&Plan) + Send + Sync>;

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A pipeline run. Configure with the builder methods, then `.await` it (or call
/// [`Job::plan`] to validate without running).
#[must_use = "a job does nothing until awaited"]
pub struct Job {
    pipeline: Pipeline,
    run_id: Option<i64>,
    parallelism: Option<usize>,
    progress: Arc<dyn Progress>,
    cache_dir: Option<PathBuf>,
    worker: Option<Arc<dyn Worker>>,
    on_plan: Option<PlanHook>,
}

/// What planning found: enough to show what a run would do.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub job: String,
    pub source: String,
    /// `table` or `files`.
    pub source_kind: String,
    /// The columns read from the source (after projection pushdown).
    pub columns: Vec<String>,
    pub input_files: u64,
    pub input_bytes: u64,
    pub tasks: u64,
    pub steps: Vec<PlannedStep>,
    /// The sink's row schema, as `name: type` strings.
    pub output_schema: Vec<String>,
    pub sink: String,
    pub sink_exists: bool,
    pub partition_by: Vec<String>,
    pub parallelism: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PlannedStep {
    pub index: usize,
    pub label: String,
    pub plugin: String,
    pub digest: String,
    pub scope: String,
    pub output_columns: usize,
}

/// Everything planning resolves, kept for running.
struct Prepared {
    plan: Plan,
    plugins: Vec<Plugin>,
    labels: Vec<String>,
    /// Index of the first job-scope step (= steps.len() when none).
    split: usize,
    scan_store: Store,
    scan_tasks: Vec<ScanTask>,
    projection: Projection,
    source_schema: SchemaRef,
    /// The schema the job stage reads (the staged task-stage output), if there is a job stage.
    staged_schema: Option<SchemaRef>,
    output_schema: SchemaRef,
    sink_store: Store,
    sink_table: Option<Table>,
    parallelism: usize,
}

impl Job {
    pub fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline,
            run_id: None,
            parallelism: None,
            progress: Arc::new(NoProgress),
            cache_dir: None,
            worker: None,
            on_plan: None,
        }
    }

    /// The run id (default: the current time in milliseconds). Must grow from run to run: a
    /// sink that already holds this run of the job, or a later one, is left alone.
    pub fn run_id(mut self, run: i64) -> Self {
        self.run_id = Some(run);
        self
    }

    /// Tasks at once (overrides the spec; default one per core).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = Some(n.max(1));
        self
    }

    /// Receives progress from every task.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Caches compiled plugins here (must be private to this user).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Runs tasks on this worker instead of an in-process one over the job's plugins.
    pub fn worker(mut self, worker: Arc<dyn Worker>) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Called once planning is done, before any task runs (e.g. to size progress bars).
    pub fn on_plan(mut self, f: impl FnOnce(&Plan) + Send + Sync + 'static) -> Self {
        self.on_plan = Some(Box::new(f));
        self
    }

    /// Validates the pipeline against its plugins, source and sink without running it.
    pub async fn plan(self) -> Result<Plan, JobError> {
        Ok(self.prepare().await?.plan)
    }

    fn parallelism_value(&self) -> usize {
        self.parallelism
            .or(self.pipeline.spec.limits.parallelism)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
            .max(1)
    }

    async fn prepare(&self) -> Result<Prepared, JobError> {
        let p = &self.pipeline;
        let spec = &p.spec;
        let parallelism = self.parallelism_value();

        // Plugins.
        let mut limits = Limits::default();
        if let Some(m) = spec.limits.memory {
            limits.memory_bytes = m.0 as usize;
        }
        if let Some(d) = spec.limits.batch_cpu {
            limits.batch_cpu = d.0;
        }
        if let Some(d) = spec.limits.task_cpu {
            limits.task_cpu = d.0;
        }
        let config = RuntimeConfig {
            limits,
            cache_dir: self.cache_dir.clone(),
            max_instances: (parallelism * (p.steps.len() + 1) + 4).min(1000) as u32,
            ..RuntimeConfig::default()
        };
        let steps = p.steps.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<Vec<Plugin>, JobError> {
            let runtime = Runtime::new(config).map_err(|e| JobError::Other(e.to_string()))?;
            let mut plugins = Vec::new();
            for step in &steps {
                let plugin = runtime
                    .load_file(&step.path)
                    .map_err(|error| JobError::Plugin {
                        step: step.index,
                        label: step.label.clone(),
                        error: Box::new(error),
                    })?;
                if plugin.id().digest != step.digest {
                    return Err(JobError::Config(format!(
                        "step {} ({}): {} changed while loading (digest sha256:{}, validated as sha256:{})",
                        step.index,
                        step.label,
                        step.path.display(),
                        plugin.id().digest,
                        step.digest
                    )));
                }
                plugins.push(plugin);
            }
            Ok(plugins)
        })
        .await
        .map_err(|e| JobError::Other(format!("loading plugins: {e}")))??;
        let labels: Vec<String> = p
            .steps
            .iter()
            .zip(&loaded)
            .map(|(s, plugin)| {
                if s.has_name {
                    s.label.clone()
                } else {
                    plugin.id().name.clone()
                }
            })
            .collect();
        let split = p
            .steps
            .iter()
            .position(|s| s.scope == Scope::Job)
            .unwrap_or(p.steps.len());

        // Source.
        let scan_store = Store::from_url(&p.source_url)
            .map_err(|e| JobError::Config(format!("source.url {:?}: {e}", p.spec.source.url)))?;
        let is_table = match spec.source.kind {
            SourceKind::Table => true,
            SourceKind::Files => false,
            SourceKind::Auto => {
                let (dirs, files) = scan_store
                    .list_dir("_delta_log")
                    .await
                    .map_err(|e| JobError::Source(e.into()))?;
                !(dirs.is_empty() && files.is_empty())
            }
        };
        let mut scan = Scan::new(scan_store.clone());
        if is_table {
            let table =
                Table::open(scan_store.clone())
                    .await
                    .map_err(|error| JobError::Manifest {
                        context: format!("opening the source table {}", p.source_url),
                        error,
                    })?;
            let snapshot = table.snapshot();
            let entries = snapshot
                .files()
                .map(|add| weir_lake::FileEntry {
                    path: add.path.clone(),
                    size: add.size.max(0) as u64,
                    partition_values: add.partition_values.clone(),
                })
                .collect();
            scan = scan.files(entries);
            for column in snapshot.partition_columns() {
                if let Some(field) = snapshot.schema().field(column) {
                    scan = scan.partition_type(column.clone(), field.data_type.to_arrow());
                }
            }
        } else {
            scan = scan.prefix("");
        }
        for f in &spec.source.filter {
            let values: Vec<String> = match &f.value {
                None => vec![],
                Some(FilterValue::One(v)) => vec![v.to_partition_string()],
                Some(FilterValue::Many(vs)) => vs.iter().map(|v| v.to_partition_string()).collect(),
            };
            let op = match f.op {
                weir_pipeline::FilterOp::Eq => FilterOp::Eq,
                weir_pipeline::FilterOp::Ne => FilterOp::Ne,
                weir_pipeline::FilterOp::Lt => FilterOp::Lt,
                weir_pipeline::FilterOp::Le => FilterOp::Le,
                weir_pipeline::FilterOp::Gt => FilterOp::Gt,
                weir_pipeline::FilterOp::Ge => FilterOp::Ge,
                weir_pipeline::FilterOp::In => FilterOp::In,
                weir_pipeline::FilterOp::IsNull => FilterOp::IsNull,
                weir_pipeline::FilterOp::IsNotNull => FilterOp::IsNotNull,
            };
            scan = scan.filter(PartitionFilter {
                column: f.column.clone(),
                op,
                values,
            });
        }
        if let Some(n) = spec.source.batch_size {
            scan = scan.batch_size(n);
        }
        if let Some(s) = spec.source.split_size {
            scan = scan.split_bytes(s.0);
        }
        let full_schema = scan.schema().await.map_err(|e| match e {
            weir_lake::Error::Schema { reason, .. } if reason.contains("no files") => {
                JobError::Config(format!(
                    "source.url: {} holds no Parquet files",
                    p.source_url
                ))
            }
            weir_lake::Error::InvalidPartition { partition, reason } => {
                JobError::Config(format!("source.filter: partition {partition}: {reason}"))
            }
            other => JobError::Source(other),
        })?;

        // Projection pushdown: the first step's declared input columns.
        let mut columns: Vec<String> = match &spec.source.columns {
            Some(c) => c.clone(),
            None => full_schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        };
        for c in &columns {
            if full_schema.field_with_name(c).is_err() {
                return Err(JobError::Config(format!(
                    "source.columns: column `{c}` is not in the source (it has {})",
                    names(&full_schema)
                )));
            }
        }
        if let (Some(first), Some(plugin)) = (p.steps.first(), loaded.first()) {
            let (plugin, config) = (plugin.clone(), first.config.clone());
            let offered = Arc::new(Schema::new(
                columns
                    .iter()
                    .filter_map(|c| full_schema.field_with_name(c).ok().cloned())
                    .collect::<Vec<_>>(),
            ));
            // The step needs the columns it reads and those it passes through (an output column
            // named like an input column it does not read is that column, passed through).
            let wanted = tokio::task::spawn_blocking(move || {
                let mut instance = plugin.instantiate().map_err(Box::new)?;
                let Some(mut reads) = instance.input_columns(&config).map_err(Box::new)? else {
                    return Ok(None);
                };
                // A step that cannot open here fails again, with its error, when the chain opens.
                let Ok(output) = instance.open(&config, offered.clone()) else {
                    return Ok(None);
                };
                for field in offered.fields() {
                    if output.field_with_name(field.name()).is_ok() && !reads.contains(field.name())
                    {
                        reads.push(field.name().clone());
                    }
                }
                Ok(Some(reads))
            })
            .await
            .map_err(|e| JobError::Other(e.to_string()))?
            .map_err(|error| JobError::Plugin {
                step: 0,
                label: labels[0].clone(),
                error,
            })?;
            if let Some(wanted) = wanted {
                if let Some(missing) = wanted.iter().find(|c| !columns.contains(c)) {
                    return Err(JobError::Config(format!(
                        "step 0 ({}) reads column `{missing}`, which the source does not provide (columns: {})",
                        labels[0],
                        columns.join(", ")
                    )));
                }
                columns = wanted;
            }
        }
        scan = scan.columns(columns.clone());
        let source_schema = scan.schema().await.map_err(JobError::Source)?;
        let scan_plan = scan.plan().await.map_err(JobError::Source)?;

        // Open the chain once to learn and check every schema.
        let (staged_schema, output_schema, output_columns) = {
            let (plugins, steps, labels) = (loaded.clone(), p.steps.clone(), labels.clone());
            let source_schema = source_schema.clone();
            tokio::task::spawn_blocking(move || -> Result<_, JobError> {
                let mut schema = source_schema;
                let mut staged = None;
                let mut widths = Vec::new();
                for (i, (step, plugin)) in steps.iter().zip(&plugins).enumerate() {
                    if i == split && i > 0 {
                        schema = normalized(&schema);
                        staged = Some(schema.clone());
                    }
                    let fail = |error| JobError::Plugin {
                        step: i,
                        label: labels[i].clone(),
                        error: Box::new(error),
                    };
                    let mut instance = plugin.instantiate().map_err(fail)?;
                    schema = instance.open(&step.config, schema).map_err(fail)?;
                    widths.push(schema.fields().len());
                }
                Ok((staged, schema, widths))
            })
            .await
            .map_err(|e| JobError::Other(e.to_string()))??
        };

        // Sink.
        check_partitioning(&output_schema, &spec.sink.partition_by)?;
        let sink_store = Store::from_url(&p.sink_url)
            .map_err(|e| JobError::Config(format!("sink.url {:?}: {e}", spec.sink.url)))?;
        let sink_table = match Table::open(sink_store.clone()).await {
            Ok(table) => Some(table),
            Err(weir_manifest::Error::NotATable { .. }) => None,
            Err(error) => {
                return Err(JobError::Manifest {
                    context: format!("opening the sink table {}", p.sink_url),
                    error,
                });
            }
        };
        if let Some(table) = &sink_table {
            let snapshot = table.snapshot();
            if snapshot.partition_columns() != spec.sink.partition_by.as_slice() {
                return Err(JobError::Config(format!(
                    "sink.partition_by is [{}], but the table {} is partitioned by [{}]",
                    spec.sink.partition_by.join(", "),
                    p.sink_url,
                    snapshot.partition_columns().join(", ")
                )));
            }
            let write = table_schema(&output_schema)?;
            snapshot
                .schema()
                .check_write(&write, false)
                .map_err(|error| JobError::Manifest {
                    context: format!("the output does not fit the sink table {}", p.sink_url),
                    error,
                })?;
        } else {
            table_schema(&output_schema)?;
        }

        let mut input_files = BTreeSet::new();
        let mut input_bytes = 0;
        for t in &scan_plan.tasks {
            if input_files.insert(t.path.clone()) {
                input_bytes += t.size;
            }
        }
        let plan = Plan {
            job: spec.name.clone(),
            source: p.source_url.clone(),
            source_kind: if is_table { "table" } else { "files" }.into(),
            columns,
            input_files: input_files.len() as u64,
            input_bytes,
            tasks: scan_plan.tasks.len() as u64,
            steps: p
                .steps
                .iter()
                .zip(&loaded)
                .zip(&output_columns)
                .map(|((s, plugin), width)| PlannedStep {
                    index: s.index,
                    label: labels[s.index].clone(),
                    plugin: format!("{} {}", plugin.id().name, plugin.id().version),
                    digest: plugin.id().digest.clone(),
                    scope: match s.scope {
                        Scope::Task => "task".into(),
                        Scope::Job => "job".into(),
                    },
                    output_columns: *width,
                })
                .collect(),
            output_schema: output_schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect(),
            sink: p.sink_url.clone(),
            sink_exists: sink_table.is_some(),
            partition_by: spec.sink.partition_by.clone(),
            parallelism,
        };
        Ok(Prepared {
            plan,
            plugins: loaded,
            labels,
            split,
            scan_store,
            scan_tasks: scan_plan.tasks,
            projection: scan_plan.projection,
            source_schema,
            staged_schema,
            output_schema,
            sink_store,
            sink_table,
            parallelism,
        })
    }

    async fn run(mut self) -> Result<JobReport, JobError> {
        let started = Instant::now();
        let prepared = self.prepare().await?;
        if let Some(f) = self.on_plan.take() {
            f(&prepared.plan);
        }
        let p = &self.pipeline;
        let spec = &p.spec;
        let run = self
            .run_id
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let job = spec.name.clone();

        let mut report = JobReport {
            job: job.clone(),
            run_id: run,
            status: JobStatus::Committed,
            txn_id: String::new(),
            source: p.source_url.clone(),
            sink: p.sink_url.clone(),
            input: InputReport::default(),
            steps: p
                .steps
                .iter()
                .zip(&prepared.plugins)
                .map(|(s, plugin)| StepReport {
                    index: s.index,
                    label: prepared.labels[s.index].clone(),
                    plugin: format!("{} {}", plugin.id().name, plugin.id().version),
                    digest: plugin.id().digest.clone(),
                    scope: match s.scope {
                        Scope::Task => "task".into(),
                        Scope::Job => "job".into(),
                    },
                    ..Default::default()
                })
                .collect(),
            output: OutputReport::default(),
            quarantined_rows: 0,
            quarantine_table: p.dead_letter_url.clone(),
            quarantine_version: None,
            commit_version: None,
            files_removed: 0,
            tasks: 0,
            retries: 0,
            parallelism: prepared.parallelism,
            wall_ms: 0,
        };

        // A run the sink already holds is done.
        if let Some(table) = &prepared.sink_table {
            let snapshot = table.snapshot();
            if snapshot.app_version(&job).is_some_and(|v| v >= run) {
                report.status = JobStatus::AlreadyCommitted;
                report.commit_version = Some(snapshot.version());
                report.wall_ms = started.elapsed().as_millis() as u64;
                return Ok(report);
            }
        }

        // The transaction: registered with the table when it exists (so vacuum spares our
        // files); for a table this run creates, a fresh id.
        let txn = match &prepared.sink_table {
            Some(table) => Some(table.begin_transaction().job(job.clone()).await.map_err(
                |error| JobError::Manifest {
                    context: format!("starting a transaction on {}", p.sink_url),
                    error,
                },
            )?),
            None => None,
        };
        let txn_id = txn
            .as_ref()
            .map(|t| t.id().to_string())
            .unwrap_or_else(fresh_txn_id);
        report.txn_id = txn_id.clone();

        let worker: Arc<dyn Worker> = match &self.worker {
            Some(w) => w.clone(),
            None => Arc::new(InProcessWorker::new(prepared.plugins.iter().cloned())),
        };
        // The sink files' adds are staged with the transaction as tasks finish, so the commit
        // at the end is O(1) (see weir_manifest::StagedAdds).
        let mut adds = match &txn {
            Some(txn) => Some(txn.stage().await.map_err(|error| JobError::Manifest {
                context: format!("staging the commit to {}", p.sink_url),
                error,
            })?),
            None => None,
        };
        let mut written: Vec<WrittenFile> = Vec::new();
        let mut staged: Vec<WrittenFile> = Vec::new();
        let staging_url = format!(
            "{}/_weir/staging/{txn_id}",
            prepared.sink_store.url().as_str().trim_end_matches('/')
        );
        let result = self
            .execute(
                &prepared,
                &worker,
                run,
                &txn_id,
                &staging_url,
                &mut report,
                &mut written,
                &mut staged,
                adds.as_mut(),
            )
            .await;
        // Staged files are intermediate either way.
        delete_files(&staging_url, &staged).await;
        let outcome = match result {
            Ok(rejected) => {
                self.commit(
                    &prepared,
                    run,
                    &txn_id,
                    txn.as_ref(),
                    &written,
                    &mut adds,
                    rejected,
                    &mut report,
                )
                .await
            }
            Err(e) => Err(e),
        };
        // Staged adds the commit did not take (a failure, or nothing to commit) are abandoned.
        if let Some(adds) = adds
            && let Err(e) = adds.abort().await
        {
            tracing::warn!(error = %e, "cannot remove the staged commit body; vacuum will");
        }
        if let Err(e) = outcome {
            delete_files(prepared.sink_store.url().as_str(), &written).await;
            if let Some(txn) = txn {
                let _ = txn.finish().await;
            }
            return Err(e);
        }
        if let Some(txn) = txn {
            // Already removed by a commit made with it; removing it again is harmless.
            let _ = txn.finish().await;
        }
        report.wall_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Runs both stages; fills `written` with the sink files (even on failure, for cleanup).
    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        prepared: &Prepared,
        worker: &Arc<dyn Worker>,
        run: i64,
        txn_id: &str,
        staging_url: &str,
        report: &mut JobReport,
        written: &mut Vec<WrittenFile>,
        staged: &mut Vec<WrittenFile>,
        mut adds: Option<&mut StagedAdds>,
    ) -> Result<Vec<weir_worker::RejectedRow>, JobError> {
        let p = &self.pipeline;
        let spec = &p.spec;
        let step_specs: Vec<StepSpec> = p
            .steps
            .iter()
            .map(|s| StepSpec {
                index: s.index,
                label: prepared.labels[s.index].clone(),
                digest: s.digest.clone(),
                config: s.config.clone(),
            })
            .collect();
        let sink_output = OutputSpec {
            store_url: prepared.sink_store.url().to_string(),
            partition_by: spec.sink.partition_by.clone(),
            target_file_size: spec
                .sink
                .target_file_size
                .map_or(weir_lake::DEFAULT_TARGET_FILE_SIZE, |s| s.0),
            intermediate: false,
        };
        let dead_letter = spec.dead_letter.as_ref().map(|d| DeadLetterPolicy {
            max_rows: d.max_rows,
        });
        let has_job_stage = prepared.split < p.steps.len();
        let task_stage_runs = !has_job_stage || prepared.split > 0;
        let base = TaskSpec {
            job: spec.name.clone(),
            run,
            txn: txn_id.to_string(),
            task: 0,
            attempt: 0,
            input: TaskInput {
                store_url: prepared.scan_store.url().to_string(),
                scans: Vec::new(),
                projection: prepared.projection.clone(),
                schema: prepared.source_schema.as_ref().clone(),
                is_source: true,
            },
            steps: Vec::new(),
            output: sink_output.clone(),
            dead_letter,
        };
        let mut rejected = Vec::new();
        let mut next_task = 0u64;

        if task_stage_runs {
            let output = if has_job_stage {
                OutputSpec {
                    store_url: staging_url.to_string(),
                    partition_by: Vec::new(),
                    target_file_size: sink_output.target_file_size,
                    intermediate: true,
                }
            } else {
                sink_output.clone()
            };
            let tasks: Vec<TaskSpec> = prepared
                .scan_tasks
                .iter()
                .map(|scan| {
                    let mut t = base.clone();
                    t.task = next_task;
                    next_task += 1;
                    t.input.scans = vec![scan.clone()];
                    t.steps = step_specs[..prepared.split].to_vec();
                    t.output = output.clone();
                    t
                })
                .collect();
            let (sink, adds) = if has_job_stage {
                (&mut *staged, None)
            } else {
                (&mut *written, adds.as_deref_mut())
            };
            let results = self
                .run_tasks(worker, tasks, prepared.parallelism, sink, adds, report)
                .await?;
            for r in results {
                absorb(report, &r, true);
                rejected.extend(r.rejected);
            }
        }
        if has_job_stage {
            let mut t = base.clone();
            t.task = next_task;
            t.steps = step_specs[prepared.split..].to_vec();
            if task_stage_runs {
                let schema = prepared
                    .staged_schema
                    .clone()
                    .unwrap_or_else(|| prepared.source_schema.clone());
                t.input = TaskInput {
                    store_url: staging_url.to_string(),
                    scans: staged
                        .iter()
                        .map(|f| ScanTask {
                            path: f.path.clone(),
                            size: f.size,
                            partition_values: Default::default(),
                            row_groups: None,
                        })
                        .collect(),
                    projection: Projection {
                        columns: None,
                        partition_columns: Vec::new(),
                        batch_size: prepared.projection.batch_size,
                    },
                    schema: schema.as_ref().clone(),
                    is_source: false,
                };
            } else {
                t.input.scans = prepared.scan_tasks.clone();
            }
            let results = self
                .run_tasks(worker, vec![t], 1, written, adds, report)
                .await?;
            for r in results {
                absorb(report, &r, !task_stage_runs);
                rejected.extend(r.rejected);
            }
        }
        if let Some(dl) = &spec.dead_letter
            && rejected.len() as u64 > dl.max_rows
        {
            return Err(JobError::Task {
                task: 0,
                attempts: 1,
                error: Box::new(TaskError::TooManyRejected {
                    limit: dl.max_rows,
                    step: rejected[0].step,
                    label: rejected[0].step_label.clone(),
                    error: rejected[0].error.clone(),
                }),
            });
        }
        debug_assert_eq!(
            report.output.files as usize,
            written.len(),
            "every sink file is counted once"
        );
        Ok(rejected)
    }

    /// Runs tasks on up to `parallelism` workers with retries. Successful tasks' files are
    /// appended to `files` (and staged in `adds`, if given) as they finish; after the first
    /// failure no new task starts, running ones finish (cleaning up after themselves if they
    /// fail), and the error is returned.
    async fn run_tasks(
        &self,
        worker: &Arc<dyn Worker>,
        tasks: Vec<TaskSpec>,
        parallelism: usize,
        files: &mut Vec<WrittenFile>,
        mut adds: Option<&mut StagedAdds>,
        report: &mut JobReport,
    ) -> Result<Vec<TaskResult>, JobError> {
        let max_attempts = self.pipeline.spec.limits.max_attempts.unwrap_or(3).max(1);
        let mut pending = tasks.into_iter();
        let mut running = JoinSet::new();
        let mut results = Vec::new();
        let mut failure: Option<JobError> = None;
        loop {
            while failure.is_none() && running.len() < parallelism {
                let Some(task) = pending.next() else { break };
                let (worker, progress) = (worker.clone(), self.progress.clone());
                running.spawn(run_with_retries(worker, progress, task, max_attempts));
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (retries, outcome) = match joined {
                Ok(outcome) => outcome,
                Err(e) => (0, Err(JobError::Other(format!("task runner died: {e}")))),
            };
            report.retries += retries as u64;
            match outcome {
                Ok(result) => {
                    report.tasks += 1;
                    files.extend(result.files.iter().cloned());
                    if let Some(adds) = adds.as_deref_mut()
                        && failure.is_none()
                        && let Err(error) = adds.add(result.files.iter().map(add_file)).await
                    {
                        failure = Some(JobError::Manifest {
                            context: format!("staging the files of task {}", result.task),
                            error,
                        });
                    }
                    results.push(result);
                }
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }

    /// Commits the quarantined rows, then the sink files, in one commit each.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        prepared: &Prepared,
        run: i64,
        txn_id: &str,
        txn: Option<&weir_manifest::Transaction>,
        written: &[WrittenFile],
        adds: &mut Option<StagedAdds>,
        rejected: Vec<weir_worker::RejectedRow>,
        report: &mut JobReport,
    ) -> Result<(), JobError> {
        let p = &self.pipeline;
        let spec = &p.spec;
        let job = spec.name.as_str();
        report.quarantined_rows = rejected.len() as u64;
        if !rejected.is_empty() && p.dead_letter_url.is_none() {
            return Err(JobError::Other(
                "rows were rejected but no dead_letter table is configured".into(),
            ));
        }
        if written.is_empty() && prepared.scan_tasks.is_empty() {
            report.status = JobStatus::NoInput;
            return Ok(());
        }

        let manifest = |context: String| {
            move |error: weir_manifest::Error| JobError::Manifest { context, error }
        };
        let table = match &prepared.sink_table {
            Some(t) => t.clone(),
            None => {
                let mut create = Table::create(prepared.sink_store.clone())
                    .schema(table_schema(&prepared.output_schema)?)
                    .partition_by(spec.sink.partition_by.clone())
                    .name(job);
                if let Some(owner) = &spec.sink.owner {
                    create = create.owner("*", owner);
                }
                match create.await {
                    Ok(t) => t,
                    // Created concurrently by another run: use it.
                    Err(weir_manifest::Error::TableExists { .. }) => {
                        Table::open(prepared.sink_store.clone())
                            .await
                            .map_err(manifest(format!("opening {}", p.sink_url)))?
                    }
                    Err(e) => return Err(manifest(format!("creating {}", p.sink_url))(e)),
                }
            }
        };
        let columns = spec.sink.partition_by.clone();
        let mode = match spec.sink.mode {
            SinkMode::Append => Mode::Append,
            SinkMode::OverwritePartitions => Mode::OverwritePartitions,
        };
        let partitions: BTreeSet<String> = written
            .iter()
            .map(|f| partition_path(&columns, &f.partition_values))
            .collect();
        report.output.partitions = partitions.len() as u64;

        // Leases on every partition an overwrite replaces.
        let mut leases: Vec<Lease> = Vec::new();
        if mode == Mode::OverwritePartitions && !columns.is_empty() {
            for partition in &partitions {
                let mut builder = table
                    .lease(partition.clone())
                    .holder(format!("{job}-{run}"))
                    .ttl(Duration::from_secs(600));
                if let Some(owner) = &spec.sink.owner {
                    builder = builder.owner(owner.clone());
                }
                match builder.await {
                    Ok(lease) => leases.push(lease),
                    Err(e) => {
                        release(&table, &leases).await;
                        return Err(manifest(format!("leasing partition {partition}"))(e));
                    }
                }
            }
        }
        if mode == Mode::Append || columns.is_empty() {
            // Appends (and unpartitioned overwrites) take no leases; refuse a partition owned by someone else before
            // anything is committed (the commit checks again).
            let snapshot = table.snapshot();
            for partition in &partitions {
                if let Err(e) = snapshot
                    .ownership()
                    .check(partition, spec.sink.owner.as_deref())
                {
                    return Err(manifest(format!("writing partition {partition}"))(e));
                }
            }
        }
        // Quarantined rows go in just before the sink commit, once ownership and leases are
        // settled, with the same job/run txn (a retried run does not quarantine them twice).
        if let (false, Some(url)) = (rejected.is_empty(), &p.dead_letter_url) {
            match commit_quarantine(url, run, txn_id, job, &rejected).await {
                Ok(version) => report.quarantine_version = Some(version),
                Err(e) => {
                    release(&table, &leases).await;
                    return Err(e);
                }
            }
        }
        let mut builder = table.commit();
        builder = match (txn, adds.take()) {
            // The files were staged as their tasks finished.
            (Some(txn), Some(staged)) => {
                debug_assert_eq!(staged.len(), written.len(), "every sink file is staged");
                builder.transaction(txn).staged(staged)
            }
            (Some(txn), None) => builder
                .transaction(txn)
                .add_files(written.iter().map(add_file)),
            (None, _) => builder
                .txn_id(txn_id)
                .read_version(table.snapshot().version())
                .add_files(written.iter().map(add_file)),
        };
        builder = builder
            .job(job, run)
            .mode(mode)
            .schema(table_schema(&prepared.output_schema)?)
            .epochs(leases.clone());
        if let Some(owner) = &spec.sink.owner {
            builder = builder.owner(owner.clone());
        }
        let outcome = builder.await;
        release(&table, &leases).await;
        let outcome = outcome.map_err(manifest(format!("committing to {}", p.sink_url)))?;
        report.commit_version = Some(outcome.version);
        report.files_removed = outcome.files_removed as u64;
        if outcome.already_committed {
            // Another process committed this run meanwhile: ours are spare copies.
            delete_files(prepared.sink_store.url().as_str(), written).await;
            report.status = JobStatus::AlreadyCommitted;
        }
        Ok(())
    }
}

impl IntoFuture for Job {
    type Output = Result<JobReport, JobError>;
    type IntoFuture = BoxFuture<'static, Result<JobReport, JobError>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The add of a written sink file.
fn add_file(f: &WrittenFile) -> AddFile {
    AddFile {
        path: f.path.clone(),
        size: f.size as i64,
        partition_values: f.partition_values.clone(),
        num_records: Some(f.num_records as i64),
        stats: f.stats.clone(),
        modification_time: None,
    }
}

async fn run_with_retries(
    worker: Arc<dyn Worker>,
    progress: Arc<dyn Progress>,
    mut task: TaskSpec,
    max_attempts: u32,
) -> (u32, Result<TaskResult, JobError>) {
    let mut attempt = 0;
    loop {
        task.attempt = attempt;
        match worker.run(task.clone(), progress.clone()).await {
            Ok(result) => return (attempt, Ok(result)),
            Err(error) if error.is_retryable() && attempt + 1 < max_attempts => {
                tracing::warn!(task = task.task, attempt, %error, "task failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
            }
            Err(error) => {
                return (
                    attempt,
                    Err(JobError::Task {
                        task: task.task,
                        attempts: attempt + 1,
                        error: Box::new(error),
                    }),
                );
            }
        }
    }
}

/// Adds a task's counters to the report. `source` says whether its input is the job's source.
fn absorb(report: &mut JobReport, result: &TaskResult, source: bool) {
    if source {
        report.input.files += result.input_files;
        report.input.rows += result.input_rows;
        report.input.bytes += result.input_bytes;
    }
    for s in &result.steps {
        if let Some(step) = report.steps.get_mut(s.index) {
            step.rows_in += s.rows_in;
            step.rows_out += s.rows_out;
            step.cpu_ms += s.cpu_ms;
        }
    }
    // Only the final stage writes to the sink; staged output has no step past it.
    let last_step = result.steps.last().map(|s| s.index + 1);
    let writes_sink = last_step.is_none_or(|n| n == report.steps.len());
    if writes_sink {
        report.output.files += result.files.len() as u64;
        report.output.rows += result.rows_written;
        report.output.bytes += result.bytes_written;
    }
}

async fn commit_quarantine(
    url: &str,
    run: i64,
    txn_id: &str,
    job: &str,
    rows: &[weir_worker::RejectedRow],
) -> Result<i64, JobError> {
    let store = Store::from_url(url)
        .map_err(|e| JobError::Config(format!("dead_letter.url {url:?}: {e}")))?;
    let manifest =
        |context: String| move |error: weir_manifest::Error| JobError::Manifest { context, error };
    let schema = table_schema(&quarantine::schema())?;
    let table =
        match Table::open(store.clone()).await {
            Ok(t) => t,
            Err(weir_manifest::Error::NotATable { .. }) => {
                match Table::create(store.clone())
                    .schema(schema.clone())
                    .name("weir quarantine")
                    .await
                {
                    Ok(t) => t,
                    Err(weir_manifest::Error::TableExists { .. }) => Table::open(store.clone())
                        .await
                        .map_err(manifest(format!("opening quarantine table {url}")))?,
                    Err(e) => return Err(manifest(format!("creating quarantine table {url}"))(e)),
                }
            }
            Err(e) => return Err(manifest(format!("opening quarantine table {url}"))(e)),
        };
    let files = quarantine::write(store.clone(), txn_id, job, run, rows)
        .await
        .map_err(|e| JobError::Other(format!("writing quarantined rows to {url}: {e}")))?;
    let outcome = table
        .commit()
        .txn_id(txn_id)
        .job(job, run)
        .mode(Mode::Append)
        .schema(schema)
        .add_files(files.iter().map(add_file))
        .await;
    match outcome {
        Ok(o) => {
            if o.already_committed {
                delete_files(store.url().as_str(), &files).await;
            }
            Ok(o.version)
        }
        Err(e) => {
            delete_files(store.url().as_str(), &files).await;
            Err(manifest(format!("committing quarantined rows to {url}"))(e))
        }
    }
}

async fn release(table: &Table, leases: &[Lease]) {
    for lease in leases {
        if let Err(e) = lease.release(table).await {
            tracing::warn!(partition = %lease.partition, error = %e, "could not release lease");
        }
    }
}

/// Deletes files (best effort; failures are logged).
async fn delete_files(root_url: &str, files: &[WrittenFile]) {
    if files.is_empty() {
        return;
    }
    let Ok(store) = Store::from_url(root_url) else {
        tracing::warn!(root_url, "cannot open store to delete files");
        return;
    };
    for f in files {
        // Keys carry hive-escaped segments verbatim; build the object path without re-escaping.
        let root = store.path("");
        let joined = std::iter::once(root.as_ref())
            .chain(f.path.split('/'))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let Ok(path) = object_store::path::Path::parse(&joined) else {
            tracing::warn!(file = %store.url_of(&f.path), "cannot delete: invalid path");
            continue;
        };
        match store.object_store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(file = %store.url_of(&f.path), error = %e, "could not delete"),
        }
    }
}

fn fresh_txn_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:016x}{:016x}", nanos as u64, rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schema as the sink writer stores it: timestamps as microseconds in UTC.
fn normalized(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(_, _) => f.as_ref().clone().with_data_type(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into()),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn table_schema(schema: &SchemaRef) -> Result<TableSchema, JobError> {
    TableSchema::from_arrow(&normalized(schema)).map_err(|e| {
        JobError::Config(format!(
            "the pipeline's output cannot be stored in a Delta table: {e}"
        ))
    })
}

fn check_partitioning(schema: &Schema, partition_by: &[String]) -> Result<(), JobError> {
    for column in partition_by {
        let Ok(field) = schema.field_with_name(column) else {
            return Err(JobError::Config(format!(
                "sink.partition_by: column `{column}` is not in the pipeline's output (it has {})",
                names(schema)
            )));
        };
        let ok = matches!(
            field.data_type(),
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Date32
                | DataType::Boolean
        );
        if !ok {
            return Err(JobError::Config(format!(
                "sink.partition_by: column `{column}` is {}, which cannot be a partition value (use a string, integer, date or boolean column)",
                field.data_type()
            )));
        }
    }
    if !partition_by.is_empty() && partition_by.len() == schema.fields().len() {
        return Err(JobError::Config(
            "sink.partition_by: every output column is a partition column; files need at least one data column".into(),
        ));
    }
    Ok(())
}
