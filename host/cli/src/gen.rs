//! `weir gen clickstream`: a deterministic generator of realistic ad-tech events, for examples and
//! tests.
//!
//! The data set: impressions and clicks over `--days` days, as raw Parquet files laid out by
//! ingestion date (`OUT/ingest_date=YYYY-MM-DD/part-NNN.parquet`, several files per day), with
//! what makes real pipelines hard:
//! - skew: advertisers follow a Zipf law, so a few advertisers get most of the traffic;
//! - bot traffic (~6% of events) from crawler and script user agents;
//! - PII: `user_id` and `ip` identify people;
//! - at-least-once delivery: ~2% of events are delivered twice (same `event_id`), sometimes in
//!   the next file;
//! - late events: ~1% carry a timestamp up to 3 hours before their file's window, so event dates
//!   and ingestion dates differ around midnight;
//! - a buggy tracker: about one event in `--corrupt-every` carries a `cost_micros` near
//!   `i64::MAX`, which overflows downstream arithmetic.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::output::OutputFormat;
use crate::run::thousands;

#[derive(Args)]
pub struct GenCommand {
    #[command(subcommand)]
    command: GenSub,
}

#[derive(Subcommand)]
enum GenSub {
    /// Ad impressions and clicks with skewed advertisers, bots, PII and duplicates.
    Clickstream(ClickstreamArgs),
}

#[derive(Args)]
struct ClickstreamArgs {
    /// Output directory (created; must be empty unless --force).
    out: PathBuf,
    /// Events to generate (before duplicates).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Days of data.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// First day (UTC).
    #[arg(long, default_value = "2026-01-01")]
    start: NaiveDate,
    /// Files per day.
    #[arg(long, default_value_t = 4)]
    files_per_day: u32,
    /// Random seed: the same arguments give the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// About one event in this many has a corrupt cost (0: none).
    #[arg(long, default_value_t = 200_000)]
    corrupt_every: u64,
    /// Replace the Parquet files already in OUT.
    #[arg(long)]
    force: bool,
}

impl GenCommand {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        match self.command {
            GenSub::Clickstream(args) => clickstream(args, output),
        }
    }
}

const ADVERTISERS: usize = 200;
const COUNTRIES: &[(&str, u32)] = &[
    ("US", 40),
    ("DE", 10),
    ("GB", 9),
    ("FR", 8),
    ("JP", 7),
    ("BR", 6),
    ("IN", 6),
    ("CA", 5),
    ("NL", 3),
    ("SE", 2),
    ("MX", 2),
    ("AU", 2),
];
const HUMAN_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
];
/// Bot agents: each contains `bot`, `Bot` or `spider`, or starts with `python-requests` or
/// `curl/` (what the example's filter drops).
const BOT_AGENTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "python-requests/2.32.3",
    "curl/8.8.0",
];

pub fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("event_id"),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        s("event_type"),
        s("advertiser_id"),
        s("campaign_id"),
        s("user_id"),
        s("ip"),
        s("user_agent"),
        s("country"),
        s("device"),
        Field::new("cost_micros", DataType::Int64, false),
    ]))
}

#[derive(Clone)]
struct Event {
    event_id: String,
    ts: i64,
    event_type: &'static str,
    advertiser: usize,
    campaign: u32,
    user: u64,
    ip: String,
    agent: &'static str,
    country: &'static str,
    device: &'static str,
    cost: i64,
}

