//! Calls the host's `weir:plugin/hash` functions against their rules, by the config's `abuse`:
//! offsets that decrease (`"offsets"`), a BLAKE3 key of the wrong length (`"key"`), one message
//! over the per-call cap (`"messages"`), hex digests of no digits or more than a digest has
//! (`"digits-0"`, `"digits-65"`), or calls within the caps forever (`"loop"`), which the CPU
//! deadline must still stop.
#![cfg(target_arch = "wasm32")]

use std::sync::Mutex;

use wit::{Error, PluginMetadata as Metadata};
use wit_bindings::exports::weir::plugin::transform as wit;
use wit_bindings::weir::plugin::hash::{Algorithm, digest_many, digest_many_hex};

mod wit_bindings {
    wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });
}

struct Abuse;

static ABUSE: Mutex<Option<String>> = Mutex::new(None);

impl wit::Guest for Abuse {
    fn metadata() -> Metadata {
        Metadata {
            name: "guest-hash-abuse".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "hostile".into(),
            config_schema: "{}".into(),
            input_columns: None,
        }
    }
    fn input_columns(_: String) -> Result<Option<Vec<String>>, Error> {
        Ok(None)
    }
    fn open(config: String, input_schema: Vec<u8>) -> Result<Vec<u8>, Error> {
        let abuse = config
            .split('"')
            .skip_while(|part| *part != "abuse")
            .nth(2)
            .map(str::to_string);
        *ABUSE.lock().unwrap() = abuse;
        Ok(input_schema)
    }
    fn process(_: Vec<u8>) -> Result<Vec<Vec<u8>>, Error> {
        let abuse = ABUSE.lock().unwrap().clone().unwrap_or_default();
        let digests = match abuse.as_str() {
            "offsets" => digest_many(Algorithm::HmacSha256, b"k", b"abc", &[0, 2, 1, 3]),
            "key" => digest_many(Algorithm::Blake3Keyed, b"short", b"abc", &[0, 3]),
            "digits-0" => digest_many_hex(Algorithm::HmacSha256, b"k", b"abc", &[0, 3], 0),
            "digits-65" => digest_many_hex(Algorithm::HmacSha256, b"k", b"abc", &[0, 3], 65),
            "messages" => {
                let offsets: Vec<i32> = (0..=65_537).collect();
                digest_many(Algorithm::Sha256Prefixed, b"k", &[7; 65_537], &offsets)
            }
            _ => {
                let offsets: Vec<i32> = (0..=65_536).collect();
                let data = vec![7; 65_536];
                loop {
                    let digests = digest_many(Algorithm::HmacSha256, b"k", &data, &offsets);
                    std::hint::black_box(digests);
                }
            }
        };
        Err(Error::Internal(format!(
            "the host returned {} bytes instead of refusing",
            digests.len()
        )))
    }
    fn finish() -> Result<Vec<Vec<u8>>, Error> {
        Ok(Vec::new())
    }
}

wit_bindings::export!(Abuse with_types_in wit_bindings);
