//! `weir pipeline`: validate a pipeline spec against its plugins, source and sink without running
//! it, and print the spec's JSON Schema.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use weir_coordinator::Job;
use weir_pipeline::{Pipeline, human_bytes};

use crate::output::OutputFormat;
use crate::run::{ExitError, cache_dir};

#[derive(Args)]
pub struct PipelineCommand {
    #[command(subcommand)]
    command: PipelineSub,
}

#[derive(Subcommand)]
enum PipelineSub {
    /// Check a spec: keys, plugin files and digests, plugin configs against the source schema,
    /// partition columns against the output schema, the sink table's schema. Reads no data.
    Validate {
        /// The pipeline spec (TOML).
        pipeline: PathBuf,
    },
    /// Print the JSON Schema of pipeline spec files.
    Schema,
}

impl PipelineCommand {
    pub async fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        match self.command {
            PipelineSub::Schema => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&weir_pipeline::json_schema())?
                );
                Ok(())
            }
            PipelineSub::Validate { pipeline } => {
                let pipeline = Pipeline::load(&pipeline)
                    .map_err(|e| anyhow::Error::new(ExitError::config(e.to_string())))?;
                let mut job = Job::new(pipeline);
                if let Some(dir) = cache_dir() {
                    job = job.cache_dir(dir);
                }
                let plan = job
                    .plan()
                    .await
                    .map_err(|e| anyhow::Error::new(ExitError::from_job(&e)))?;
                if output == OutputFormat::Json {
                    println!("{}", serde_json::to_string_pretty(&plan)?);
                    return Ok(());
                }
                println!("pipeline {} is valid", plan.job);
                println!(
                    "  source  {} ({}): {} files, {}, {} tasks",
                    plan.source,
                    plan.source_kind,
                    plan.input_files,
                    human_bytes(plan.input_bytes),
                    plan.tasks
                );
                println!("          columns: {}", plan.columns.join(", "));
                for s in &plan.steps {
                    println!(
                        "  step {}  {} ({}, sha256:{}, {} scope) → {} columns",
                        s.index,
                        s.label,
                        s.plugin,
                        &s.digest[..12],
                        s.scope,
                        s.output_columns
                    );
                }
                println!(
                    "  sink    {}{} partitioned by [{}]",
                    plan.sink,
                    if plan.sink_exists {
                        ""
                    } else {
                        " (created on first run)"
                    },
                    plan.partition_by.join(", ")
                );
                println!("          schema: {}", plan.output_schema.join(", "));
                Ok(())
            }
        }
    }
}
