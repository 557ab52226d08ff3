//! Keyed hashing of many values at once, computed natively by the host.
//!
//! Hashing PII is the one common transform step that Wasm cannot run at native speed: the host's
//! CPU has SHA instructions and wide SIMD that Wasm cannot reach. So hashing is a host function,
//! the `weir:plugin/hash` import. It is pure: it grants nothing and holds no state.
//!
//! [`Hasher::digest_many`] takes a column laid out the Arrow way (values and offsets) and hashes
//! every value. In a component it hands the host a slice of the column per call, without copying
//! in the plugin. Built natively (unit tests, native tools) it computes the same digests here, with
//! the same code the host runs ([`digest_into`]). Either way the digests are those of the reference
//! algorithms, so where a plugin runs never changes its output.
//!
//! [`Hasher::digest_many_hex`] does the same but gets the digests as lowercase hex, cut to a given
//! number of digits and concatenated: exactly the values buffer of a string column of hashes,
//! which the plugin can wrap without formatting or copying anything.
//!
//! ```
//! use weir_sdk::hash::{Algorithm, Hasher};
//!
//! let hasher = Hasher::new(Algorithm::HmacSha256, b"key").unwrap();
//! let (values, offsets) = (b"adabob", [0, 3, 3, 6]); // "ada", "", "bob"
//! let mut digests = Vec::new();
//! hasher.digest_many(values, &offsets, &mut digests).unwrap();
//! assert_eq!(digests.len(), 3 * weir_sdk::hash::DIGEST_BYTES);
//! ```

use std::borrow::Cow;

use crate::Error;

/// Bytes in every digest.
pub const DIGEST_BYTES: usize = 32;

/// Messages in one host call at most. A host call cannot be interrupted by the plugin's CPU
/// deadline, so the caps bound how long one call can hold the CPU: 65,536 short messages hash in
/// a few milliseconds. [`Hasher::digest_many`] splits larger inputs into several calls.
pub const MAX_MESSAGES_PER_CALL: usize = 65_536;

/// Bytes of data in one host call at most, unless the call carries a single message (which is
/// bounded by the plugin's memory). 64 MiB hash in well under a second.
pub const MAX_BYTES_PER_CALL: usize = 64 << 20;

/// Hex digits in a whole digest.
pub const MAX_HEX_DIGITS: usize = 2 * DIGEST_BYTES;

/// Bytes in a BLAKE3 key.
pub const BLAKE3_KEY_BYTES: usize = 32;

/// A keyed hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// BLAKE3 in keyed mode; the key must be exactly 32 bytes.
    Blake3Keyed,
    /// HMAC-SHA256 (RFC 2104); any key length.
    HmacSha256,
    /// SHA-256 of the key bytes immediately followed by the message.
    Sha256Prefixed,
}

/// An algorithm with its key.
#[derive(Clone, Debug)]
pub struct Hasher {
    algorithm: Algorithm,
    key: Vec<u8>,
}

/// Offsets of an Arrow string or binary column (`i32` or `i64`).
pub trait Offset: arrow_array::OffsetSizeTrait {
    /// `offsets` as `i32`s (rebased to start at 0 where they must be converted), or `None` if
    /// they do not fit.
    fn as_i32(offsets: &[Self]) -> Option<Cow<'_, [i32]>>;
}

impl Offset for i32 {
    fn as_i32(offsets: &[i32]) -> Option<Cow<'_, [i32]>> {
        Some(Cow::Borrowed(offsets))
    }
}

impl Offset for i64 {
    fn as_i32(offsets: &[i64]) -> Option<Cow<'_, [i32]>> {
        let base = *offsets.first()?;
        offsets
            .iter()
            .map(|o| i32::try_from(o - base).ok())
            .collect::<Option<Vec<i32>>>()
            .map(Cow::Owned)
    }
}

