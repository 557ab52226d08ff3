//! `weir table`: create tables and inspect their schema, log, files and partition owners, change
//! ownership, and vacuum unreferenced files. Every subcommand honours `--output json`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use comfy_table::{Table as TextTable, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};
use weir_manifest::{Ownership, Snapshot, Table, TableSchema, display_partition};
use weir_store::Store;

use crate::output::OutputFormat;

#[derive(Args)]
pub struct TableCommand {
    #[command(subcommand)]
    command: TableSub,
}

#[derive(Subcommand)]
enum TableSub {
    /// Create a table (writes log version 0).
    Create {
        /// Table location: file:///..., s3://bucket/prefix, memory://name or a local path.
        url: String,
        /// Columns as "id:long,name:string not null,dt:date", or a JSON schema file (Delta schemaString form).
        #[arg(long)]
        schema: String,
        /// Partition columns, in path order (comma-separated or repeated).
        #[arg(long = "partition-by", value_delimiter = ',')]
        partition_by: Vec<String>,
        /// Owner of the whole table (pattern `*`); refine later with `ownership set`.
        #[arg(long)]
        owner: Option<String>,
        /// Commits between Parquet checkpoints.
        #[arg(long, default_value_t = 10)]
        checkpoint_interval: u32,
        /// A display name recorded in the table metadata.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the schema, partition columns, owners, version and partitions.
    Show { url: String },
    /// Show the commit history, newest first.
    Log {
        url: String,
        /// Show at most this many commits.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// List the live data files.
    Files {
        url: String,
        /// Only files of this partition (e.g. dt=2026-01-01).
        #[arg(long)]
        partition: Option<String>,
    },
    /// Show or change partition ownership (changes are commits, audited in the log).
    Ownership {
        #[command(subcommand)]
        command: OwnershipSub,
    },
    /// Delete data files no longer referenced by the table and older than the retention period.
    Vacuum {
        url: String,
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Keep unreferenced files younger than this many hours.
        #[arg(long, default_value_t = 168.0)]
        retention_hours: f64,
    },
}

#[derive(Subcommand)]
enum OwnershipSub {
    /// Make OWNER the owner of partitions matching PATTERN (e.g. dt=2026-01-*, region=eu/*, *).
    Set {
        url: String,
        pattern: String,
        owner: String,
        /// Who makes the change (recorded in the commit).
        #[arg(long)]
        actor: Option<String>,
    },
    /// Remove the rule for PATTERN.
    Remove {
        url: String,
        pattern: String,
        #[arg(long)]
        actor: Option<String>,
    },
    /// Show the ownership rules.
    Show { url: String },
}

impl TableCommand {
    pub async fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        let text = self.execute(output).await?;
        println!("{text}");
        Ok(())
    }

    async fn execute(self, output: OutputFormat) -> anyhow::Result<String> {
        match self.command {
            TableSub::Create {
                url,
                schema,
                partition_by,
                owner,
                checkpoint_interval,
                name,
            } => {
                let schema = parse_schema(&schema)?;
                let mut builder = Table::create(open_store(&url)?)
                    .schema(schema)
                    .partition_by(partition_by)
                    .checkpoint_interval(checkpoint_interval);
                if let Some(owner) = &owner {
                    builder = builder.owner("*", owner);
                }
                if let Some(name) = name {
                    builder = builder.name(name);
                }
                let table = builder
                    .await
                    .with_context(|| format!("creating table {url}"))?;
                let snapshot = table.snapshot();
                Ok(match output {
                    OutputFormat::Json => show_json(&snapshot).to_string(),
                    OutputFormat::Text => format!(
                        "created {} (version 0)\n{}",
                        table.url(),
                        show_text(&snapshot)
                    ),
                })
            }
            TableSub::Show { url } => {
                let table = open(&url).await?;
                let snapshot = table.snapshot();
                Ok(match output {
                    OutputFormat::Json => show_json(&snapshot).to_string(),
                    OutputFormat::Text => show_text(&snapshot),
                })
            }
            TableSub::Log { url, limit } => {
                let table = open(&url).await?;
                let mut history = table.history().await.context("reading the log")?;
                history.reverse();
                if let Some(limit) = limit {
                    history.truncate(limit);
                }
                if output == OutputFormat::Json {
                    return Ok(serde_json::to_string(&history)?);
                }
                let mut t = text_table(&[
                    "version",
                    "time (UTC)",
                    "operation",
                    "job/run",
                    "owner",
                    "+files",
                    "-files",
                    "partitions",
                    "txn",
                ]);
                for r in &history {
                    let job = match (&r.job, r.run) {
                        (Some(j), Some(run)) => format!("{j}/{run}"),
                        (Some(j), None) => j.clone(),
                        _ => String::new(),
                    };
                    let partitions: Vec<&str> =
                        r.partitions.iter().map(|p| display_partition(p)).collect();
                    t.add_row(vec![
                        r.version.to_string(),
                        r.timestamp.map(fmt_time).unwrap_or_default(),
                        r.operation.clone().unwrap_or_default(),
                        job,
                        r.owner.clone().unwrap_or_default(),
                        r.files_added.to_string(),
                        r.files_removed.to_string(),
                        abbreviate(&partitions, 3),
                        r.txn_id.clone().unwrap_or_default(),
                    ]);
                }
                Ok(t.to_string())
            }
            TableSub::Files { url, partition } => {
                let table = open(&url).await?;
                let snapshot = table.snapshot();
                let mut files: Vec<_> = snapshot
                    .files()
                    .map(|add| (snapshot.partition_of(add), add))
                    .filter(|(p, _)| partition.as_ref().is_none_or(|want| p == want))
                    .collect();
                files.sort_by(|a, b| a.1.path.cmp(&b.1.path));
                let records = |stats: &Option<String>| -> Option<i64> {
                    let v: Value = serde_json::from_str(stats.as_deref()?).ok()?;
                    v.get("numRecords")?.as_i64()
                };
                if output == OutputFormat::Json {
                    let rows: Vec<Value> = files
                        .iter()
                        .map(|(p, add)| {
                            json!({"path": add.path, "partition": p, "size": add.size,
                                   "records": records(&add.stats), "modification_time": add.modification_time})
                        })
                        .collect();
                    return Ok(json!({"version": snapshot.version(), "files": rows}).to_string());
                }
                let mut t = text_table(&["path", "partition", "bytes", "records"]);
                for (p, add) in &files {
                    t.add_row(vec![
                        add.path.clone(),
                        display_partition(p).to_string(),
                        add.size.to_string(),
                        records(&add.stats)
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                    ]);
                }
                Ok(format!(
                    "{t}\n{} files at version {}",
                    files.len(),
                    snapshot.version()
                ))
            }
            TableSub::Ownership { command } => ownership(command, output).await,
            TableSub::Vacuum {
                url,
                dry_run,
                retention_hours,
            } => {
                if !(retention_hours.is_finite() && retention_hours >= 0.0) {
                    bail!("--retention-hours must be a non-negative number, got {retention_hours}");
                }
                let table = open(&url).await?;
                let report = table
                    .vacuum()
                    .retention(Duration::from_secs_f64(retention_hours * 3600.0))
                    .dry_run(dry_run)
                    .await
                    .context("vacuum")?;
                if output == OutputFormat::Json {
                    return Ok(serde_json::to_string(&report)?);
                }
                let verb = if dry_run { "would delete" } else { "deleted" };
                let mut out = format!(
                    "{verb} {} files ({} bytes) at version {}; kept {} in-flight and {} recent unreferenced files",
                    report.deleted.len(),
                    report.deleted_bytes,
                    report.version,
                    report.kept_in_flight.len(),
                    report.kept_recent.len()
                );
                for path in &report.deleted {
                    out.push_str(&format!("\n  {path}"));
                }
                if !report.deleted_staging.is_empty() {
                    out.push_str(&format!(
                        "\n{verb} {} staging objects of finished transactions",
                        report.deleted_staging.len()
                    ));
                    for key in &report.deleted_staging {
                        out.push_str(&format!("\n  {key}"));
                    }
                }
                Ok(out)
            }
        }
    }
}

async fn ownership(command: OwnershipSub, output: OutputFormat) -> anyhow::Result<String> {
    let (url, change) = match command {
        OwnershipSub::Show { url } => (url, None),
        OwnershipSub::Set {
            url,
            pattern,
            owner,
            actor,
        } => (url, Some((pattern, Some(owner), actor))),
        OwnershipSub::Remove {
            url,
            pattern,
            actor,
        } => (url, Some((pattern, None, actor))),
    };
    let table = open(&url).await?;
    let mut version = None;
    if let Some((pattern, owner, actor)) = change {
        let mut policy: Ownership = table.refresh().await?.ownership().clone();
        match owner {
            Some(owner) => policy.set(&pattern, &owner)?,
            None => {
                if !policy.remove(&pattern) {
                    bail!("no ownership rule for pattern {pattern:?} in {url}");
                }
            }
        }
        let outcome = table
            .set_ownership(policy, actor.as_deref())
            .await
            .context("committing the ownership change")?;
        version = Some(outcome.version);
    }
    let snapshot = table.snapshot();
    let rules = &snapshot.ownership().rules;
    if output == OutputFormat::Json {
        return Ok(
            json!({"version": snapshot.version(), "changed_in": version, "rules": rules})
                .to_string(),
        );
    }
    let mut t = text_table(&["pattern", "owner"]);
    for rule in rules {
        t.add_row(vec![rule.pattern.clone(), rule.owner.clone()]);
    }
    let head = match version {
        Some(v) => format!("ownership changed in version {v}"),
        None => format!("ownership at version {}", snapshot.version()),
    };
    if rules.is_empty() {
        return Ok(format!("{head}: no rules (every partition is unowned)"));
    }
    Ok(format!("{head}\n{t}"))
}

fn open_store(url: &str) -> anyhow::Result<Store> {
    Store::from_url(url).with_context(|| format!("opening store {url}"))
}

async fn open(url: &str) -> anyhow::Result<Table> {
    Table::open(open_store(url)?)
        .await
        .with_context(|| format!("opening table {url}"))
}

/// A column spec, or a path to a JSON schema file (the Delta schemaString form).
fn parse_schema(arg: &str) -> anyhow::Result<TableSchema> {
    let path = Path::new(arg.strip_prefix('@').unwrap_or(arg));
    if arg.starts_with('@') || arg.ends_with(".json") || (path.is_file() && !arg.contains(':')) {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading schema file {}", path.display()))?;
        return TableSchema::from_schema_string(&text)
            .map_err(|e| anyhow::anyhow!("schema file {}: {e}", path.display()));
    }
    Ok(TableSchema::parse_spec(arg)?)
}

fn show_json(snapshot: &Snapshot) -> Value {
    let partition_columns = snapshot.partition_columns();
    let columns: Vec<Value> = snapshot
        .schema()
        .fields
        .iter()
        .map(|f| {
            json!({"name": f.name, "type": f.data_type.to_string(), "nullable": f.nullable,
                   "partition": partition_columns.contains(&f.name)})
        })
        .collect();
    let partitions: Vec<Value> = snapshot
        .partitions()
        .into_iter()
        .map(|(p, s)| json!({"partition": p, "files": s.files, "bytes": s.bytes, "owner": snapshot.ownership().owner_of(&p)}))
        .collect();
    json!({
        "url": snapshot.url(),
        "version": snapshot.version(),
        "id": snapshot.metadata().id,
        "name": snapshot.metadata().name,
        "protocol": {"minReaderVersion": snapshot.protocol().min_reader_version,
                     "minWriterVersion": snapshot.protocol().min_writer_version},
        "columns": columns,
        "partition_columns": partition_columns,
        "owners": snapshot.ownership().rules,
        "checkpoint_interval": snapshot.checkpoint_interval(),
        "files": snapshot.file_count(),
        "partitions": partitions,
        "jobs": snapshot.txns().filter(|t| !t.app_id.starts_with("weir.epoch/"))
            .map(|t| json!({"job": t.app_id, "run": t.version})).collect::<Vec<_>>(),
    })
}

fn show_text(snapshot: &Snapshot) -> String {
    let partition_columns = snapshot.partition_columns();
    let mut out = format!(
        "table {}\nversion {} · {} files · protocol {}/{} · checkpoint every {} commits\n",
        snapshot.url(),
        snapshot.version(),
        snapshot.file_count(),
        snapshot.protocol().min_reader_version,
        snapshot.protocol().min_writer_version,
        snapshot.checkpoint_interval()
    );
    let mut columns = text_table(&["column", "type", "nullable", "partition"]);
    for f in &snapshot.schema().fields {
        columns.add_row(vec![
            f.name.clone(),
            f.data_type.to_string(),
            if f.nullable { "yes" } else { "no" }.to_string(),
            if partition_columns.contains(&f.name) {
                "yes"
            } else {
                ""
            }
            .to_string(),
        ]);
    }
    out.push_str(&format!("{columns}\n"));
    let rules = &snapshot.ownership().rules;
    if rules.is_empty() {
        out.push_str("owners: none (every partition is unowned)\n");
    } else {
        let owners: Vec<String> = rules
            .iter()
            .map(|r| format!("{} → {}", r.pattern, r.owner))
            .collect();
        out.push_str(&format!("owners: {}\n", owners.join(", ")));
    }
    let partitions = snapshot.partitions();
    if !partitions.is_empty() {
        let mut t = text_table(&["partition", "files", "bytes", "owner"]);
        for (p, s) in &partitions {
            t.add_row(vec![
                display_partition(p).to_string(),
                s.files.to_string(),
                s.bytes.to_string(),
                snapshot.ownership().owner_of(p).unwrap_or("").to_string(),
            ]);
        }
        out.push_str(&t.to_string());
    }
    out.trim_end().to_string()
}

fn text_table(header: &[&str]) -> TextTable {
    let mut t = TextTable::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

fn fmt_time(ms: i64) -> String {
    // Civil-from-days (Howard Hinnant), to avoid a date dependency in the CLI.
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn abbreviate(items: &[&str], max: usize) -> String {
    if items.len() <= max {
        return items.join(", ");
    }
    format!("{}, … (+{})", items[..max].join(", "), items.len() - max)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TableSub,
    }

    async fn weir(args: &[&str], output: OutputFormat) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(std::iter::once("table").chain(args.iter().copied()))?;
        TableCommand {
            command: cli.command,
        }
        .execute(output)
        .await
    }

    #[tokio::test]
    async fn create_show_ownership_log_files_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t").to_str().unwrap().to_string();
        let created = weir(
            &[
                "create",
                &url,
                "--schema",
                "id:long,name:string,dt:date",
                "--partition-by",
                "dt",
                "--owner",
                "billing",
            ],
            OutputFormat::Text,
        )
        .await
        .unwrap();
        assert!(created.contains("version 0"), "{created}");

        let show: Value =
            serde_json::from_str(&weir(&["show", &url], OutputFormat::Json).await.unwrap())
                .unwrap();
        assert_eq!(show["version"], 0);
        assert_eq!(show["partition_columns"], json!(["dt"]));
        assert_eq!(show["columns"][2]["type"], "date");
        assert_eq!(
            show["owners"][0],
            json!({"pattern": "*", "owner": "billing"})
        );

        let set = weir(
            &[
                "ownership",
                "set",
                &url,
                "dt=2026-01-*",
                "fraud",
                "--actor",
                "admin",
            ],
            OutputFormat::Text,
        )
        .await
        .unwrap();
        assert!(
            set.contains("changed in version 1") && set.contains("fraud"),
            "{set}"
        );
        let shown: Value = serde_json::from_str(
            &weir(&["ownership", "show", &url], OutputFormat::Json)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(shown["rules"].as_array().unwrap().len(), 2);
        let err = weir(&["ownership", "remove", &url, "nope"], OutputFormat::Text)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");

        let log: Value =
            serde_json::from_str(&weir(&["log", &url], OutputFormat::Json).await.unwrap()).unwrap();
        assert_eq!(log[0]["version"], 1);
        assert_eq!(log[0]["operation"], "SET OWNERSHIP");
        assert_eq!(log[0]["owner"], "admin");
        let text_log = weir(&["log", &url], OutputFormat::Text).await.unwrap();
        assert!(text_log.contains("CREATE TABLE"), "{text_log}");

        let files: Value =
            serde_json::from_str(&weir(&["files", &url], OutputFormat::Json).await.unwrap())
                .unwrap();
        assert_eq!(files["files"].as_array().unwrap().len(), 0);

        std::fs::create_dir_all(dir.path().join("t/dt=2026-01-01")).unwrap();
        std::fs::write(dir.path().join("t/dt=2026-01-01/orphan.parquet"), b"x").unwrap();
        // The staged adds of a transaction that never registered (so is not live).
        let staging = dir.path().join("t/_weir/txn/0badc0de/adds-1.json");
        std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
        std::fs::write(&staging, b"{}\n").unwrap();
        let dry = weir(
            &["vacuum", &url, "--dry-run", "--retention-hours", "0"],
            OutputFormat::Text,
        )
        .await
        .unwrap();
        assert!(
            dry.contains("would delete 1 files") && dry.contains("orphan.parquet"),
            "{dry}"
        );
        assert!(
            dry.contains("would delete 1 staging objects")
                && dry.contains("_weir/txn/0badc0de/adds-1.json"),
            "{dry}"
        );
        assert!(dir.path().join("t/dt=2026-01-01/orphan.parquet").exists());
        assert!(staging.exists());
        let done: Value = serde_json::from_str(
            &weir(
                &["vacuum", &url, "--retention-hours", "0"],
                OutputFormat::Json,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(done["deleted"], json!(["dt=2026-01-01/orphan.parquet"]));
        assert_eq!(
            done["deleted_staging"],
            json!(["_weir/txn/0badc0de/adds-1.json"])
        );
        assert!(!dir.path().join("t/dt=2026-01-01/orphan.parquet").exists());
        assert!(!staging.exists());
    }

    #[tokio::test]
    async fn bad_input_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("t").to_str().unwrap().to_string();
        let err = weir(
            &["create", &url, "--schema", "id:long,x:nonsense"],
            OutputFormat::Text,
        )
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("nonsense"), "{err:#}");
        let err = weir(&["show", &url], OutputFormat::Text).await.unwrap_err();
        assert!(format!("{err:#}").contains("not a table"), "{err:#}");
        let schema_file = dir.path().join("schema.json");
        std::fs::write(
            &schema_file,
            TableSchema::parse_spec("id:long")
                .unwrap()
                .to_schema_string(),
        )
        .unwrap();
        let created = weir(
            &["create", &url, "--schema", schema_file.to_str().unwrap()],
            OutputFormat::Json,
        )
        .await
        .unwrap();
        assert!(created.contains("\"long\""), "{created}");
    }
}
