//! Write Weir transform plugins in Rust.
//!
//! A plugin is a type that implements [`Transform`], exported as a Wasm component with
//! [`export!`]. The SDK hides the component glue and the Arrow IPC framing: your code sees
//! [`RecordBatch`]es in and out.
//!
//! ```
//! use std::sync::Arc;
//! use weir_sdk::arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
//! use weir_sdk::arrow_schema::{DataType, Field, Schema, SchemaRef};
//! use weir_sdk::{Error, Transform};
//!
//! /// Upper-cases one string column.
//! pub struct Upper {
//!     column: usize,
//!     schema: SchemaRef,
//! }
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     /// The column to upper-case.
//!     column: String,
//! }
//!
//! impl Transform for Upper {
//!     type Config = Config;
//!
//!     fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
//!         let column = weir_sdk::column_index(&input, &config.column, &[DataType::Utf8])?;
//!         Ok(Upper { column, schema: input })
//!     }
//!
//!     fn output_schema(&self) -> SchemaRef {
//!         self.schema.clone()
//!     }
//!
//!     fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
//!         let strings = batch.column(self.column).as_any().downcast_ref::<StringArray>().unwrap();
//!         let upper: StringArray = strings.iter().map(|s| s.map(str::to_uppercase)).collect();
//!         let mut columns = batch.columns().to_vec();
//!         columns[self.column] = Arc::new(upper) as ArrayRef;
//!         Ok(vec![RecordBatch::try_new(self.schema.clone(), columns)?])
//!     }
//! }
//!
//! // Exports `Upper` as the component's transform (a no-op when built natively).
//! weir_sdk::export!(Upper);
//!
//! // Unit-test natively, through the same glue the component uses:
//! let input = RecordBatch::try_from_iter([(
//!     "name",
//!     Arc::new(StringArray::from(vec![Some("ada"), None])) as ArrayRef,
//! )])
//! .unwrap();
//! let output = weir_sdk::testing::run::<Upper>(r#"{"column": "name"}"#, &[input]).unwrap();
//! let names = output[0].column(0).as_any().downcast_ref::<StringArray>().unwrap();
//! assert_eq!(names.value(0), "ADA");
//! assert!(names.is_null(1));
//! ```
//!
//! Build the component with plain cargo: `cargo build --release --target wasm32-wasip2`
//! (the crate needs `crate-type = ["cdylib", "rlib"]`). `weir plugin new NAME` scaffolds one.
//!
//! ## The contract
//! The host opens one instance per task: [`Transform::open`] once, [`Transform::process`] per
//! batch, [`Transform::finish`] once. State in `self` lives across batches of one task. Every batch
//! you return must have exactly the schema [`Transform::output_schema`] declared; the SDK checks it
//! before anything leaves the plugin, and the host checks it again.

pub mod hash;
pub mod ipc;
#[doc(hidden)]
pub mod session;
pub mod testing;

pub use arrow_array;
pub use arrow_array::RecordBatch;
pub use arrow_schema;
pub use arrow_schema::SchemaRef;
pub use schemars;
pub use serde_json;

use arrow_schema::{ArrowError, DataType};

/// A stateful batch transform.
pub trait Transform: Sized {
    /// The plugin's config, parsed from the JSON the pipeline gives. Its JSON Schema is published
    /// in the plugin's metadata; use `#[serde(deny_unknown_fields)]` so typos are errors.
    type Config: serde::de::DeserializeOwned + schemars::JsonSchema;

    /// Input columns the plugin always reads, if fixed regardless of config.
    const INPUT_COLUMNS: Option<&'static [&'static str]> = None;

    /// The input columns read under `config`; `None` means every column.
    fn input_columns(config: &Self::Config) -> Option<Vec<String>> {
        let _ = config;
        Self::INPUT_COLUMNS.map(|columns| columns.iter().map(|c| c.to_string()).collect())
    }

    /// Opens the transform for an input of `input` schema. Check the config against the schema
    /// here, and fail with [`Error::InvalidConfig`] naming the column at fault.
    fn open(config: Self::Config, input: SchemaRef) -> Result<Self, Error>;

    /// The schema of every batch this transform returns; fixed once opened.
    fn output_schema(&self) -> SchemaRef;

    /// Transforms one batch into zero or more batches. Row filters implement
    /// [`select`](Self::select) instead and keep this default, which applies it.
    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        let Some(keep) = self.select(&batch)? else {
            return Err(Error::internal(
                "the transform implements neither `process` nor `select`",
            ));
        };
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep)?;
        Ok(if kept.num_rows() == 0 {
            Vec::new()
        } else {
            vec![kept]
        })
    }

    /// For row filters: which rows of `batch` to keep (a null counts as drop), or `None` to have
    /// [`process`](Self::process) called for this batch instead. The output is then exactly
    /// `batch` filtered by it, so the output schema must be the input schema. In a component only
    /// the selection crosses back: the host filters the batch it already holds, natively.
    fn select(&mut self, batch: &RecordBatch) -> Result<Option<arrow_array::BooleanArray>, Error> {
        let _ = batch;
        Ok(None)
    }

    /// Ends the input: returns anything still held (aggregations emit here).
    fn finish(&mut self) -> Result<Vec<RecordBatch>, Error> {
        Ok(Vec::new())
    }
}

