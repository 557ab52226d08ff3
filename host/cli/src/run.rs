//! `weir run PIPELINE.toml`: runs a pipeline with an embedded coordinator and in-process workers
//! against the stores the spec names, and commits through the manifest. Shows progress bars on a
//! terminal and a summary table at the end (or one JSON document with `--output json`).
//!
//! Exit codes: 0 ok, 2 config error, 3 bad data, 4 plugin failure, 5 commit conflict,
//! 6 ownership/lease refused, 1 anything else. A failed run commits nothing.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use comfy_table::{Cell, CellAlignment, Table as TextTable, presets::UTF8_FULL_CONDENSED};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use weir_coordinator::{FailureKind, Job, JobError, JobReport, JobStatus, Plan};
use weir_coordinator::{Progress, ProgressEvent};
use weir_pipeline::{Pipeline, human_bytes};

use crate::output::OutputFormat;

/// An error that ends the process with a specific exit code.
#[derive(Debug)]
pub struct ExitError {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for ExitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitError {}

impl ExitError {
    pub fn from_job(e: &JobError) -> Self {
        let kind = e.kind();
        Self {
            code: kind.exit_code(),
            kind: kind_name(kind),
            message: e.to_string(),
        }
    }

    pub fn config(message: String) -> Self {
        Self {
            code: FailureKind::Config.exit_code(),
            kind: kind_name(FailureKind::Config),
            message,
        }
    }
}

fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Config => "config",
        FailureKind::BadData => "bad-data",
        FailureKind::Plugin => "plugin",
        FailureKind::Conflict => "conflict",
        FailureKind::Ownership => "ownership",
        FailureKind::Other => "other",
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline spec (TOML).
    pipeline: PathBuf,
    /// Tasks at once (default: the spec's limits.parallelism, else one per core).
    #[arg(long)]
    parallelism: Option<usize>,
    /// The run id recorded in the sink's log (default: now, in milliseconds). Re-running a
    /// committed run id is a no-op.
    #[arg(long)]
    run_id: Option<i64>,
    /// No progress bars, even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

pub async fn run(args: RunArgs, output: OutputFormat) -> anyhow::Result<()> {
    let pipeline = Pipeline::load(&args.pipeline)
        .map_err(|e| anyhow::Error::new(ExitError::config(e.to_string())))?;
    let show_bars =
        output == OutputFormat::Text && !args.no_progress && std::io::stderr().is_terminal();
    let bars = Arc::new(Bars::new(show_bars));
    let mut job = Job::new(pipeline).progress(bars.clone());
    if let Some(dir) = cache_dir() {
        job = job.cache_dir(dir);
    }
    if let Some(n) = args.parallelism {
        job = job.parallelism(n);
    }
    if let Some(run) = args.run_id {
        job = job.run_id(run);
    }
    let planned = bars.clone();
    job = job.on_plan(move |plan| planned.start(plan));
    let result = job.await;
    bars.finish();
    match result {
        Ok(report) => {
            print_report(&report, output);
            Ok(())
        }
        Err(e) => {
            let exit = ExitError::from_job(&e);
            if output == OutputFormat::Json {
                println!(
                    "{}",
                    json!({"status": "failed", "kind": exit.kind, "exit_code": exit.code, "error": exit.message})
                );
            }
            Err(anyhow::Error::new(exit))
        }
    }
}

/// Where compiled plugins are cached: `$WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir/code`,
/// else `~/.cache/weir/code`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("weir").join("code"))
}

