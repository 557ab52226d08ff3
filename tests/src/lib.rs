//! Paths of the Wasm guests the tests run, built by `build.rs`: the example plugins, and the
//! hostile programs under `tests/guests/` (each gets its own test through [`foreach_guest!`]).

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The bytes of a guest.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read guest {path}: {e}"))
}
