//! The dead-letter (quarantine) table: one row per rejected input row, with the job, run, step,
//! plugin, error, source file and the row itself as JSON. Its schema is fixed, so one quarantine
//! table can serve many pipelines.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use weir_lake::{PartitionedWriter, WrittenFile};
use weir_store::Store;
use weir_worker::RejectedRow;

/// The quarantine table's Arrow schema.
pub fn schema() -> SchemaRef {
    let s = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let l = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        s("job", false),
        l("run_id"),
        l("step"),
        s("step_label", false),
        s("plugin", false),
        s("error", false),
        s("column", true),
        s("source_file", true),
        l("batch"),
        l("row"),
        s("record", false),
        Field::new(
            "rejected_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// Writes the rejected rows as one file into the quarantine table's directory.
pub async fn write(
    store: Store,
    txn: &str,
    job: &str,
    run: i64,
    rows: &[RejectedRow],
) -> Result<Vec<WrittenFile>, weir_lake::Error> {
    let now = chrono::Utc::now().timestamp_micros();
    let n = rows.len();
    let strings = |f: &dyn Fn(&RejectedRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let longs = |f: &dyn Fn(&RejectedRow) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<i64>>()))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(&|_| Some(job.to_string())),
        longs(&|_| run),
        longs(&|r| r.step as i64),
        strings(&|r| Some(r.step_label.clone())),
        strings(&|r| Some(r.plugin.clone())),
        strings(&|r| Some(r.error.clone())),
        strings(&|r| r.column.clone()),
        strings(&|r| r.source_file.clone()),
        longs(&|r| r.batch as i64),
        longs(&|r| r.row as i64),
        strings(&|r| Some(r.record.clone())),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(schema(), columns)
        .map_err(|e| weir_lake::Error::InvalidArgument(format!("building quarantine rows: {e}")))?;
    let mut writer = PartitionedWriter::new(store, txn, 0, 0);
    let written = async {
        writer.write(&batch).await?;
        writer.finish().await
    }
    .await;
    if written.is_err() {
        let _ = writer.abort().await;
    }
    written
}
