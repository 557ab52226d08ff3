//! Lake I/O for Weir: Parquet scans and hive-partitioned Parquet sinks over a
//! [`weir_store::Store`].
//!
//! - [`Scan`] lists Parquet files (under a prefix, or a table snapshot's file list), parses
//!   and types hive partition values, prunes partitions with [`PartitionFilter`]s before
//!   opening any file, splits large files into row-group [`ScanTask`]s (serde-serializable,
//!   for shipping to other hosts) and streams Arrow record batches with the projection pushed
//!   down and bounded read-ahead.
//! - [`PartitionedWriter`] writes record batches as hive-partitioned, zstd-compressed Parquet
//!   files that roll at a target size, each written once to its final key, and reports each
//!   as a [`WrittenFile`] with Delta statistics.
//!
//! Object keys are used verbatim: a partition directory `k=a%2Fb` is stored as exactly that
//! key (not re-escaped), so other engines reading the directory see Hive-standard names.

mod error;
pub mod hive;
mod reader;
mod scan;
mod sink;
mod stats;

pub use error::{Error, Result};
pub use hive::{FilterOp, HIVE_DEFAULT_PARTITION, PartitionFilter};
pub use parquet::basic::{Compression, ZstdLevel};
pub use scan::{
    DEFAULT_BATCH_SIZE, DEFAULT_READ_AHEAD, DEFAULT_SPLIT_BYTES, FileEntry, Projection, Scan,
    ScanPlan, ScanTask, open_task, split_row_groups,
};
pub use sink::{
    DEFAULT_MAX_OPEN_PARTITIONS, DEFAULT_ROW_GROUP_BYTES, DEFAULT_TARGET_FILE_SIZE,
    DEFAULT_UPLOAD_PART_BYTES, PartitionedWriter, WrittenFile,
};

use object_store::path::Path;
use weir_store::Store;

/// The object path of `key` below the store's root, taking each segment verbatim (unlike
/// [`Store::path`], which percent-escapes `%` and would double-escape hive directories).
pub(crate) fn object_path(store: &Store, key: &str) -> Result<Path> {
    let root = store.path("");
    let joined = std::iter::once(root.as_ref())
        .chain(key.split('/'))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    Path::parse(&joined).map_err(|e| {
        Error::InvalidArgument(format!("invalid object key {:?}: {e}", store.url_of(key)))
    })
}
