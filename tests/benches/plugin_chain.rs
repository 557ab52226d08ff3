//! Benchmark: the chain filter → mask → derive over generated rows in 64k-row batches, run as Wasm
//! plugins on the host runtime and as the same transform code compiled natively into the host,
//! side by side in one run. Prints rows/s for each, the Wasm/native ratio, and the mean time to
//! instantiate a warm plugin instance.
//!
//! To show where the time goes, it then runs each plugin of the chain alone (Wasm vs native, on the
//! batches the previous steps produce) and the `echo` guest, which returns its input unchanged: its
//! time per batch is the cost of the boundary for a batch that goes in and comes back as a
//! passthrough frame (the copy in, the call, a header out).
//!
//! Times are wall time and, steadier on a shared machine, the CPU time of the one thread that runs
//! everything (Wasm included); the verdict is on wall time.
//!
//! `cargo bench -p weir-tests --bench plugin_chain` (rows: `WEIR_BENCH_ROWS`, default 10 million;
//! `WEIR_BENCH_STAGES=0` skips the per-plugin figures).
//! Targets: ratio ≥ 0.8 (aim 0.9); warm instantiation ≤ 50 µs; a cached load compiles nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use weir_plugin_derive::Derive;
use weir_plugin_filter::Filter;
use weir_plugin_mask::Mask;
use weir_runtime::{Runtime, RuntimeConfig};
use weir_sdk::{Transform, parse_config};

const BATCH_ROWS: usize = 65_536;
const FILTER: &str = r#"{"predicates": [{"column": "is_bot", "op": "eq", "value": false}]}"#;
const MASK: &str = r#"{"key": "bench-secret", "columns": {"user_id": {"method": "hash"}}}"#;
const DERIVE: &str = r#"{"columns": [
    {"name": "event_date", "date_of": "ts"},
    {"name": "country_lc", "lower": "country"},
    {"name": "cost_usd", "expr": {"op": "div", "left": "cost_micros", "right": 1000000}}
]}"#;

fn generate(rows: usize) -> Vec<RecordBatch> {
    let countries = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA"];
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let n = BATCH_ROWS.min(rows - start);
            let ids = Int64Array::from_iter_values((start..start + n).map(|i| i as i64));
            let users = StringArray::from_iter_values(
                (0..n).map(|_| format!("user-{:08}", next() % 5_000_000)),
            );
            let bots = BooleanArray::from_iter((0..n).map(|_| Some(next() % 20 == 0)));
            let ts = TimestampMicrosecondArray::from_iter_values(
                (0..n).map(|_| 1_767_225_600_000_000 + (next() % (7 * 86_400_000_000)) as i64),
            )
            .with_timezone("UTC");
            let country =
                StringArray::from_iter_values((0..n).map(|_| countries[(next() % 8) as usize]));
            let cost = Int64Array::from_iter_values((0..n).map(|_| (next() % 5_000_000) as i64));
            RecordBatch::try_from_iter([
                ("event_id", Arc::new(ids) as ArrayRef),
                ("user_id", Arc::new(users) as ArrayRef),
                ("is_bot", Arc::new(bots) as ArrayRef),
                ("ts", Arc::new(ts) as ArrayRef),
                ("country", Arc::new(country) as ArrayRef),
                ("cost_micros", Arc::new(cost) as ArrayRef),
            ])
            .unwrap()
        })
        .collect()
}

/// Wall time and the CPU time of the calling thread (everything here, Wasm included, runs on it).
/// On a shared machine the CPU time is the steadier figure: it leaves out time spent descheduled.
#[derive(Clone, Copy, Debug)]
struct Times {
    wall: Duration,
    cpu: Duration,
}

impl Times {
    const MAX: Times = Times {
        wall: Duration::MAX,
        cpu: Duration::MAX,
    };

    fn min(self, other: Times) -> Times {
        Times {
            wall: self.wall.min(other.wall),
            cpu: self.cpu.min(other.cpu),
        }
    }
}

