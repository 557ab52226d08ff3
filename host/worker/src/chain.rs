//! The plugin chain of one task pass, run on a blocking thread: batches in from the scan,
//! through every step's `process`, then every step's `finish` in order, batches out to the
//! writer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::{Array, BooleanArray, RecordBatch, make_array};
use arrow_schema::{DataType, Schema, SchemaRef};
use tokio::sync::mpsc;
use weir_runtime::{ErrorKind, Plugin, PluginError, PluginInstance};

use crate::{Progress, ProgressEvent, RejectedRow, StepSpec, StepStats, TaskError};

/// Rows to drop before a step sees them: (step, batch as fed to the step) → original row
/// indices within that batch.
pub(crate) type Skips = BTreeMap<(usize, u64), BTreeSet<usize>>;

/// A batch from the scan, with the file it came from.
pub(crate) struct Input {
    pub batch: RecordBatch,
    pub source: Arc<str>,
}

/// How a pass ended.
pub(crate) enum PassEnd {
    /// Every batch went through and every step finished.
    Done(Vec<StepStats>),
    /// The pass was cancelled from outside (the scan or writer failed).
    Cancelled,
    /// A step rejected a row; re-run without it.
    Rejected {
        key: (usize, u64),
        original_row: usize,
        row: Box<RejectedRow>,
    },
}

struct StepRun {
    spec: StepSpec,
    plugin: String,
    instance: PluginInstance,
    stats: StepStats,
}

enum Stop {
    /// The writer side went away (it failed or was cancelled).
    Downstream,
    Rejected {
        key: (usize, u64),
        original_row: usize,
        row: Box<RejectedRow>,
    },
    Fail(Box<TaskError>),
}

pub(crate) struct Chain {
    steps: Vec<StepRun>,
    skips: Skips,
    dead_letter: bool,
    source: Option<Arc<str>>,
    progress: Arc<dyn Progress>,
}

impl Chain {
    /// Instantiates and opens every step on `schema`.
    pub fn open(
        specs: &[StepSpec],
        plugins: &[Plugin],
        schema: SchemaRef,
        skips: Skips,
        dead_letter: bool,
        progress: Arc<dyn Progress>,
    ) -> Result<Self, TaskError> {
        let mut steps = Vec::with_capacity(specs.len());
        let mut schema = schema;
        for (spec, plugin) in specs.iter().zip(plugins) {
            let fail = |error: PluginError| TaskError::Plugin {
                step: spec.index,
                label: spec.label.clone(),
                source_file: None,
                row: None,
                error: Box::new(error),
            };
            let mut instance = plugin.instantiate().map_err(fail)?;
            schema = instance.open(&spec.config, schema).map_err(fail)?;
            let id = plugin.id();
            steps.push(StepRun {
                spec: spec.clone(),
                plugin: id.to_string(),
                instance,
                stats: StepStats {
                    index: spec.index,
                    label: spec.label.clone(),
                    plugin: format!("{} {}", id.name, id.version),
                    ..Default::default()
                },
            });
        }
        Ok(Self {
            steps,
            skips,
            dead_letter,
            source: None,
            progress,
        })
    }

    /// Runs the pass: consumes `input` until it closes, then finishes every step.
    pub fn run(
        mut self,
        mut input: mpsc::Receiver<Input>,
        output: mpsc::Sender<RecordBatch>,
        cancelled: &AtomicBool,
    ) -> Result<PassEnd, TaskError> {
        while let Some(Input { batch, source }) = input.blocking_recv() {
            self.source = Some(source);
            match self.push(0, batch, &output) {
                Ok(()) => {}
                Err(stop) => return self.stopped(stop),
            }
        }
        drop(input);
        if cancelled.load(Ordering::SeqCst) {
            return Ok(PassEnd::Cancelled);
        }
        self.source = None;
        for i in 0..self.steps.len() {
            let step = &mut self.steps[i];
            let started = step.instance.cpu_used();
            let result = step.instance.finish();
            step.stats.cpu_ms += (step.instance.cpu_used() - started).as_millis() as u64;
            let batches = match result {
                Ok(batches) => batches,
                Err(error) => return self.stopped(self.failure(i, error, None)),
            };
            for batch in batches {
                let rows = batch.num_rows() as u64;
                self.steps[i].stats.rows_out += rows;
                self.progress.report(ProgressEvent::StepRows {
                    step: self.steps[i].spec.index,
                    rows_in: 0,
                    rows_out: rows,
                });
                if let Err(stop) = self.push(i + 1, batch, &output) {
                    return self.stopped(stop);
                }
            }
        }
        Ok(PassEnd::Done(
            self.steps.into_iter().map(|s| s.stats).collect(),
        ))
    }

    fn stopped(&self, stop: Stop) -> Result<PassEnd, TaskError> {
        match stop {
            Stop::Downstream => Ok(PassEnd::Cancelled),
            Stop::Rejected {
                key,
                original_row,
                row,
            } => Ok(PassEnd::Rejected {
                key,
                original_row,
                row,
            }),
            Stop::Fail(e) => Err(*e),
        }
    }

