//! The host functions Weir itself gives plugins, beyond the WASI interfaces.
//!
//! Each is pure: it grants no capability and holds no state. Its arguments come from an untrusted
//! plugin, so each is checked; a call against the rules traps the plugin with
//! [`ErrorKind::HostCall`](crate::ErrorKind::HostCall) naming the rule, and the instance is
//! discarded like any failed one. Host calls cannot be interrupted by the epoch deadline, so each
//! has a per-call cap that bounds its CPU time (see `weir_sdk::hash`); the time they take still
//! counts against the batch and task CPU limits.

use std::fmt;

use wasmtime::component::{HasSelf, Linker};
use weir_sdk::hash::{self, Algorithm, Encoding};

use crate::bindings::weir::plugin::hash as wit;
use crate::sandbox::HostState;

/// Links the `weir:plugin` imports.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)
}

/// A host call a plugin made against the rules; carried as the trap's error.
#[derive(Debug)]
pub(crate) struct HostCallRefused {
    pub(crate) function: &'static str,
    pub(crate) rule: String,
}

impl fmt::Display for HostCallRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.function, self.rule)
    }
}

impl std::error::Error for HostCallRefused {}

impl wit::Host for HostState {
    fn digest_many(
        &mut self,
        algorithm: wit::Algorithm,
        key: Vec<u8>,
        data: Vec<u8>,
        offsets: Vec<i32>,
    ) -> wasmtime::Result<Vec<u8>> {
        digest(
            "weir:plugin/hash.digest-many",
            algorithm,
            &key,
            &data,
            &offsets,
            Ok(Encoding::Raw),
        )
    }

    fn digest_many_hex(
        &mut self,
        algorithm: wit::Algorithm,
        key: Vec<u8>,
        data: Vec<u8>,
        offsets: Vec<i32>,
        digits: u8,
    ) -> wasmtime::Result<Vec<u8>> {
        digest(
            "weir:plugin/hash.digest-many-hex",
            algorithm,
            &key,
            &data,
            &offsets,
            Encoding::hex(usize::from(digits)),
        )
    }
}

fn digest(
    function: &'static str,
    algorithm: wit::Algorithm,
    key: &[u8],
    data: &[u8],
    offsets: &[i32],
    encoding: Result<Encoding, String>,
) -> wasmtime::Result<Vec<u8>> {
    let algorithm = match algorithm {
        wit::Algorithm::Blake3Keyed => Algorithm::Blake3Keyed,
        wit::Algorithm::HmacSha256 => Algorithm::HmacSha256,
        wit::Algorithm::Sha256Prefixed => Algorithm::Sha256Prefixed,
    };
    let refused = |rule| HostCallRefused { function, rule };
    let encoding = encoding.map_err(refused)?;
    hash::check_call(algorithm, key, data, offsets).map_err(refused)?;
    let mut digests = Vec::new();
    hash::digest_into(algorithm, key, data, offsets, encoding, &mut digests);
    Ok(digests)
}