struct Clock {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    fn stop(&self) -> Times {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu, thread_cpu()) {
            (Some(start), Some(end)) => end.saturating_sub(start),
            _ => wall,
        };
        Times { wall, cpu }
    }
}

/// This thread's time on CPU (Linux: the first field of /proc/thread-self/schedstat, in ns).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Rows out and a checksum of the output, so both runs can be checked against each other.
/// Each output batch is summed and dropped as it comes, as a writer would consume it.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    rows: usize,
    checksum: u64,
}

impl Outcome {
    fn add(&mut self, batch: RecordBatch) {
        let masked = batch
            .column_by_name("user_id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for value in masked.iter().flatten().step_by(97) {
            self.checksum = self
                .checksum
                .wrapping_mul(31)
                .wrapping_add(value.bytes().map(u64::from).sum::<u64>());
        }
        self.rows += batch.num_rows();
    }
}

fn run_native(input: &[RecordBatch]) -> (Times, Outcome) {
    let started = Clock::start();
    let schema = input[0].schema();
    let mut filter = Filter::open(parse_config::<Filter>(FILTER).unwrap(), schema).unwrap();
    let mut mask = Mask::open(parse_config::<Mask>(MASK).unwrap(), filter.output_schema()).unwrap();
    let mut derive = Derive::open(
        parse_config::<Derive>(DERIVE).unwrap(),
        mask.output_schema(),
    )
    .unwrap();
    let mut outcome = Outcome::default();
    for batch in input {
        for filtered in filter.process(batch.clone()).unwrap() {
            for masked in mask.process(filtered).unwrap() {
                for derived in derive.process(masked).unwrap() {
                    outcome.add(derived);
                }
            }
        }
    }
    (started.stop(), outcome)
}

fn run_wasm(runtime: &Runtime, paths: [&str; 3], input: &[RecordBatch]) -> (Times, Outcome) {
    let plugins: Vec<_> = paths
        .iter()
        .map(|p| runtime.load_file(p.as_ref()).unwrap())
        .collect();
    let started = Clock::start();
    let mut schema = input[0].schema();
    let mut chain = Vec::new();
    for (plugin, config) in plugins.iter().zip([FILTER, MASK, DERIVE]) {
        let mut instance = plugin.instantiate().unwrap();
        schema = instance.open(config, schema).unwrap();
        chain.push(instance);
    }
    let mut outcome = Outcome::default();
    for batch in input {
        let mut batches = vec![batch.clone()];
        for instance in &mut chain {
            batches = batches
                .iter()
                .flat_map(|b| instance.process(b).unwrap())
                .collect();
        }
        for batch in batches {
            outcome.add(batch);
        }
    }
    (started.stop(), outcome)
}

/// One plugin alone, natively: the batches it returns and the time it took.
fn stage_native<T: Transform>(config: &str, input: &[RecordBatch]) -> (Times, Vec<RecordBatch>) {
    let started = Clock::start();
    let mut transform = T::open(parse_config::<T>(config).unwrap(), input[0].schema()).unwrap();
    let mut out = Vec::with_capacity(input.len());
    for batch in input {
        out.extend(transform.process(batch.clone()).unwrap());
    }
    out.extend(transform.finish().unwrap());
    (started.stop(), out)
}

/// One plugin alone, as Wasm: the batches it returns and the time it took.
fn stage_wasm(
    runtime: &Runtime,
    path: &str,
    config: &str,
    input: &[RecordBatch],
) -> (Times, Vec<RecordBatch>) {
    let plugin = runtime.load_file(path.as_ref()).unwrap();
    let started = Clock::start();
    let mut instance = plugin.instantiate().unwrap();
    instance.open(config, input[0].schema()).unwrap();
    let mut out = Vec::with_capacity(input.len());
    for batch in input {
        out.extend(instance.process(batch).unwrap());
    }
    out.extend(instance.finish().unwrap());
    (started.stop(), out)
}