    /// Feeds `batch` to step `i` (or to the writer past the last step).
    fn push(
        &mut self,
        i: usize,
        batch: RecordBatch,
        output: &mpsc::Sender<RecordBatch>,
    ) -> Result<(), Stop> {
        if i == self.steps.len() {
            return output.blocking_send(batch).map_err(|_| Stop::Downstream);
        }
        let n = self.steps[i].stats.batches_in;
        self.steps[i].stats.batches_in += 1;
        let (fed, kept) = match self.skips.get(&(i, n)) {
            Some(drop) => without_rows(&batch, drop).map_err(|e| Stop::Fail(Box::new(e)))?,
            None => (batch, None),
        };
        let step = &mut self.steps[i];
        step.stats.rows_in += fed.num_rows() as u64;
        let started = step.instance.cpu_used();
        let result = step.instance.process(&fed);
        step.stats.cpu_ms += (step.instance.cpu_used() - started).as_millis() as u64;
        let outputs = match result {
            Ok(outputs) => outputs,
            Err(error) => {
                let rejected_row = match &error.kind {
                    ErrorKind::InvalidInput { row: Some(r), .. }
                        if (*r as usize) < fed.num_rows() =>
                    {
                        Some(*r as usize)
                    }
                    _ => None,
                };
                let record = rejected_row.map(|r| row_json(&fed, r));
                let (Some(r), true) = (rejected_row, self.dead_letter) else {
                    return Err(self.failure(i, error, record));
                };
                let original_row = kept.as_ref().map_or(r, |k| k[r]);
                let column = match &error.kind {
                    ErrorKind::InvalidInput { column, .. } => column.clone(),
                    _ => None,
                };
                let step = &self.steps[i];
                return Err(Stop::Rejected {
                    key: (i, n),
                    original_row,
                    row: Box::new(RejectedRow {
                        step: step.spec.index,
                        step_label: step.spec.label.clone(),
                        plugin: step.plugin.clone(),
                        error: error.kind.to_string(),
                        column,
                        source_file: self.source.as_deref().map(str::to_string),
                        batch: n,
                        row: r as u64,
                        record: record.unwrap_or_default(),
                    }),
                });
            }
        };
        let rows_in = fed.num_rows() as u64;
        let rows_out: u64 = outputs.iter().map(|b| b.num_rows() as u64).sum();
        self.steps[i].stats.rows_out += rows_out;
        self.progress.report(ProgressEvent::StepRows {
            step: self.steps[i].spec.index,
            rows_in,
            rows_out,
        });
        for out in outputs {
            self.push(i + 1, out, output)?;
        }
        Ok(())
    }

    fn failure(&self, i: usize, error: PluginError, row: Option<String>) -> Stop {
        let step = &self.steps[i];
        Stop::Fail(Box::new(TaskError::Plugin {
            step: step.spec.index,
            label: step.spec.label.clone(),
            source_file: self.source.as_deref().map(str::to_string),
            row,
            error: Box::new(error),
        }))
    }
}

/// `batch` without the rows in `drop`, and for each kept row its original index.
fn without_rows(
    batch: &RecordBatch,
    drop: &BTreeSet<usize>,
) -> Result<(RecordBatch, Option<Vec<usize>>), TaskError> {
    let mask: BooleanArray = (0..batch.num_rows())
        .map(|r| Some(!drop.contains(&r)))
        .collect();
    let kept: Vec<usize> = (0..batch.num_rows())
        .filter(|r| !drop.contains(r))
        .collect();
    let filtered = arrow_select::filter::filter_record_batch(batch, &mask)
        .map_err(|e| TaskError::Other(format!("dropping rejected rows: {e}")))?;
    Ok((filtered, Some(kept)))
}

/// Row `row` of `batch` as a JSON object (best effort).
pub(crate) fn row_json(batch: &RecordBatch, row: usize) -> String {
    let slice = utc_offsets(&batch.slice(row, 1));
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    let written = writer.write(&slice).and_then(|()| writer.finish());
    match written {
        Ok(()) => String::from_utf8_lossy(&writer.into_inner())
            .trim_end()
            .to_string(),
        Err(e) => format!("{{\"_unprintable\": {:?}}}", e.to_string()),
    }
}

/// The JSON writer understands only offset time zones (`+00:00`), not names like `UTC`:
/// relabel zoned timestamps as `+00:00` (the stored instants are UTC either way).
fn utc_offsets(batch: &RecordBatch) -> RecordBatch {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::Timestamp(unit, Some(_)) => {
                let data_type = DataType::Timestamp(*unit, Some("+00:00".into()));
                let data = column.to_data().into_builder().data_type(data_type.clone());
                match data.build() {
                    Ok(data) => {
                        fields.push(field.as_ref().clone().with_data_type(data_type));
                        columns.push(make_array(data));
                    }
                    Err(_) => {
                        fields.push(field.as_ref().clone());
                        columns.push(column.clone());
                    }
                }
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap_or_else(|_| batch.clone())
}