fn clickstream(args: ClickstreamArgs, output: OutputFormat) -> anyhow::Result<()> {
    if args.days == 0 || args.files_per_day == 0 {
        bail!("--days and --files-per-day must be at least 1");
    }
    prepare_dir(&args.out, args.force)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    // Zipf(1.1) over advertisers: a few very hot ones.
    let weights: Vec<f64> = (1..=ADVERTISERS)
        .map(|i| 1.0 / (i as f64).powf(1.1))
        .collect();
    let cdf = cumulative(&weights);
    let country_cdf = cumulative(&COUNTRIES.iter().map(|c| c.1 as f64).collect::<Vec<_>>());
    let users = (args.rows / 20).max(100);
    let bot_users: Vec<u64> = (0..20).map(|_| rng.random_range(0..users)).collect();

    let chunks = u64::from(args.days) * u64::from(args.files_per_day);
    let window_us = 86_400_000_000i64 / i64::from(args.files_per_day);
    let start_us = args
        .start
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or_default();
    let mut carry: Vec<Event> = Vec::new();
    let (mut files, mut total_rows, mut bytes, mut duplicates, mut corrupt) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for chunk in 0..chunks {
        let n = args.rows / chunks + u64::from(chunk < args.rows % chunks);
        let window_start = start_us + chunk as i64 * window_us;
        let mut events: Vec<Event> = std::mem::take(&mut carry);
        for _ in 0..n {
            let mut ts = window_start + rng.random_range(0..window_us);
            if rng.random_bool(0.01) {
                ts = window_start - rng.random_range(0..3 * 3_600_000_000i64);
            }
            let advertiser = sample(&cdf, rng.random::<f64>());
            let is_bot = rng.random_bool(0.06);
            let user = if is_bot {
                bot_users[rng.random_range(0..bot_users.len())]
            } else {
                rng.random_range(0..users)
            };
            let click = rng.random_bool(if is_bot { 0.10 } else { 0.04 });
            let mut cost = if click {
                rng.random_range(100_000..3_000_000)
            } else {
                rng.random_range(500..5_000)
            };
            if args.corrupt_every > 0 && rng.random_range(0..args.corrupt_every) == 0 {
                cost = i64::MAX - rng.random_range(0..1_000_000);
                corrupt += 1;
            }
            let event = Event {
                event_id: format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()),
                ts,
                event_type: if click { "click" } else { "impression" },
                advertiser,
                campaign: rng.random_range(0..(advertiser as u32 % 5 + 1)),
                user,
                ip: format!(
                    "{}.{}.{}.{}",
                    rng.random_range(1..224),
                    rng.random_range(0..256),
                    rng.random_range(0..256),
                    rng.random_range(1..255)
                ),
                agent: if is_bot {
                    BOT_AGENTS[rng.random_range(0..BOT_AGENTS.len())]
                } else {
                    HUMAN_AGENTS[rng.random_range(0..HUMAN_AGENTS.len())]
                },
                country: COUNTRIES[sample(&country_cdf, rng.random::<f64>())].0,
                device: ["mobile", "mobile", "desktop", "tablet"][rng.random_range(0..4)],
                cost,
            };
            if rng.random_bool(0.02) {
                duplicates += 1;
                if rng.random_bool(0.5) || chunk + 1 == chunks {
                    events.push(event.clone());
                } else {
                    carry.push(event.clone());
                }
            }
            events.push(event);
        }
        events.sort_by_key(|e| e.ts);
        let day = args.start + chrono::Days::new(chunk / u64::from(args.files_per_day));
        let dir = args.out.join(format!("ingest_date={day}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!(
            "part-{:03}.parquet",
            chunk % u64::from(args.files_per_day)
        ));
        bytes += write_file(&path, &events)?;
        files += 1;
        total_rows += events.len() as u64;
    }
    match output {
        OutputFormat::Json => println!(
            "{}",
            json!({"out": args.out, "files": files, "rows": total_rows, "bytes": bytes,
                   "duplicates": duplicates, "corrupt": corrupt, "days": args.days})
        ),
        OutputFormat::Text => println!(
            "wrote {} rows ({} duplicate deliveries, {} corrupt costs) in {files} files, {} MiB, to {}",
            thousands(total_rows),
            thousands(duplicates),
            corrupt,
            bytes >> 20,
            args.out.display()
        ),
    }
    Ok(())
}

fn prepare_dir(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() {
        let has_files = std::fs::read_dir(out)?.next().is_some();
        if has_files && !force {
            bail!(
                "{} is not empty; pass --force to replace the data in it",
                out.display()
            );
        }
        if has_files {
            for entry in std::fs::read_dir(out)? {
                let path = entry?.path();
                let is_partition = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ingest_date="));
                if is_partition {
                    std::fs::remove_dir_all(&path)
                        .with_context(|| format!("removing {}", path.display()))?;
                }
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

fn cumulative(weights: &[f64]) -> Vec<f64> {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

fn sample(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

fn write_file(path: &Path, events: &[Event]) -> anyhow::Result<u64> {
    let strings = |f: &dyn Fn(&Event) -> String| -> ArrayRef {
        Arc::new(events.iter().map(|e| Some(f(e))).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|e| e.event_id.clone()),
        Arc::new(
            TimestampMicrosecondArray::from(events.iter().map(|e| e.ts).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        strings(&|e| e.event_type.to_string()),
        strings(&|e| format!("adv-{:04}", e.advertiser + 1)),
        strings(&|e| format!("cmp-{:04}-{}", e.advertiser + 1, e.campaign)),
        strings(&|e| format!("u-{:010}", e.user)),
        strings(&|e| e.ip.clone()),
        strings(&|e| e.agent.to_string()),
        strings(&|e| e.country.to_string()),
        strings(&|e| e.device.to_string()),
        Arc::new(Int64Array::from(
            events.iter().map(|e| e.cost).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema(), columns)?;
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(65_536))
        .build();
    let mut writer = ArrowWriter::try_new(file, schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(std::fs::metadata(path)?.len())
}