/// Best of three alternating rounds of one plugin alone; checks both give the same batches.
fn stage<T: Transform>(
    runtime: &Runtime,
    name: &str,
    path: &str,
    config: &str,
    input: &[RecordBatch],
) -> Vec<RecordBatch> {
    let rows: usize = input.iter().map(RecordBatch::num_rows).sum();
    let (mut native, mut wasm) = (Times::MAX, Times::MAX);
    let mut output = Vec::new();
    for _ in 0..3 {
        let (n, native_out) = stage_native::<T>(config, input);
        let (w, wasm_out) = stage_wasm(runtime, path, config, input);
        assert!(
            native_out == wasm_out,
            "{name}: Wasm and native outputs differ"
        );
        native = native.min(n);
        wasm = wasm.min(w);
        output = native_out;
    }
    let per_batch = |d: Duration| d.as_secs_f64() * 1e6 / input.len() as f64;
    println!(
        "  {name:<7} {rows:>9} rows in: native {:>6.0} µs/batch, wasm {:>6.0} µs/batch (+{:>6.0}), ratio {:.3} (wall {:.3})",
        per_batch(native.cpu),
        per_batch(wasm.cpu),
        per_batch(wasm.cpu) - per_batch(native.cpu),
        native.cpu.as_secs_f64() / wasm.cpu.as_secs_f64(),
        native.wall.as_secs_f64() / wasm.wall.as_secs_f64()
    );
    output
}

/// The boundary alone: the echo guest returns its input unchanged.
fn echo(runtime: &Runtime, input: &[RecordBatch], native_chain: Duration) {
    let mut wasm = Duration::MAX;
    for _ in 0..3 {
        let (w, out) = stage_wasm(runtime, weir_tests::GUESTS_ECHO, "{}", input);
        assert!(out == input, "echo changed its input");
        wasm = wasm.min(w.cpu);
    }
    let bytes: usize = input.iter().map(RecordBatch::get_array_memory_size).sum();
    let per_batch = wasm.as_secs_f64() * 1e6 / input.len() as f64;
    println!(
        "  echo    (boundary: copy in, passthrough out; {:.1} MiB/batch): {per_batch:>6.0} µs/batch, {:.2} GiB/s; {:.0}% of a native chain batch",
        bytes as f64 / input.len() as f64 / (1 << 20) as f64,
        bytes as f64 / wasm.as_secs_f64() / (1u64 << 30) as f64,
        100.0 * wasm.as_secs_f64() / native_chain.as_secs_f64()
    );
}