/// Why a transform failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The config does not parse, or does not fit the input schema.
    InvalidConfig(String),
    /// A row of the input cannot be processed.
    InvalidInput {
        message: String,
        row: Option<u64>,
        column: Option<String>,
    },
    /// Anything else.
    Internal(String),
}

impl Error {
    /// An invalid-config error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::InvalidConfig(message.into())
    }

    /// An invalid-input error for `row` of `column`.
    pub fn input(message: impl Into<String>, row: Option<u64>, column: Option<&str>) -> Self {
        Error::InvalidInput {
            message: message.into(),
            row,
            column: column.map(str::to_string),
        }
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidConfig(message) => write!(f, "invalid config: {message}"),
            Error::InvalidInput {
                message,
                row,
                column,
            } => {
                write!(f, "invalid input")?;
                if let Some(column) = column {
                    write!(f, " in column {column}")?;
                }
                if let Some(row) = row {
                    write!(f, " at row {row}")?;
                }
                write!(f, ": {message}")
            }
            Error::Internal(message) => write!(f, "internal error: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ArrowError> for Error {
    fn from(e: ArrowError) -> Self {
        Error::Internal(e.to_string())
    }
}

/// The index of `name` in `schema`, checking its type is one of `allowed` (any type when empty).
/// Fails with [`Error::InvalidConfig`] naming the column, its type and what was expected.
pub fn column_index(
    schema: &arrow_schema::Schema,
    name: &str,
    allowed: &[DataType],
) -> Result<usize, Error> {
    let (index, field) = schema.column_with_name(name).ok_or_else(|| {
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        Error::config(format!(
            "column {name:?} not found in the input; it has {}",
            names.join(", ")
        ))
    })?;
    if !allowed.is_empty() && !allowed.contains(field.data_type()) {
        let expected: Vec<_> = allowed.iter().map(|t| t.to_string()).collect();
        return Err(Error::config(format!(
            "column {name:?} is {}, expected {}",
            field.data_type(),
            expected.join(" or ")
        )));
    }
    Ok(index)
}

/// Static facts about a plugin, as published through the component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub name: String,
    pub version: String,
    pub description: String,
    pub config_schema: String,
    pub input_columns: Option<Vec<String>>,
}

/// The metadata of `T`, given its package facts.
pub fn metadata<T: Transform>(name: &str, version: &str, description: &str) -> Metadata {
    let schema = schemars::schema_for!(T::Config);
    Metadata {
        name: name
            .strip_prefix("weir-plugin-")
            .unwrap_or(name)
            .to_string(),
        version: version.to_string(),
        description: description.to_string(),
        config_schema: serde_json::to_string(&schema).unwrap_or_else(|_| "{}".into()),
        input_columns: T::INPUT_COLUMNS.map(|c| c.iter().map(|s| s.to_string()).collect()),
    }
}

/// Parses a JSON config for `T`, with errors that name the field and position.
pub fn parse_config<T: Transform>(config: &str) -> Result<T::Config, Error> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(config).map_err(|e| Error::config(e.to_string()))
}

#[doc(hidden)]
pub mod __private {
    pub use crate::session::Session;

    #[cfg(target_arch = "wasm32")]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "plugin",
            pub_export_macro: true,
            export_macro_name: "__export_weir_plugin",
            default_bindings_module: "weir_sdk::__private::bindings",
        });
    }

    #[cfg(target_arch = "wasm32")]
    pub use crate::session::guest;
}

/// Exports a [`Transform`] as this component's `weir:plugin/transform`.
///
/// Use it once, at the crate root of a `cdylib` plugin crate. Native builds ignore it, so the
/// same crate can be unit-tested natively and linked into native tools.
#[macro_export]
macro_rules! export {
    ($transform:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::bindings::exports::weir::plugin::transform as wit;

            static SESSION: $crate::__private::guest::Slot<$transform> =
                $crate::__private::guest::Slot::new();

            struct WeirPluginExport;

            impl wit::Guest for WeirPluginExport {
                fn metadata() -> wit::PluginMetadata {
                    $crate::__private::guest::metadata::<$transform>(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                        env!("CARGO_PKG_DESCRIPTION"),
                    )
                }
                fn input_columns(config: String) -> Result<Option<Vec<String>>, wit::Error> {
                    $crate::__private::guest::input_columns::<$transform>(&config)
                }
                fn open(config: String, input_schema: Vec<u8>) -> Result<Vec<u8>, wit::Error> {
                    SESSION.open(&config, &input_schema)
                }
                fn process(batch: Vec<u8>) -> Result<Vec<Vec<u8>>, wit::Error> {
                    SESSION.process(batch)
                }
                fn finish() -> Result<Vec<Vec<u8>>, wit::Error> {
                    SESSION.finish()
                }
            }

            $crate::__private::bindings::__export_weir_plugin!(WeirPluginExport with_types_in $crate::__private::bindings);
        };
    };
}
