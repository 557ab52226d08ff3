//! How payloads cross the canonical ABI, with one plain memory copy each way.
//!
//! In: [`Gather`] lowers a payload held in pieces into the guest as one `list<u8>`, copying each
//! piece once, straight from the Arrow buffers it shares into the guest's memory.
//! Out: [`Payloads`] lifts a `list<list<u8>>` with one `memcpy` per payload into 64-byte-aligned
//! buffers that the decoded arrays then share (wasmtime's own `Vec<u8>` lifting copies byte by
//! byte).
//!
//! wasmtime lowers a `&[u8]` parameter with one copy from a contiguous host buffer, so a batch
//! would first have to be IPC-encoded into one (a second copy). [`Gather`] is lowered exactly as
//! a `list<u8>` would be (one `realloc` in the guest, then the bytes), but from the pieces
//! [`BatchEncoder::encode_pieces`](weir_sdk::ipc::BatchEncoder::encode_pieces) returns, which
//! share the batch's buffers.
//!
//! This implements wasmtime's `ComponentType`/`Lower` by hand, against its documented-as-internal
//! canonical ABI hooks; the type check delegates to `[u8]`'s, so a component whose parameter is
//! not a `list<u8>` is refused.

use std::mem::MaybeUninit;

use wasmtime::ValRaw;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, LowerContext,
};
use wasmtime::component::{ComponentType, Lift, Lower};
use weir_sdk::ipc::{Buffer, MutableBuffer};

/// A `list<u8>` whose bytes are the concatenation of `pieces`.
#[derive(Clone, Copy)]
pub(crate) struct Gather<'a> {
    pub pieces: &'a [Buffer],
}

impl Gather<'_> {
    fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.len()).sum()
    }

    /// Allocates the list in the guest and copies the pieces into it; returns (pointer, length).
    fn store<T>(&self, cx: &mut LowerContext<'_, T>) -> wasmtime::Result<(u32, u32)> {
        let len = self.len();
        let len32 = u32::try_from(len)
            .map_err(|_| wasmtime::format_err!("a payload of {len} bytes does not fit a list"))?;
        let ptr = cx.realloc(0, 0, 1, len)?;
        let ptr32 = u32::try_from(ptr)
            .map_err(|_| wasmtime::format_err!("realloc returned an out-of-bounds pointer"))?;
        let memory = cx.as_slice_mut();
        let dst = ptr
            .checked_add(len)
            .and_then(|end| memory.get_mut(ptr..end))
            .ok_or_else(|| wasmtime::format_err!("realloc returned an out-of-bounds pointer"))?;
        let mut at = 0;
        for piece in self.pieces {
            dst[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
        debug_assert_eq!(at, len);
        Ok((ptr32, len32))
    }
}

// SAFETY: lowered exactly as `[u8]` is (the same ABI, flat form and memory form: a pointer and a
// length, 32-bit), and type-checked as `[u8]`.
unsafe impl ComponentType for Gather<'_> {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: writes a valid pointer pair for memory it allocated through the guest's `realloc` and
// filled completely.
unsafe impl Lower for Gather<'_> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        dst: &mut MaybeUninit<[ValRaw; 2]>,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        // 64-bit values, as wasmtime writes every pointer pair.
        dst.write([ValRaw::i64(ptr.into()), ValRaw::i64(len.into())]);
        Ok(())
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        _ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let (ptr, len) = self.store(cx)?;
        *cx.get::<4>(offset) = ptr.to_le_bytes();
        *cx.get::<4>(offset + 4) = len.to_le_bytes();
        Ok(())
    }
}

/// The payloads a plugin returned: a `list<list<u8>>`, each inner list copied out of guest memory
/// once.
pub(crate) struct Payloads(pub Vec<Buffer>);

impl Payloads {
    /// Reads the list whose (pointer, length) pair is `ptr`, `len`.
    fn load(cx: &mut LiftContext<'_>, ptr: u32, len: u32) -> wasmtime::Result<Self> {
        let memory = cx.memory();
        let out_of_bounds = || wasmtime::format_err!("list pointer/length out of bounds of memory");
        let (ptr, len) = (ptr as usize, len as usize);
        if !ptr.is_multiple_of(4) {
            wasmtime::bail!("list pointer is not aligned");
        }
        let pairs = len
            .checked_mul(8)
            .and_then(|bytes| ptr.checked_add(bytes))
            .and_then(|end| memory.get(ptr..end))
            .ok_or_else(out_of_bounds)?;
        let mut payloads = Vec::with_capacity(len);
        for pair in pairs.chunks_exact(8) {
            let at = u32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
            let n = u32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]) as usize;
            let bytes = at
                .checked_add(n)
                .and_then(|end| memory.get(at..end))
                .ok_or_else(out_of_bounds)?;
            let mut buffer = MutableBuffer::with_capacity(n);
            buffer.extend_from_slice(bytes);
            payloads.push(buffer.into());
        }
        Ok(Self(payloads))
    }
}

// SAFETY: the ABI and type check are those of `Vec<Vec<u8>>`.
unsafe impl ComponentType for Payloads {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<Vec<u8>> as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: reads only within guest memory, bounds-checked, as wasmtime's `Vec<Vec<u8>>` does.
unsafe impl Lift for Payloads {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        src: &[ValRaw; 2],
    ) -> wasmtime::Result<Self> {
        // Pointer pairs are 32-bit values stored in 64-bit slots.
        Self::load(cx, src[0].get_u32(), src[1].get_u32())
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let ptr = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Self::load(cx, ptr, len)
    }
}