fn main() {
    let rows: usize = std::env::var("WEIR_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    println!("generating {rows} rows in {BATCH_ROWS}-row batches…");
    let input = generate(rows);
    let paths = [weir_tests::FILTER, weir_tests::MASK, weir_tests::DERIVE];
    if std::env::var_os("WEIR_BENCH_ECHO_ONLY").is_some() {
        // For profiling the boundary alone.
        let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
        for _ in 0..5 {
            echo(&runtime, &input, Duration::from_secs(1));
        }
        return;
    }

    // `WEIR_BENCH_CACHE_DIR` keeps compiled code across runs while profiling (then the first
    // load below compiles nothing either).
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = std::env::var_os("WEIR_BENCH_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| cache.path().to_path_buf());
    let config = || RuntimeConfig {
        cache_dir: Some(cache_dir.clone()),
        ..RuntimeConfig::default()
    };
    if let Ok(only) = std::env::var("WEIR_BENCH_PROFILE") {
        // For profiling one plugin's Wasm alone: `filter`, `mask` or `derive`, fed the output of
        // the steps before it, run a hundred times; or the Wasm `chain`, ten times.
        let runtime = Runtime::new(config()).unwrap();
        if only == "chain" {
            for _ in 0..10 {
                run_wasm(&runtime, paths, &input);
            }
            return;
        }
        let mut batches = input;
        for ((name, config), path) in [("filter", FILTER), ("mask", MASK), ("derive", DERIVE)]
            .into_iter()
            .zip(paths)
        {
            if name == only {
                for _ in 0..100 {
                    stage_wasm(&runtime, path, config, &batches);
                }
                return;
            }
            batches = stage_wasm(&runtime, path, config, &batches).1;
        }
        panic!("WEIR_BENCH_PROFILE={only}: expected filter, mask, derive or chain");
    }

    let compiling = Runtime::new(config()).unwrap();
    let started = Instant::now();
    for path in paths {
        compiling.load_file(path.as_ref()).unwrap();
    }
    let compile_time = started.elapsed();
    let runtime = Runtime::new(config()).unwrap();
    let started = Instant::now();
    for path in paths {
        runtime.load_file(path.as_ref()).unwrap();
    }
    let cached_time = started.elapsed();
    let stats = runtime.stats();

    // Warm up both, then alternate and keep each side's best round.
    let warm = &input[..input.len().min(8)];
    let (_, native_check) = run_native(warm);
    let (_, wasm_check) = run_wasm(&runtime, paths, warm);
    assert_eq!(native_check, wasm_check, "Wasm and native outputs differ");
    let mut native = Times::MAX;
    let mut wasm = Times::MAX;
    for round in 0..3 {
        let (n, native_outcome) = run_native(&input);
        let (w, wasm_outcome) = run_wasm(&runtime, paths, &input);
        assert_eq!(
            native_outcome, wasm_outcome,
            "Wasm and native outputs differ"
        );
        println!(
            "round {round}: native {:.2?} (CPU {:.2?}), wasm {:.2?} (CPU {:.2?}) ({} rows out)",
            n.wall, n.cpu, w.wall, w.cpu, native_outcome.rows
        );
        native = native.min(n);
        wasm = wasm.min(w);
    }

    if std::env::var("WEIR_BENCH_STAGES").as_deref() != Ok("0") {
        println!();
        println!(
            "each plugin alone (best of 3, thread CPU time; input = the previous steps' output):"
        );
        let filtered = stage::<Filter>(&runtime, "filter", weir_tests::FILTER, FILTER, &input);
        let masked = stage::<Mask>(&runtime, "mask", weir_tests::MASK, MASK, &filtered);
        stage::<Derive>(&runtime, "derive", weir_tests::DERIVE, DERIVE, &masked);
        echo(&runtime, &filtered, native.cpu);
    }

    let filter = runtime.load_file(weir_tests::FILTER.as_ref()).unwrap();
    for _ in 0..100 {
        drop(filter.instantiate().unwrap());
    }
    let n = 2_000;
    let started = Instant::now();
    for _ in 0..n {
        drop(filter.instantiate().unwrap());
    }
    let instantiate = started.elapsed() / n;

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let ratio = native.wall.as_secs_f64() / wasm.wall.as_secs_f64();
    let cpu_ratio = native.cpu.as_secs_f64() / wasm.cpu.as_secs_f64();
    println!();
    println!("chain filter → mask → derive, {rows} rows (best of 3):");
    println!(
        "  native: {:>12.0} rows/s ({:>12.0} per CPU second)",
        rate(native.wall),
        rate(native.cpu)
    );
    println!(
        "  wasm:   {:>12.0} rows/s ({:>12.0} per CPU second)",
        rate(wasm.wall),
        rate(wasm.cpu)
    );
    println!(
        "  wasm/native throughput ratio: {ratio:.3} (target ≥ 0.8, aim 0.9): {}; by thread CPU time: {cpu_ratio:.3}",
        verdict(ratio >= 0.8)
    );
    println!(
        "warm instantiation: {:.1} µs mean over {n} (target ≤ 50 µs): {}",
        instantiate.as_secs_f64() * 1e6,
        verdict(instantiate <= Duration::from_micros(50))
    );
    println!(
        "load: compile {compile_time:.2?} for 3 plugins; from cache {cached_time:.2?} with {} compilations, {} cache hits: {}",
        stats.compiled,
        stats.disk_cache_hits,
        verdict(stats.compiled == 0)
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}
