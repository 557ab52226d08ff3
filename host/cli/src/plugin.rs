//! `weir plugin`: scaffold, build, inspect and test plugins.
//!
//! `weir plugin test` runs a plugin on the production host runtime (same sandbox, same limits,
//! same output checks) over a Parquet file, so a plugin that passes here behaves the same in a
//! pipeline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use arrow_array::RecordBatch;
use clap::{Args, Subcommand};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use sha2::{Digest, Sha256};
use weir_runtime::{Plugin, Runtime, RuntimeConfig};

use crate::output::OutputFormat;

#[derive(Args)]
pub struct PluginCommand {
    #[command(subcommand)]
    command: PluginSubcommand,
}

#[derive(Subcommand)]
enum PluginSubcommand {
    /// Scaffold a plugin crate that builds and passes its own test.
    New(NewArgs),
    /// Build a plugin crate into a Wasm component and print its sha256 digest.
    Build(BuildArgs),
    /// Show a component's metadata, digest, contract version and imports.
    Inspect(InspectArgs),
    /// Run a plugin over a Parquet file on the production host runtime.
    Test(TestArgs),
}

#[derive(Args)]
struct NewArgs {
    /// Plugin name: lowercase letters, digits and dashes, starting with a letter.
    name: String,
    /// Directory to create (default: ./NAME).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Path to the weir-sdk crate (default: the SDK of the Weir source tree this binary was built
    /// from).
    #[arg(long, env = "WEIR_SDK_PATH")]
    sdk: Option<PathBuf>,
}

#[derive(Args)]
struct BuildArgs {
    /// The plugin crate's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
}

#[derive(Args)]
struct InspectArgs {
    /// The component (.wasm).
    file: PathBuf,
}

#[derive(Args)]
struct TestArgs {
    /// The component (.wasm).
    file: PathBuf,
    /// Input Parquet file.
    #[arg(long)]
    input: PathBuf,
    /// Plugin config: JSON text, or @PATH to read it from a file.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Expected output Parquet file; exit non-zero when the output differs.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Rows to print when there is no --expect.
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Rows per input batch.
    #[arg(long, default_value_t = 65_536)]
    batch_size: usize,
}

impl PluginCommand {
    pub fn run(self, output: OutputFormat) -> anyhow::Result<()> {
        match self.command {
            PluginSubcommand::New(args) => new(args, output),
            PluginSubcommand::Build(args) => build(args, output),
            PluginSubcommand::Inspect(args) => inspect(args, output),
            PluginSubcommand::Test(args) => test(args, output),
        }
    }
}

fn new(args: NewArgs, output: OutputFormat) -> anyhow::Result<()> {
    let name = args.name;
    ensure!(
        name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "plugin name {name:?} must start with a lowercase letter and contain only lowercase letters, digits and dashes"
    );
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&name));
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = match args.sdk {
        Some(sdk) => sdk,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the weir-sdk crate is not at {}; pass --sdk PATH (or set WEIR_SDK_PATH) to a Weir checkout's sdk/ directory",
            sdk.display()
        )
    })?;
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("Cargo.toml", scaffold::cargo_toml(&name, &sdk)),
        ("src/lib.rs", scaffold::LIB_RS.to_string()),
        (".gitignore", "/target\n".to_string()),
        ("README.md", scaffold::readme(&name)),
    ];
    for (file, contents) in files {
        let path = dir.join(file);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    match output {
        OutputFormat::Json => println!("{}", json!({ "name": name, "dir": dir })),
        OutputFormat::Text => {
            println!("Created plugin {name} in {}", dir.display());
            println!(
                "  cd {} && cargo test        # native unit tests",
                dir.display()
            );
            println!(
                "  weir plugin build {}        # the Wasm component and its digest",
                dir.display()
            );
        }
    }
    Ok(())
}

fn build(args: BuildArgs, output: OutputFormat) -> anyhow::Result<()> {
    let manifest = args.dir.join("Cargo.toml");
    ensure!(
        manifest.exists(),
        "{} is not a plugin crate: no Cargo.toml",
        args.dir.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let result = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !result.status.success() {
        bail!(
            "cargo build failed for {} (if it says the wasm32-wasip2 target is missing, run `rustup target add wasm32-wasip2`)",
            manifest.display()
        );
    }
    let wasm = String::from_utf8_lossy(&result.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .with_context(|| {
            format!(
                "{} built no .wasm; a plugin crate needs `crate-type = [\"cdylib\", \"rlib\"]`",
                manifest.display()
            )
        })?;
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    match output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "path": wasm, "digest": format!("sha256:{digest}"), "bytes": bytes.len() })
        ),
        OutputFormat::Text => {
            println!("{}", wasm.display());
            println!("sha256:{digest}");
        }
    }
    Ok(())
}