impl Hasher {
    /// `algorithm` keyed with `key`. BLAKE3's key must be 32 bytes.
    pub fn new(algorithm: Algorithm, key: &[u8]) -> Result<Self, Error> {
        check_key(algorithm, key).map_err(Error::config)?;
        Ok(Self {
            algorithm,
            key: key.to_vec(),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Appends the [`DIGEST_BYTES`]-byte digest of every message to `out`, in order.
    ///
    /// The messages are laid out like an Arrow string or binary column: message `i` is
    /// `values[offsets[i]..offsets[i + 1]]`, so a column's `values()` and `value_offsets()` go in
    /// as they are (null slots get a digest too; skip them). Offsets that decrease or point past
    /// `values` are an error.
    pub fn digest_many<O: Offset>(
        &self,
        values: &[u8],
        offsets: &[O],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.calls(values, offsets, DIGEST_BYTES, out, |data, chunk, out| {
            call_host(self.algorithm, &self.key, data, chunk, Encoding::Raw, out)
        })
    }

    /// [`digest_many`](Self::digest_many), but appends each digest as its first `digits`
    /// lowercase hex digits (1 to [`MAX_HEX_DIGITS`]): every message, null slots included, takes
    /// exactly `digits` bytes of `out`, all ASCII.
    ///
    /// When `out` starts empty and the column fits one host call (at most
    /// [`MAX_MESSAGES_PER_CALL`] values), `out` becomes the host's answer itself, with no copy.
    pub fn digest_many_hex<O: Offset>(
        &self,
        values: &[u8],
        offsets: &[O],
        digits: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let encoding = Encoding::hex(digits).map_err(Error::internal)?;
        self.calls(values, offsets, digits, out, |data, chunk, out| {
            call_host(self.algorithm, &self.key, data, chunk, encoding, out)
        })
    }

    /// Splits the messages into host calls within the per-call caps and makes them in order.
    fn calls<O: Offset>(
        &self,
        values: &[u8],
        offsets: &[O],
        bytes_per_message: usize,
        out: &mut Vec<u8>,
        mut call: impl FnMut(&[u8], &[i32], &mut Vec<u8>),
    ) -> Result<(), Error> {
        let messages = offsets.len().saturating_sub(1);
        if !out.is_empty() || messages > MAX_MESSAGES_PER_CALL {
            out.reserve(messages * bytes_per_message);
        }
        let mut start = 0;
        while start < messages {
            let first = offsets[start].as_usize();
            let mut end = (start + MAX_MESSAGES_PER_CALL).min(messages);
            // Fewer messages while the bytes are over the cap, but always at least one.
            while end > start + 1
                && offsets[end].as_usize().saturating_sub(first) > MAX_BYTES_PER_CALL
            {
                end = start + (end - start) / 2;
            }
            let last = offsets[end].as_usize();
            let data = values.get(first..last).ok_or_else(|| {
                Error::internal(format!(
                    "hash: offsets {first}..{last} are outside the {} bytes of values",
                    values.len()
                ))
            })?;
            let chunk = O::as_i32(&offsets[start..=end])
                .ok_or_else(|| Error::internal("hash: a message does not fit in 2 GiB"))?;
            check_call(self.algorithm, &self.key, data, &chunk).map_err(Error::internal)?;
            call(data, &chunk, out);
            start = end;
        }
        Ok(())
    }
}

/// How digests come back from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// [`DIGEST_BYTES`] raw bytes each (`digest-many`).
    Raw,
    /// The first `n` lowercase hex digits each, `n` in 1..=[`MAX_HEX_DIGITS`]
    /// (`digest-many-hex`).
    Hex(u8),
}

impl Encoding {
    /// `Hex(digits)`, or the rule `digits` breaks.
    pub fn hex(digits: usize) -> Result<Self, String> {
        match u8::try_from(digits) {
            Ok(n) if (1..=MAX_HEX_DIGITS).contains(&digits) => Ok(Encoding::Hex(n)),
            _ => Err(format!(
                "{digits} hex digits asked for; a digest has 1 to {MAX_HEX_DIGITS}"
            )),
        }
    }
}

fn check_key(algorithm: Algorithm, key: &[u8]) -> Result<(), String> {
    if algorithm == Algorithm::Blake3Keyed && key.len() != BLAKE3_KEY_BYTES {
        return Err(format!(
            "the blake3-keyed key must be {BLAKE3_KEY_BYTES} bytes, got {}",
            key.len()
        ));
    }
    Ok(())
}

/// Checks one call's arguments against the rules of `weir:plugin/hash.digest-many`.
pub fn check_call(
    algorithm: Algorithm,
    key: &[u8],
    data: &[u8],
    offsets: &[i32],
) -> Result<(), String> {
    check_key(algorithm, key)?;
    let Some((&base, rest)) = offsets.split_first() else {
        return Err("offsets is empty; it needs one more entry than there are messages".into());
    };
    if rest.len() > MAX_MESSAGES_PER_CALL {
        return Err(format!(
            "{} messages in one call, over the limit of {MAX_MESSAGES_PER_CALL}",
            rest.len()
        ));
    }
    if rest.len() > 1 && data.len() > MAX_BYTES_PER_CALL {
        return Err(format!(
            "{} bytes of data in one call, over the limit of {MAX_BYTES_PER_CALL} bytes",
            data.len()
        ));
    }
    // A fold without early exit vectorises (this runs on every call, in the plugin and the host);
    // the position is looked for only when there is one.
    let rising = offsets
        .windows(2)
        .fold(true, |rising, w| rising & (w[0] <= w[1]));
    if !rising && let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
        return Err(format!(
            "offsets decrease at message {i} ({} then {})",
            offsets[i],
            offsets[i + 1]
        ));
    }
    let last = rest.last().copied().unwrap_or(base);
    let span = i64::from(last) - i64::from(base);
    if span != data.len() as i64 {
        return Err(format!(
            "the offsets span {span} bytes but data has {}",
            data.len()
        ));
    }
    Ok(())
}

#[cfg(target_arch = "wasm32")]
fn call_host(
    algorithm: Algorithm,
    key: &[u8],
    data: &[u8],
    offsets: &[i32],
    encoding: Encoding,
    out: &mut Vec<u8>,
) {
    use crate::__private::bindings::weir::plugin::hash;
    let algorithm = match algorithm {
        Algorithm::Blake3Keyed => hash::Algorithm::Blake3Keyed,
        Algorithm::HmacSha256 => hash::Algorithm::HmacSha256,
        Algorithm::Sha256Prefixed => hash::Algorithm::Sha256Prefixed,
    };
    let answer = match encoding {
        Encoding::Raw => hash::digest_many(algorithm, key, data, offsets),
        Encoding::Hex(digits) => hash::digest_many_hex(algorithm, key, data, offsets, digits),
    };
    if out.is_empty() {
        *out = answer;
    } else {
        out.extend_from_slice(&answer);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn call_host(
    algorithm: Algorithm,
    key: &[u8],
    data: &[u8],
    offsets: &[i32],
    encoding: Encoding,
    out: &mut Vec<u8>,
) {
    digest_into(algorithm, key, data, offsets, encoding, out);
}

/// What the host runs for `weir:plugin/hash.digest-many` (`Encoding::Raw`) and `digest-many-hex`,
/// once [`check_call`] has passed: appends the digest of every message to `out`.
#[cfg(not(target_arch = "wasm32"))]
pub fn digest_into(
    algorithm: Algorithm,
    key: &[u8],
    data: &[u8],
    offsets: &[i32],
    encoding: Encoding,
    out: &mut Vec<u8>,
) {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    debug_assert!(check_call(algorithm, key, data, offsets).is_ok());
    let base = offsets.first().copied().unwrap_or(0);
    let messages = offsets
        .windows(2)
        .map(|w| &data[(w[0] - base) as usize..(w[1] - base) as usize]);
    let width = match encoding {
        Encoding::Raw => DIGEST_BYTES,
        Encoding::Hex(digits) => usize::from(digits),
    };
    let start = out.len();
    out.resize(start + offsets.len().saturating_sub(1) * width, 0);
    let mut slots = out[start..].chunks_exact_mut(width);
    let mut put = |digest: &[u8]| {
        let Some(slot) = slots.next() else { return };
        match encoding {
            Encoding::Raw => slot.copy_from_slice(digest),
            Encoding::Hex(_) => write_hex(digest, slot),
        }
    };
    match algorithm {
        Algorithm::Blake3Keyed => {
            let Ok(key) = <&[u8; BLAKE3_KEY_BYTES]>::try_from(key) else {
                return;
            };
            for message in messages {
                put(blake3::keyed_hash(key, message).as_bytes());
            }
        }
        Algorithm::HmacSha256 => {
            // HMAC takes keys of any length, so this always succeeds.
            let Ok(prototype) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
                return;
            };
            for message in messages {
                let mut mac = prototype.clone();
                mac.update(message);
                put(&mac.finalize().into_bytes());
            }
        }
        Algorithm::Sha256Prefixed => {
            let mut prototype = Sha256::new();
            prototype.update(key);
            for message in messages {
                let mut hasher = prototype.clone();
                hasher.update(message);
                put(&hasher.finalize());
            }
        }
    }
}

/// Writes the first `out.len()` (at most [`MAX_HEX_DIGITS`]) lowercase hex digits of `digest`.
#[cfg(not(target_arch = "wasm32"))]
fn write_hex(digest: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = out.len();
    debug_assert!(digest.len() == DIGEST_BYTES && (1..=MAX_HEX_DIGITS).contains(&digits));
    let mut pairs = out.chunks_exact_mut(2);
    for (pair, &byte) in (&mut pairs).zip(digest) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    if let [last] = pairs.into_remainder() {
        *last = DIGITS[usize::from(digest[digits / 2] >> 4)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    fn digests(hasher: &Hasher, values: &[u8], offsets: &[i32]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        hasher.digest_many(values, offsets, &mut out).unwrap();
        out.chunks(DIGEST_BYTES).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn digests_are_the_reference_algorithms() {
        let (values, offsets) = (b"xxadabob".as_slice(), [2, 5, 5, 8]);
        let key = [7u8; 32];
        let blake = digests(
            &Hasher::new(Algorithm::Blake3Keyed, &key).unwrap(),
            values,
            &offsets,
        );
        assert_eq!(blake[0], blake3::keyed_hash(&key, b"ada").as_bytes());
        assert_eq!(blake[1], blake3::keyed_hash(&key, b"").as_bytes());
        assert_eq!(blake[2], blake3::keyed_hash(&key, b"bob").as_bytes());

        let hmac = digests(
            &Hasher::new(Algorithm::HmacSha256, b"k").unwrap(),
            values,
            &offsets,
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
        mac.update(b"bob");
        assert_eq!(hmac[2], mac.finalize().into_bytes().to_vec());

        let sha = digests(
            &Hasher::new(Algorithm::Sha256Prefixed, b"k").unwrap(),
            values,
            &offsets,
        );
        assert_eq!(sha[0], Sha256::digest(b"kada").to_vec());
        assert_eq!(sha.len(), 3);
    }

    #[test]
    fn large_inputs_are_split_into_calls_with_the_same_digests() {
        let hasher = Hasher::new(Algorithm::Sha256Prefixed, b"k").unwrap();
        let n = MAX_MESSAGES_PER_CALL * 2 + 3;
        let values: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let offsets: Vec<i64> = (0..=n as i64).collect();
        let mut out = Vec::new();
        hasher.digest_many(&values, &offsets, &mut out).unwrap();
        assert_eq!(out.len(), n * DIGEST_BYTES);
        let last = &out[(n - 1) * DIGEST_BYTES..];
        assert_eq!(last, Sha256::digest([b'k', (n - 1) as u8]).as_slice());
    }

    #[test]
    fn hex_digests_are_the_raw_digests_in_hex() {
        let hasher = Hasher::new(Algorithm::Blake3Keyed, &[3; 32]).unwrap();
        let n = MAX_MESSAGES_PER_CALL + 5;
        let values: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let offsets: Vec<i32> = (0..=n as i32).collect();
        let mut raw = Vec::new();
        hasher.digest_many(&values, &offsets, &mut raw).unwrap();
        for digits in [1, 7, 32, 63, MAX_HEX_DIGITS] {
            let mut hex = Vec::new();
            hasher
                .digest_many_hex(&values, &offsets, digits, &mut hex)
                .unwrap();
            assert_eq!(hex.len(), n * digits, "{digits} digits");
            for (i, digest) in raw.chunks(DIGEST_BYTES).enumerate() {
                let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(
                    &hex[i * digits..(i + 1) * digits],
                    &expected.as_bytes()[..digits],
                    "message {i}, {digits} digits"
                );
            }
        }
        for digits in [0, MAX_HEX_DIGITS + 1, 300] {
            let err = hasher
                .digest_many_hex(&values, &offsets, digits, &mut Vec::new())
                .unwrap_err();
            assert!(err.to_string().contains("a digest has 1 to 64"), "{err}");
        }
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = Hasher::new(Algorithm::Blake3Keyed, b"short").unwrap_err();
        assert!(err.to_string().contains("must be 32 bytes, got 5"), "{err}");

        let hasher = Hasher::new(Algorithm::HmacSha256, b"k").unwrap();
        let err = hasher
            .digest_many(b"abc", &[0, 9], &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("outside the 3 bytes"), "{err}");

        let check = |offsets: &[i32], data: &[u8]| {
            check_call(Algorithm::HmacSha256, b"k", data, offsets).unwrap_err()
        };
        assert!(check(&[0, 2, 1], b"ab").contains("decrease at message 1"));
        assert!(check(&[0, 1], b"ab").contains("span 1 bytes but data has 2"));
        assert!(check(&[], b"").contains("offsets is empty"));
        let many = vec![0; MAX_MESSAGES_PER_CALL + 2];
        assert!(check(&many, b"").contains("over the limit of 65536"));
    }
}
