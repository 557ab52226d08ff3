//! A minimal Weir writer process for crash and concurrency tests: one job run that leases a
//! partition, writes Parquet files named with its transaction id, and commits them.
//!
//! Usage: `weir-manifest-writer --table URL --job J --run N --partition dt=VALUE [--rows N]
//! [--start ID] [--files K] [--mode append|overwrite] [--owner O] [--holder H] [--lease-ttl-ms MS]
//! [--staged]`
//!
//! With `--staged`, each file's add is staged as it is written (`Transaction::stage`) and the
//! commit publishes the staging object (`CommitBuilder::staged`).
//!
//! Failpoints (env `WEIR_FAILPOINT`): `before-data`, `mid-data` (after the first file),
//! `after-data`, and the commit's own `before-log-put` / `after-stage-seal` (staged only) /
//! `after-log-put`. At a failpoint the
//! process prints `WEIR_FAILPOINT reached: <name>` to stderr and stops until killed.
//!
//! Output: the commit outcome as one JSON line on stdout. Exit codes: 0 committed (or already
//! committed), 2 lease held, 3 ownership refused, 4 conflict, 5 stale epoch, 6 the store does not
//! honour conditional writes, 1 anything else.
//!
//! The store is opened with `Store::from_url`, so for `s3://` the endpoint, region and
//! credentials come from the environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...), never
//! from the arguments.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use weir_manifest::{AddFile, Error, Mode, Table, failpoint};
use weir_store::Store;

struct Args {
    table: String,
    job: String,
    run: i64,
    partition: (String, String),
    rows: i64,
    start: i64,
    files: i64,
    mode: Mode,
    owner: Option<String>,
    holder: Option<String>,
    lease_ttl: Duration,
    staged: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut table = None;
    let mut job = None;
    let mut run = 1;
    let mut partition = None;
    let mut rows = 10;
    let mut start = 0;
    let mut files = 1;
    let mut mode = Mode::Append;
    let mut owner = None;
    let mut holder = None;
    let mut lease_ttl = Duration::from_secs(60);
    let mut staged = false;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let int = |s: String| s.parse::<i64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--table" => table = Some(value()?),
            "--job" => job = Some(value()?),
            "--run" => run = int(value()?)?,
            "--partition" => {
                let v = value()?;
                let (k, val) = v.split_once('=').ok_or("--partition is column=value")?;
                partition = Some((k.to_string(), val.to_string()));
            }
            "--rows" => rows = int(value()?)?,
            "--start" => start = int(value()?)?,
            "--files" => files = int(value()?)?.max(1),
            "--mode" => {
                mode = match value()?.as_str() {
                    "append" => Mode::Append,
                    "overwrite" => Mode::OverwritePartitions,
                    other => return Err(format!("unknown mode {other}")),
                }
            }
            "--owner" => owner = Some(value()?),
            "--holder" => holder = Some(value()?),
            "--lease-ttl-ms" => lease_ttl = Duration::from_millis(int(value()?)? as u64),
            "--staged" => staged = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(Args {
        table: table.ok_or("--table is required")?,
        job: job.ok_or("--job is required")?,
        run,
        partition: partition.ok_or("--partition is required")?,
        rows,
        start,
        files,
        mode,
        owner,
        holder,
        lease_ttl,
        staged,
    })
}

fn parquet_bytes(ids: &[i64]) -> Result<Bytes, String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .map_err(|e| e.to_string())?;
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    Ok(Bytes::from(writer.into_inner().map_err(|e| e.to_string())?))
}

async fn run(args: Args) -> Result<String, Error> {
    let store = Store::from_url(&args.table)?;
    let table = Table::open(store.clone()).await?;
    let (column, value) = &args.partition;
    let partition_values = [(column.clone(), Some(value.clone()))].into();
    let partition = table.partition_path(&partition_values);
    let txn = table.begin_transaction().job(&args.job).await?;
    let holder = args
        .holder
        .clone()
        .unwrap_or_else(|| format!("{}/{}", args.job, args.run));
    let mut lease = table.lease(&partition).holder(holder).ttl(args.lease_ttl);
    if let Some(owner) = &args.owner {
        lease = lease.owner(owner);
    }
    let lease = lease.await?;
    failpoint::hit("before-data");
    let mut staged = match args.staged {
        true => Some(txn.stage().await?),
        false => None,
    };
    let mut files = Vec::new();
    let per_file = (args.rows + args.files - 1) / args.files;
    for n in 0..args.files {
        let from = args.start + n * per_file;
        let to = (from + per_file).min(args.start + args.rows);
        let ids: Vec<i64> = (from..to).collect();
        let bytes = parquet_bytes(&ids).map_err(Error::Invalid)?;
        let path = format!("{partition}/{}", txn.data_file_name(n as usize));
        let size = bytes.len() as i64;
        store.put(&path, bytes).await?;
        let file = AddFile {
            path,
            size,
            partition_values: partition_values.clone(),
            num_records: Some(ids.len() as i64),
            ..Default::default()
        };
        match &mut staged {
            Some(staged) => staged.add([file]).await?,
            None => files.push(file),
        }
        if n == 0 {
            failpoint::hit("mid-data");
        }
    }
    failpoint::hit("after-data");
    let mut commit = table
        .commit()
        .transaction(&txn)
        .job(&args.job, args.run)
        .mode(args.mode)
        .epochs([lease]);
    commit = match staged {
        Some(staged) => commit.staged(staged),
        None => commit.add_files(files),
    };
    if let Some(owner) = &args.owner {
        commit = commit.owner(owner);
    }
    let outcome = commit.await?;
    if outcome.already_committed {
        // Nothing of ours was committed; drop the registration so vacuum can collect the files.
        txn.finish().await?;
    }
    Ok(format!(
        "{{\"version\":{},\"already_committed\":{},\"txn_id\":\"{}\"}}",
        outcome.version, outcome.already_committed, outcome.txn_id
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("usage error: {e}");
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            let code = match e {
                Error::LeaseHeld { .. } => 2,
                Error::OwnershipRefused { .. } => 3,
                Error::Conflict { .. } => 4,
                Error::StaleEpoch { .. } => 5,
                Error::ConditionalWritesNotHonoured { .. } => 6,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}
