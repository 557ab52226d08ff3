//! The host functions Weir itself gives plugins, beyond the WASI interfaces.
//!
//! Each is pure: it grants no capability and holds no state. Its arguments come from an untrusted
//! plugin, so each is checked; a call against the rules traps the plugin with
//! [`ErrorKind::HostCall`](crate::ErrorKind::HostCall) naming the rule, and the instance is
//! discarded like any failed one. Host calls cannot be interrupted by the epoch deadline, so each
//! has a per-call cap that bounds its CPU time (see `weir_sdk::hash`); the time they take still
//! counts against the batch and task CPU limits.

use std::borrow::Cow;
use std::fmt;

use wasmtime::component::{Linker, WasmList};
use weir_sdk::hash::{self, Algorithm, Encoding};

use crate::bindings::weir::plugin::hash as wit;
use crate::sandbox::HostState;

/// The interface as components import it.
const HASH_INTERFACE: &str = "weir:plugin/hash@0.1.0";

/// Links the `weir:plugin` imports.
///
/// Written out rather than through the bindgen `Host` trait so that the byte lists are read in
/// place in the plugin's memory ([`WasmList`]) instead of being copied into host vectors first.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    type Args = (wit::Algorithm, WasmList<u8>, WasmList<u8>, WasmList<i32>);
    type HexArgs = (
        wit::Algorithm,
        WasmList<u8>,
        WasmList<u8>,
        WasmList<i32>,
        u8,
    );
    let mut hash = linker.instance(HASH_INTERFACE)?;
    hash.func_wrap(
        "digest-many",
        |store, (algorithm, key, data, offsets): Args| {
            let offsets = offsets_of(&offsets, &store);
            digest(
                "weir:plugin/hash.digest-many",
                algorithm,
                key.as_le_slice(&store),
                data.as_le_slice(&store),
                &offsets,
                Ok(Encoding::Raw),
            )
            .map(|digests| (digests,))
        },
    )?;
    hash.func_wrap(
        "digest-many-hex",
        |store, (algorithm, key, data, offsets, digits): HexArgs| {
            let offsets = offsets_of(&offsets, &store);
            digest(
                "weir:plugin/hash.digest-many-hex",
                algorithm,
                key.as_le_slice(&store),
                data.as_le_slice(&store),
                &offsets,
                Encoding::hex(usize::from(digits)),
            )
            .map(|digests| (digests,))
        },
    )?;
    Ok(())
}

/// A `list<s32>` in the plugin's memory, read in place where the host is little-endian.
fn offsets_of<'a>(
    list: &WasmList<i32>,
    store: &'a wasmtime::StoreContextMut<'_, HostState>,
) -> Cow<'a, [i32]> {
    let raw = list.as_le_slice(store);
    if cfg!(target_endian = "little") {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(raw.iter().map(|o| i32::from_le(*o)).collect())
    }
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
