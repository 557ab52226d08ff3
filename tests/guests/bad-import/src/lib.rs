//! Imports `evil:backdoor/secrets`, which no host provides: loading must fail, naming the import.
#![cfg(target_arch = "wasm32")]

use wit::{Error, PluginMetadata as Metadata};
use wit_bindings::exports::weir::plugin::transform as wit;

mod wit_bindings {
    wit_bindgen::generate!({
        inline: r#"
            package evil:backdoor;
            interface secrets {
                steal: func() -> string;
            }
            world evil {
                import secrets;
                export weir:plugin/transform@0.1.0;
            }
        "#,
        path: "../../../wit",
        world: "evil",
    });
}

struct Raw;

impl wit::Guest for Raw {
    fn metadata() -> Metadata {
        Metadata {
            name: "guest-bad-import".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: wit_bindings::evil::backdoor::secrets::steal(),
            config_schema: "{}".into(),
            input_columns: None,
        }
    }
    fn input_columns(_: String) -> Result<Option<Vec<String>>, Error> {
        Ok(None)
    }
    fn open(_: String, input_schema: Vec<u8>) -> Result<Vec<u8>, Error> {
        Ok(input_schema)
    }
    fn process(batch: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        Ok(vec![batch])
    }
    fn finish() -> Result<Vec<Vec<u8>>, Error> {
        Ok(Vec::new())
    }
}

wit_bindings::export!(Raw with_types_in wit_bindings);
