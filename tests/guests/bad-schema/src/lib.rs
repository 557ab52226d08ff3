//! Declares its input schema as its output, then returns batches of a different schema,
//! encoded as well-formed IPC.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use weir_sdk::arrow_array::{ArrayRef, RecordBatch, StringArray};
use weir_sdk::ipc::BatchEncoder;

use wit::{Error, PluginMetadata as Metadata};
use wit_bindings::exports::weir::plugin::transform as wit;

mod wit_bindings {
    wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });
}

struct Raw;

fn metadata(name: &str) -> Metadata {
    Metadata {
        name: format!("guest-{name}"),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "hostile".into(),
        config_schema: "{}".into(),
        input_columns: None,
    }
}

impl wit::Guest for Raw {
    fn metadata() -> Metadata {
        metadata("bad-schema")
    }
    fn input_columns(_: String) -> Result<Option<Vec<String>>, Error> {
        Ok(None)
    }
    fn open(_: String, input_schema: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(input_schema)
    }
    fn process(_: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        let column: ArrayRef = Arc::new(StringArray::from(vec!["not", "what", "was", "declared"]));
        let batch = RecordBatch::try_from_iter([("surprise", column)])
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (mut encoder, _) =
            BatchEncoder::new(batch.schema()).map_err(|e| Error::Internal(e.to_string()))?;
        let payload = encoder
            .encode(&batch)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(vec![payload])
    }
    fn finish() -> Result<Vec<Vec<u8>>, Error> {
        Ok(Vec::new())
    }
}

wit_bindings::export!(Raw with_types_in wit_bindings);