fn print_report(report: &JobReport, output: OutputFormat) {
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    match report.status {
        JobStatus::AlreadyCommitted => {
            println!(
                "{} run {} is already committed to {} (version {}); nothing to do.",
                report.job,
                report.run_id,
                report.sink,
                report.commit_version.map_or("?".into(), |v| v.to_string())
            );
            return;
        }
        JobStatus::NoInput => {
            println!(
                "{}: the source has no input after partition filters; nothing committed.",
                report.job
            );
            return;
        }
        JobStatus::Committed => {}
    }
    let mut steps = TextTable::new();
    steps.load_preset(UTF8_FULL_CONDENSED);
    steps.set_header(vec![
        "#",
        "step",
        "plugin",
        "scope",
        "rows in",
        "rows out",
        "plugin time",
    ]);
    steps.add_row(vec![
        Cell::new(""),
        Cell::new("source"),
        Cell::new(format!("{} files", report.input.files)),
        Cell::new(""),
        Cell::new(""),
        Cell::new(thousands(report.input.rows)).set_alignment(CellAlignment::Right),
        Cell::new(""),
    ]);
    for s in &report.steps {
        steps.add_row(vec![
            Cell::new(s.index),
            Cell::new(&s.label),
            Cell::new(&s.plugin),
            Cell::new(&s.scope),
            Cell::new(thousands(s.rows_in)).set_alignment(CellAlignment::Right),
            Cell::new(thousands(s.rows_out)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}s", s.cpu_ms as f64 / 1000.0))
                .set_alignment(CellAlignment::Right),
        ]);
    }
    println!("{steps}");
    let mut summary = TextTable::new();
    summary.load_preset(UTF8_FULL_CONDENSED);
    let mut row = |k: &str, v: String| {
        summary.add_row(vec![Cell::new(k), Cell::new(v)]);
    };
    row("job / run", format!("{} / {}", report.job, report.run_id));
    row(
        "input",
        format!(
            "{} files, {} rows, {}",
            report.input.files,
            thousands(report.input.rows),
            human_bytes(report.input.bytes)
        ),
    );
    row(
        "output",
        format!(
            "{} files, {} rows, {} in {} partitions",
            report.output.files,
            thousands(report.output.rows),
            human_bytes(report.output.bytes),
            report.output.partitions
        ),
    );
    if report.quarantine_table.is_some() || report.quarantined_rows > 0 {
        row(
            "quarantined",
            format!(
                "{} rows{}",
                report.quarantined_rows,
                match (&report.quarantine_table, report.quarantine_version) {
                    (Some(url), Some(v)) => format!(" → {url} (version {v})"),
                    _ => String::new(),
                }
            ),
        );
    }
    row(
        "commit",
        format!(
            "{} version {}{}",
            report.sink,
            report.commit_version.map_or("-".into(), |v| v.to_string()),
            if report.files_removed > 0 {
                format!(" (replaced {} files)", report.files_removed)
            } else {
                String::new()
            }
        ),
    );
    row(
        "tasks",
        format!(
            "{} on {} workers, {} retries",
            report.tasks, report.parallelism, report.retries
        ),
    );
    row(
        "wall time",
        format!("{:.2}s", report.wall_ms as f64 / 1000.0),
    );
    println!("{summary}");
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Progress bars: input files, rows and bytes, and rows in/out per step.
struct Bars {
    enabled: bool,
    multi: MultiProgress,
    files: OnceLock<ProgressBar>,
    rows: OnceLock<ProgressBar>,
    steps: OnceLock<Vec<(ProgressBar, AtomicU64, AtomicU64)>>,
    written: AtomicU64,
    bytes: AtomicU64,
    total_bytes: AtomicU64,
}

impl Bars {
    fn new(enabled: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            enabled,
            multi,
            files: OnceLock::new(),
            rows: OnceLock::new(),
            steps: OnceLock::new(),
            written: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
        }
    }

    fn start(&self, plan: &Plan) {
        if !self.enabled {
            return;
        }
        let style = ProgressStyle::with_template(
            "{prefix:>12.bold} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let files = self.multi.add(ProgressBar::new(plan.input_files));
        files.set_style(style);
        files.set_prefix("input files");
        self.total_bytes.store(plan.input_bytes, Ordering::Relaxed);
        files.set_message(format!("0 B / {}", human_bytes(plan.input_bytes)));
        files.enable_steady_tick(Duration::from_millis(200));
        let _ = self.files.set(files);
        let line = ProgressStyle::with_template("{prefix:>12.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let rows = self.multi.add(ProgressBar::new_spinner());
        rows.set_style(line.clone());
        rows.set_prefix("rows");
        let _ = self.rows.set(rows);
        let steps = plan
            .steps
            .iter()
            .map(|s| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(line.clone());
                bar.set_prefix(format!("{} {}", s.index, s.label));
                bar.set_message(format!("({} scope) waiting", s.scope));
                (bar, AtomicU64::new(0), AtomicU64::new(0))
            })
            .collect();
        let _ = self.steps.set(steps);
    }

    fn finish(&self) {
        if let Some(b) = self.files.get() {
            b.finish();
        }
        if let Some(b) = self.rows.get() {
            b.finish();
        }
        for (b, _, _) in self.steps.get().into_iter().flatten() {
            b.finish();
        }
        let _ = self.multi.clear();
    }

    fn show_rows(&self, bar: &ProgressBar) {
        bar.set_message(format!(
            "{} read, {} written",
            thousands(bar.position()),
            thousands(self.written.load(Ordering::Relaxed))
        ));
    }

    /// Adds (or takes back) rows in and out of step `step`.
    fn count_step(&self, step: usize, rows_in: u64, rows_out: u64, take_back: bool) {
        let Some((bar, a, b)) = self.steps.get().and_then(|s| s.get(step)) else {
            return;
        };
        let (i, o) = if take_back {
            (
                a.fetch_sub(rows_in, Ordering::Relaxed)
                    .saturating_sub(rows_in),
                b.fetch_sub(rows_out, Ordering::Relaxed)
                    .saturating_sub(rows_out),
            )
        } else {
            (
                a.fetch_add(rows_in, Ordering::Relaxed) + rows_in,
                b.fetch_add(rows_out, Ordering::Relaxed) + rows_out,
            )
        };
        bar.set_message(format!("{} in → {} out", thousands(i), thousands(o)));
    }
}

impl Progress for Bars {
    fn report(&self, event: ProgressEvent) {
        if !self.enabled {
            return;
        }
        match event {
            ProgressEvent::InputRows { rows } => {
                if let Some(bar) = self.rows.get() {
                    bar.inc(rows);
                    self.show_rows(bar);
                }
            }
            ProgressEvent::RowsWritten { rows } => {
                self.written.fetch_add(rows, Ordering::Relaxed);
                if let Some(bar) = self.rows.get() {
                    self.show_rows(bar);
                }
            }
            ProgressEvent::StepRows {
                step,
                rows_in,
                rows_out,
            } => self.count_step(step, rows_in, rows_out, false),
            ProgressEvent::PassDiscarded(counts) => {
                // The rows are read again: what the discarded pass showed is taken back.
                self.written
                    .fetch_sub(counts.rows_written, Ordering::Relaxed);
                if let Some(bar) = self.rows.get() {
                    bar.set_position(bar.position().saturating_sub(counts.input_rows));
                    self.show_rows(bar);
                }
                for (step, &(rows_in, rows_out)) in counts.steps.iter().enumerate() {
                    if rows_in > 0 || rows_out > 0 {
                        self.count_step(step, rows_in, rows_out, true);
                    }
                }
            }
            ProgressEvent::TaskDone {
                input_files,
                input_bytes,
                ..
            } => {
                if let Some(bar) = self.files.get() {
                    bar.inc(input_files);
                    let done = self.bytes.fetch_add(input_bytes, Ordering::Relaxed) + input_bytes;
                    bar.set_message(format!(
                        "{} / {}",
                        human_bytes(done),
                        human_bytes(self.total_bytes.load(Ordering::Relaxed))
                    ));
                }
            }
            ProgressEvent::RowRejected { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