fn runtime() -> anyhow::Result<Runtime> {
    let cache_dir = std::env::var_os("WEIR_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("weir")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache").join("weir")))
        .map(|d| d.join("code"));
    Ok(Runtime::new(RuntimeConfig {
        cache_dir,
        max_instances: 8,
        ..RuntimeConfig::default()
    })?)
}

fn load(runtime: &Runtime, file: &Path) -> anyhow::Result<Plugin> {
    runtime
        .load_file(file)
        .with_context(|| format!("loading {}", file.display()))
}

fn inspect(args: InspectArgs, output: OutputFormat) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let plugin = load(&runtime, &args.file)?;
    let m = plugin.metadata();
    let contract = plugin
        .exports()
        .iter()
        .find(|e| e.starts_with("weir:plugin/"))
        .cloned()
        .unwrap_or_default();
    let config_schema: serde_json::Value =
        serde_json::from_str(&m.config_schema).unwrap_or(json!(m.config_schema));
    match output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "name": m.name, "version": m.version, "description": m.description,
                "digest": format!("sha256:{}", plugin.id().digest), "contract": contract,
                "input_columns": m.input_columns, "config_schema": config_schema,
                "imports": plugin.imports(), "exports": plugin.exports(),
            }))?
        ),
        OutputFormat::Text => {
            println!("name:          {}", m.name);
            println!("version:       {}", m.version);
            println!("description:   {}", m.description);
            println!("digest:        sha256:{}", plugin.id().digest);
            println!("contract:      {contract}");
            match &m.input_columns {
                Some(columns) => println!("input columns: {}", columns.join(", ")),
                None => println!("input columns: (all, or set by config)"),
            }
            println!("imports:");
            for import in plugin.imports() {
                println!("  {import}");
            }
            println!(
                "config schema:\n{}",
                serde_json::to_string_pretty(&config_schema)?
            );
        }
    }
    Ok(())
}

fn read_parquet(path: &Path, batch_size: usize) -> anyhow::Result<Vec<RecordBatch>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(batch_size).build())
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", path.display()))
}

fn test(args: TestArgs, output: OutputFormat) -> anyhow::Result<()> {
    let config = match args.config.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading config file {path}"))?
        }
        None => args.config.clone(),
    };
    let input = read_parquet(&args.input, args.batch_size)?;
    let schema = match input.first() {
        Some(batch) => batch.schema(),
        None => Arc::new(
            ParquetRecordBatchReaderBuilder::try_new(File::open(&args.input)?)?
                .schema()
                .as_ref()
                .clone(),
        ),
    };
    let runtime = runtime()?;
    let plugin = load(&runtime, &args.file)?;
    let mut instance = plugin.instantiate()?;
    let output_schema = instance.open(&config, schema)?;
    let mut produced = Vec::new();
    for batch in &input {
        produced.extend(instance.process(batch)?);
    }
    produced.extend(instance.finish()?);
    let rows_in: usize = input.iter().map(RecordBatch::num_rows).sum();
    let actual = arrow_select::concat::concat_batches(&output_schema, &produced)?;

    let Some(expect) = &args.expect else {
        match output {
            OutputFormat::Json => println!(
                "{}",
                json!({ "plugin": plugin.id().to_string(), "rows_in": rows_in, "rows_out": actual.num_rows() })
            ),
            OutputFormat::Text => {
                let shown = actual.slice(0, args.show.min(actual.num_rows()));
                println!("{}", arrow_cast::pretty::pretty_format_batches(&[shown])?);
                println!(
                    "{} rows in, {} rows out ({})",
                    rows_in,
                    actual.num_rows(),
                    plugin.id()
                );
            }
        }
        return Ok(());
    };
    let expected_batches = read_parquet(expect, args.batch_size)?;
    let expected_schema = expected_batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| output_schema.clone());
    let expected = arrow_select::concat::concat_batches(&expected_schema, &expected_batches)?;
    let verdict = compare(&actual, &expected);
    match output {
        OutputFormat::Json => println!(
            "{}",
            json!({ "plugin": plugin.id().to_string(), "rows_in": rows_in, "rows_out": actual.num_rows(),
                    "expected_rows": expected.num_rows(), "matches": verdict.is_ok(), "difference": verdict.as_ref().err() })
        ),
        OutputFormat::Text => match &verdict {
            Ok(()) => println!(
                "output matches {} ({} rows)",
                expect.display(),
                actual.num_rows()
            ),
            Err(difference) => println!("output differs from {}: {difference}", expect.display()),
        },
    }
    verdict.map_err(|_| {
        anyhow::anyhow!(
            "output of {} does not match {}",
            plugin.id(),
            expect.display()
        )
    })
}

