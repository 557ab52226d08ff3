//! Declares its input schema as its output, then returns bytes that are not IPC, or, with a
//! config naming a `forge` mode, a passthrough frame (see `weir_sdk::ipc`) that lies: it repeats
//! an input column that does not exist (`"missing-column"`), one of another type where an
//! `Int64` is declared (`"wrong-type"`), or claims more rows than the input has (`"rows"`); or a
//! selection frame whose header miscounts its bitmap (`"selection-count"`).
#![cfg(target_arch = "wasm32")]

use std::sync::Mutex;

use wit::{Error, PluginMetadata as Metadata};
use wit_bindings::exports::weir::plugin::transform as wit;

mod wit_bindings {
    wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });
}

struct Raw;

static FORGE: Mutex<Option<String>> = Mutex::new(None);

/// A passthrough frame whose first column repeats input column `source`, all others input
/// column `i` for output column `i`, for `rows` rows.
fn forged(columns: u32, rows: u32, source: u32) -> Vec<u8> {
    let mut frame = b"WEIRPT01".to_vec();
    frame.extend_from_slice(&columns.to_le_bytes());
    frame.extend_from_slice(&rows.to_le_bytes());
    frame.extend_from_slice(&source.to_le_bytes());
    for column in 1..columns {
        frame.extend_from_slice(&column.to_le_bytes());
    }
    frame.resize((16 + 4 * columns as usize).next_multiple_of(64), 0);
    frame
}

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
    fn open(config: String, input_schema: Vec<u8>) -> Result<Vec<u8>, Error> {
        let forge = config
            .split('"')
            .skip_while(|part| *part != "forge")
            .nth(2)
            .map(str::to_string);
        *FORGE.lock().unwrap() = forge;
        Ok(input_schema)
    }
    fn process(batch: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        // The hostile suite's input: `id` (Int64) and `name` (Utf8), 1,000 rows.
        match FORGE.lock().unwrap().as_deref() {
            Some("missing-column") => return Ok(vec![forged(2, 1000, 42)]),
            Some("wrong-type") => return Ok(vec![forged(2, 1000, 1)]),
            Some("rows") => return Ok(vec![forged(2, 1_000_000, 0)]),
            Some("selection-count") => {
                // A selection frame whose header miscounts its bitmap (every row set).
                let mut frame = b"WEIRSEL1".to_vec();
                frame.extend_from_slice(&1000u32.to_le_bytes());
                frame.extend_from_slice(&999u32.to_le_bytes());
                frame.resize(64, 0);
                frame.extend(std::iter::repeat_n(0xff, 125));
                return Ok(vec![frame]);
            }
            _ => {}
        }
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
