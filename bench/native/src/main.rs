//! `weir-bench-native PIPELINE.toml`: runs a pipeline like `weir run`, with the example plugins
//! linked natively instead of sandboxed (see the `weir_bench_native` crate docs). Prints the
//! job report as JSON. Exit codes as `weir run`'s (2 config, 3 bad data, ...; 1 otherwise).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weir_bench_native::NativeWorker;
use weir_coordinator::Job;
use weir_pipeline::Pipeline;

/// The allocator `weir` ships with (host/cli/src/main.rs).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    about = "weir run, with the plugins linked natively (the benchmark's no-sandbox baseline)"
)]
struct Args {
    /// The pipeline spec (TOML).
    pipeline: PathBuf,
    /// Tasks at once (default: the spec's limits.parallelism, else one per core).
    #[arg(long)]
    parallelism: Option<usize>,
    /// The run id recorded in the sink's log (default: now, in milliseconds).
    #[arg(long)]
    run_id: Option<i64>,
}

/// The compiled-code cache `weir run` uses: planning still opens the Wasm chain once to check
/// configs and learn the output schema, so this keeps it from recompiling.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("weir").join("code"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let pipeline = match Pipeline::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let worker = match NativeWorker::for_pipeline(&pipeline) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut job = Job::new(pipeline).worker(Arc::new(worker));
    if let Some(dir) = cache_dir() {
        job = job.cache_dir(dir);
    }
    if let Some(n) = args.parallelism {
        job = job.parallelism(n);
    }
    if let Some(run) = args.run_id {
        job = job.run_id(run);
    }
    match job.await {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.kind().exit_code())
        }
    }
}
