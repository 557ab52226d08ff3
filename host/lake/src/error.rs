//! The public error type of weir-lake: a small enum callers can match on, each variant naming
//! the file (full URL), column or partition involved.

/// Errors from scans and sinks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed (listing, reading, writing or deleting); names the URL.
    #[error(transparent)]
    Store(#[from] weir_store::Error),
    /// A Parquet file could not be read or written: corrupt, truncated, not Parquet, or the
    /// store failed underneath the Parquet reader/writer.
    #[error("parquet error in {url}: {source}")]
    Parquet {
        url: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A schema problem: an unknown column, a file whose schema differs from the scan's, a
    /// batch that does not match the writer's schema, or a type that cannot be written.
    #[error("schema error in {location}: {reason}")]
    Schema { location: String, reason: String },
    /// A bad partition: a malformed `key=value` directory, a value that does not parse as its
    /// column's type, a partition column of an unsupported type, or a filter on a column that
    /// is not a partition column.
    #[error("invalid partition {partition}: {reason}")]
    InvalidPartition { partition: String, reason: String },
    /// A bad argument to a builder (for example a zero batch size or an unsafe transaction id).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn parquet(url: impl Into<String>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            url: url.into(),
            source,
        }
    }

    pub(crate) fn schema(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Schema {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn partition(partition: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidPartition {
            partition: partition.into(),
            reason: reason.into(),
        }
    }
}
