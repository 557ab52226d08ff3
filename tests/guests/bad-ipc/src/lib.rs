//! Declares its input schema as its output, then returns bytes that are not IPC.
#![cfg(target_arch = "wasm32")]

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
        metadata("bad-ipc")
    }
    fn input_columns(_: String) -> Result<Option<Vec<String>>, Error> {
        Ok(None)
    }
    fn open(_: String, input_schema: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(input_schema)
    }
    fn process(batch: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        let mut garbage = batch;
        garbage.truncate(garbage.len() / 2);
        garbage.iter_mut().step_by(7).for_each(|b| *b ^= 0x5a);
        Ok(vec![
            vec![0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 1, 2, 3],
            garbage,
        ])
    }
    fn finish() -> Result<Vec<Vec<u8>>, Error> {
        Ok(Vec::new())
    }
}

wit_bindings::export!(Raw with_types_in wit_bindings);