/// Compares two batches row by row, describing the first difference.
fn compare(actual: &RecordBatch, expected: &RecordBatch) -> Result<(), String> {
    if actual.schema().fields() != expected.schema().fields() {
        return Err(format!(
            "schema is\n  {}\nexpected\n  {}",
            actual.schema(),
            expected.schema()
        ));
    }
    if actual.num_rows() != expected.num_rows() {
        return Err(format!(
            "{} rows, expected {}",
            actual.num_rows(),
            expected.num_rows()
        ));
    }
    for (column, (a, e)) in actual.columns().iter().zip(expected.columns()).enumerate() {
        if a == e {
            continue;
        }
        let name = actual.schema().field(column).name().clone();
        let row = (0..a.len())
            .find(|&i| a.slice(i, 1) != e.slice(i, 1))
            .unwrap_or(0);
        let show = |array: &arrow_array::ArrayRef| {
            arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        };
        return Err(format!(
            "row {row}, column {name}: got {}, expected {}",
            show(a),
            show(e)
        ));
    }
    Ok(())
}

/// The files `weir plugin new` writes.
mod scaffold {
    use std::path::Path;

    pub fn cargo_toml(name: &str, sdk: &Path) -> String {
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
description = "A Weir transform plugin"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
weir-sdk = {{ path = {sdk:?} }}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1"

[profile.release]
opt-level = 3

# A standalone crate, even when created inside another workspace.
[workspace]
"#,
            sdk = sdk.display().to_string()
        )
    }

    pub fn readme(name: &str) -> String {
        format!(
            "# {name}\n\nA Weir transform plugin.\n\n- `cargo test`: native unit tests (no Wasm needed).\n- `weir plugin build .`: builds `target/wasm32-wasip2/release/*.wasm` and prints its digest.\n- `weir plugin test target/wasm32-wasip2/release/{}.wasm --input data.parquet --config '{{\"column\": \"name\"}}'`: runs it on the host runtime.\n",
            name.replace('-', "_")
        )
    }

    pub const LIB_RS: &str = r##"//! A Weir transform plugin: upper-cases one string column.
//!
//! Config: `{"column": "name"}`.

use std::sync::Arc;

use weir_sdk::arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use weir_sdk::arrow_schema::{DataType, SchemaRef};
use weir_sdk::{Error, Transform};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The string column to upper-case.
    column: String,
}

pub struct Upper {
    column: usize,
    schema: SchemaRef,
}

impl Transform for Upper {
    type Config = Config;

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        let column = weir_sdk::column_index(&input, &config.column, &[DataType::Utf8])?;
        Ok(Self { column, schema: input })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        let strings = batch
            .column(self.column)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::internal("column type changed after open"))?;
        let upper: StringArray = strings.iter().map(|s| s.map(str::to_uppercase)).collect();
        let mut columns = batch.columns().to_vec();
        columns[self.column] = Arc::new(upper) as ArrayRef;
        Ok(vec![RecordBatch::try_new(self.schema.clone(), columns)?])
    }
}

weir_sdk::export!(Upper);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_cases_the_column_and_keeps_nulls() {
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("ada"), None, Some("Grace")]));
        let input = RecordBatch::try_from_iter([("name", names)]).unwrap();
        let output = weir_sdk::testing::run::<Upper>(r#"{"column": "name"}"#, &[input]).unwrap();
        let names = output[0].column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "ADA");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "GRACE");
    }

    #[test]
    fn a_missing_column_is_a_config_error() {
        let names: ArrayRef = Arc::new(StringArray::from(vec!["x"]));
        let input = RecordBatch::try_from_iter([("name", names)]).unwrap();
        let error = weir_sdk::testing::run::<Upper>(r#"{"column": "nope"}"#, &[input]).unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }
}
"##;
}
