//! Artifact descriptors from arbitrary bytes, and the contract they are
//! checked against: shared by the cargo-fuzz target
//! (`runtime/kiln-runtime-core/fuzz`, `scripts/fuzz.sh 60 descriptor`) and
//! the regression replay in `tests/descriptors.rs`.
//!
//! [`check_bytes`] builds a `kiln_artifact_v1` whose fields come from the
//! input (counts, NULL or real pointers, dtype codes, ranks, dims, names,
//! sizes), loads it with [`Model::from_artifact`] and compares the outcome
//! with [`Spec`], an independent statement of what `kiln.h` allows. Loading
//! must never panic or crash; it must succeed exactly when the spec says the
//! descriptor is valid, and fail with an error of a class the spec names
//! otherwise; a loaded model must describe exactly the declared tensors and
//! run (the entry does nothing) when given buffers of the declared sizes.
//!
//! What cannot be validated is not generated: a pointer is NULL or points
//! to real memory of the declared length (the artifact contract), since a
//! wild pointer read is undefined behaviour no validation can catch.

#![allow(dead_code)]

use kiln_runtime_core::abi::{ArtifactV1, ExecCtx, TensorDesc, ABI_VERSION, BUFFER_ALIGN};
use kiln_runtime_core::{Error, Model, RawTensor};
use std::ffi::{c_char, c_void, CString};

/// Bits per element of each `kiln_dtype` code, from `kiln.h` (index = code).
const DTYPE_BITS: [u32; 25] = [
    0, 64, 32, 16, 16, 8, 8, 4, 64, 32, 16, 8, 4, 64, 32, 16, 8, 4, 8, 8, 8, 4, 8, 2, 2,
];
/// `kiln.h`: at most this many inputs or outputs, and this rank.
const MAX_TENSORS: u32 = 1 << 16;
const MAX_RANK: u32 = 64;

/// The entry of every generated descriptor: succeeds without touching
/// anything.
pub unsafe extern "C" fn noop_entry(
    _ctx: *const ExecCtx,
    _inputs: *const *mut c_void,
    _outputs: *const *mut c_void,
    _weights: *const u8,
    _workspace: *mut u8,
) -> i32 {
    0
}

/// Reads little-endian values off the input; zeros once it runs out.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let s = self.bytes(4);
        b[..s.len()].copy_from_slice(s);
        u32::from_le_bytes(b)
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let s = self.bytes(8);
        b[..s.len()].copy_from_slice(s);
        u64::from_le_bytes(b)
    }
    /// Mostly small values (as real descriptors have), sometimes any u32.
    fn small_or_any_u32(&mut self, small: u32) -> u32 {
        match self.u8() {
            0..=223 => u32::from(self.u8()) % (small + 1),
            _ => self.u32(),
        }
    }
    fn small_or_any_u64(&mut self, small: u64) -> u64 {
        match self.u8() {
            0..=191 => u64::from(self.u32()) % (small + 1),
            _ => self.u64(),
        }
    }
}

/// An optional C string: NULL, printable ASCII, or any bytes (possibly not
/// UTF-8), NUL-terminated.
#[derive(Debug, Clone)]
enum Text {
    Null,
    Str(CString),
}

impl Text {
    fn read(r: &mut Reader<'_>, null_odds: u8) -> Text {
        let mode = r.u8();
        if mode < null_odds {
            return Text::Null;
        }
        let len = usize::from(r.u8() % 12);
        let raw: Vec<u8> = r.bytes(len).iter().map(|&b| b.max(1)).collect();
        let bytes = if mode % 16 == 0 {
            raw
        } else {
            raw.iter().map(|b| b'a' + b % 26).collect()
        };
        Text::Str(CString::new(bytes).expect("no NUL inside"))
    }
    fn ptr(&self) -> *const c_char {
        match self {
            Text::Null => std::ptr::null(),
            Text::Str(s) => s.as_ptr(),
        }
    }
    fn utf8(&self) -> Option<Option<&str>> {
        match self {
            Text::Null => Some(None),
            Text::Str(s) => s.to_str().ok().map(Some),
        }
    }
}

/// One generated tensor descriptor, owning what it points to.
#[derive(Debug)]
struct Desc {
    name: Text,
    dtype: u32,
    rank: u32,
    /// `None`: a NULL shape pointer; otherwise `rank` dims (only generated
    /// when rank is at most MAX_RANK: a longer array is never read).
    shape: Option<Vec<i64>>,
}

impl Desc {
    fn read(r: &mut Reader<'_>) -> Desc {
        let name = Text::read(r, 8);
        let dtype = r.small_or_any_u32(25);
        let rank = r.small_or_any_u32(5);
        let shape = if r.u8() < 8 || rank > MAX_RANK {
            None
        } else {
            Some(
                (0..rank)
                    .map(|_| match r.u8() {
                        0..=239 => i64::from(r.u8() % 9),
                        240..=247 => -i64::from(r.u8()) - 1,
                        _ => r.u64() as i64,
                    })
                    .collect(),
            )
        };
        Desc {
            name,
            dtype,
            rank,
            shape,
        }
    }
    fn raw(&self) -> TensorDesc {
        TensorDesc {
            name: self.name.ptr(),
            dtype: self.dtype,
            rank: self.rank,
            shape: self.shape.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
        }
    }
}

/// A list of descriptors as the artifact declares it.
#[derive(Debug)]
struct List {
    /// The declared count.
    count: u32,
    /// NULL array pointer?
    null: bool,
    /// The descriptors: `count` of them when the count is within the
    /// limit (so every declared one exists), none otherwise.
    descs: Vec<Desc>,
    raw: Vec<TensorDesc>,
}

impl List {
    fn read(r: &mut Reader<'_>) -> List {
        let count = match r.u8() {
            0..=239 => u32::from(r.u8() % 5),
            // Just over the limit (refused before anything is read), or at
            // it (every descriptor is read).
            240..=245 => MAX_TENSORS + 1,
            246 => MAX_TENSORS,
            _ => r.u32(),
        };
        let null = r.u8() < 8;
        let descs: Vec<Desc> = if count <= MAX_TENSORS && !null {
            (0..count).map(|_| Desc::read(r)).collect()
        } else {
            Vec::new()
        };
        let raw = descs.iter().map(Desc::raw).collect();
        List {
            count,
            null,
            descs,
            raw,
        }
    }
    fn ptr(&self) -> *const TensorDesc {
        if self.null {
            std::ptr::null()
        } else {
            self.raw.as_ptr()
        }
    }
}

/// Where the embedded weights pointer points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeightsPtr {
    Null,
    Aligned,
    Misaligned,
    /// Near the top of the address space, so that `weights_size` bytes
    /// would wrap around (never dereferenced by a correct runtime).
    NearEnd,
}

/// A whole generated artifact.
#[derive(Debug)]
pub struct Artifact {
    null: bool,
    version: u32,
    inputs: List,
    outputs: List,
    model_name: Text,
    producer: Text,
    weights: WeightsPtr,
    weights_size: u64,
    weights_file: Text,
    workspace_size: u64,
    has_entry: bool,
    weights_buf: Box<[u8; 2 * BUFFER_ALIGN]>,
}

/// The class of error a violated rule calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    LoadFailed,
    AbiMismatch,
    InvalidArgument,
}

fn class_of(e: &Error) -> Option<Class> {
    match e {
        Error::LoadFailed(_) => Some(Class::LoadFailed),
        Error::AbiMismatch { .. } => Some(Class::AbiMismatch),
        Error::InvalidArgument(_) => Some(Class::InvalidArgument),
        _ => None,
    }
}

impl Artifact {
    pub fn read(data: &[u8]) -> Artifact {
        let mut r = Reader { data };
        let null = r.u8() == 0xff;
        let version = if r.u8() < 8 { r.u32() } else { ABI_VERSION };
        let inputs = List::read(&mut r);
        let outputs = List::read(&mut r);
        let model_name = Text::read(&mut r, 64);
        let producer = Text::read(&mut r, 64);
        let weights = match r.u8() % 8 {
            0 => WeightsPtr::Aligned,
            1 => WeightsPtr::Misaligned,
            2 => WeightsPtr::NearEnd,
            _ => WeightsPtr::Null,
        };
        let weights_size = match r.u8() {
            0..=159 => 0,
            160..=223 => u64::from(r.u8()) % (2 * BUFFER_ALIGN as u64 + 1),
            _ => r.u64(),
        };
        let weights_file = Text::read(&mut r, 224);
        let workspace_size = r.small_or_any_u64(1 << 12);
        let has_entry = r.u8() >= 8;
        Artifact {
            null,
            version,
            inputs,
            outputs,
            model_name,
            producer,
            weights,
            weights_size,
            weights_file,
            workspace_size,
            has_entry,
            weights_buf: Box::new([0; 2 * BUFFER_ALIGN]),
        }
    }

    fn weights_ptr(&self) -> *const u8 {
        let base = self.weights_buf.as_ptr();
        let aligned = base.wrapping_add(base.align_offset(BUFFER_ALIGN));
        match self.weights {
            WeightsPtr::Null => std::ptr::null(),
            WeightsPtr::Aligned => aligned,
            WeightsPtr::Misaligned => aligned.wrapping_add(1),
            WeightsPtr::NearEnd => (usize::MAX - (BUFFER_ALIGN - 1)) as *const u8,
        }
    }

    fn raw(&self) -> ArtifactV1 {
        ArtifactV1 {
            abi_version: self.version,
            num_inputs: self.inputs.count,
            num_outputs: self.outputs.count,
            // No target record: its checks are the deploy tests' (cpu.rs).
            flags: 0,
            inputs: self.inputs.ptr(),
            outputs: self.outputs.ptr(),
            model_name: self.model_name.ptr(),
            producer: self.producer.ptr(),
            weights: self.weights_ptr(),
            weights_size: self.weights_size,
            weights_file: self.weights_file.ptr(),
            workspace_size: self.workspace_size,
            entry: if self.has_entry {
                Some(noop_entry)
            } else {
                None
            },
        }
    }

    /// The classes of error the descriptor calls for (empty: valid), from
    /// `kiln.h`'s rules, stated independently of the runtime's code.
    pub fn violations(&self) -> Vec<Class> {
        use Class::*;
        if self.null {
            return vec![LoadFailed];
        }
        if self.version != ABI_VERSION {
            // Nothing else is read from a descriptor of another version.
            return vec![AbiMismatch];
        }
        let mut v = Vec::new();
        if !self.has_entry {
            v.push(LoadFailed);
        }
        for list in [&self.inputs, &self.outputs] {
            if list.count > MAX_TENSORS || (list.count > 0 && list.null) {
                v.push(LoadFailed);
                continue;
            }
            for d in &list.descs {
                if !list_desc_valid(d) {
                    v.push(LoadFailed);
                }
            }
        }
        for t in [&self.model_name, &self.producer, &self.weights_file] {
            if t.utf8().is_none() {
                v.push(LoadFailed);
            }
        }
        // The workspace is allocated 64-byte aligned: its size rounded up
        // must be a valid allocation size (at most isize::MAX).
        let ws_ok = self
            .workspace_size
            .checked_next_multiple_of(BUFFER_ALIGN as u64)
            .is_some_and(|s| s <= isize::MAX as u64);
        if !ws_ok {
            v.push(LoadFailed);
        }
        let has_file = !matches!(self.weights_file, Text::Null);
        match (self.weights, has_file) {
            (WeightsPtr::Null, false) => {
                if self.weights_size != 0 {
                    v.push(LoadFailed);
                }
            }
            // External weights but no path given (from_artifact(.., None)).
            (WeightsPtr::Null, true) => v.push(InvalidArgument),
            (_, true) => v.push(LoadFailed),
            (WeightsPtr::Misaligned, false) => v.push(LoadFailed),
            (_, false) => {
                // The bytes must fit the address space: no object is larger
                // than isize::MAX, and the end must not wrap around.
                let end = (self.weights_ptr() as u64).checked_add(self.weights_size);
                if self.weights_size > isize::MAX as u64 || end.is_none() {
                    v.push(LoadFailed);
                }
            }
        }
        v
    }
}

/// `kiln.h`'s rules for one tensor descriptor.
fn list_desc_valid(d: &Desc) -> bool {
    let name_ok = matches!(d.name.utf8(), Some(Some(_)));
    let bits = usize::try_from(d.dtype)
        .ok()
        .and_then(|i| DTYPE_BITS.get(i).copied())
        .filter(|&b| b > 0);
    let Some(bits) = bits else {
        return false;
    };
    if !name_ok || d.rank > MAX_RANK {
        return false;
    }
    let dims: &[i64] = match (&d.shape, d.rank) {
        (_, 0) => &[],
        (None, _) => return false,
        (Some(s), _) => s,
    };
    byte_size(dims, bits).is_some()
}

/// Bytes of a tensor: every dim non-negative, a zero dim makes it empty
/// whatever the others, and no buffer can be larger than isize::MAX bytes.
fn byte_size(dims: &[i64], bits: u32) -> Option<u64> {
    if dims.iter().any(|&d| d < 0) {
        return None;
    }
    if dims.contains(&0) {
        return Some(0);
    }
    let mut n: u128 = 1;
    for &d in dims {
        n = n.checked_mul(d as u128)?;
    }
    let bytes = n.checked_mul(u128::from(bits))?.div_ceil(8);
    (bytes <= isize::MAX as u128).then_some(bytes as u64)
}

/// Builds the descriptor `data` describes, loads it and checks the outcome
/// against [`Artifact::violations`]; `Err` describes a runtime bug.
pub fn check_bytes(data: &[u8]) -> Result<(), String> {
    let art = Artifact::read(data);
    let raw = art.raw();
    let ptr: *const ArtifactV1 = if art.null { std::ptr::null() } else { &raw };
    let want = art.violations();
    // SAFETY: every pointer in `raw` is NULL or points to live memory of
    // the declared length (owned by `art`), except a NearEnd weights pointer,
    // which a correct runtime never dereferences.
    let loaded = unsafe { Model::from_artifact(ptr, None) };
    let model = match (loaded, want.is_empty()) {
        (Ok(model), true) => model,
        (Ok(_), false) => {
            return Err(format!(
                "accepted a descriptor that breaks the contract ({want:?}): {art:#?}"
            ))
        }
        (Err(e), true) => return Err(format!("refused a valid descriptor: {e}: {art:#?}")),
        (Err(e), false) => {
            return match class_of(&e) {
                Some(c) if want.contains(&c) => Ok(()),
                _ => Err(format!(
                    "refused with {e:?}, expected one of {want:?}: {art:#?}"
                )),
            }
        }
    };
    check_loaded(&art, &model)
}

/// A loaded model describes the declared tensors and runs on buffers of the
/// declared sizes; wrong tensor counts are refused.
fn check_loaded(art: &Artifact, model: &Model) -> Result<(), String> {
    let mut total: u64 = 0;
    for (list, infos) in [
        (&art.inputs, model.inputs()),
        (&art.outputs, model.outputs()),
    ] {
        if infos.len() != list.descs.len() {
            return Err(format!(
                "{} tensors loaded, {} declared",
                infos.len(),
                list.descs.len()
            ));
        }
        for (d, info) in list.descs.iter().zip(infos) {
            let Text::Str(name) = &d.name else {
                return Err("a tensor without a name loaded".into());
            };
            let dims = d.shape.clone().unwrap_or_default();
            if info.name().as_bytes() != name.as_bytes()
                || info.dtype().code() != d.dtype
                || info.shape() != dims.as_slice()
            {
                return Err(format!("loaded {info:?} for {d:?}"));
            }
            total = total.saturating_add(info.byte_size());
        }
    }
    // Run only when the buffers and the workspace are small, on the
    // caller's thread (a pool per input would dominate the time).
    if total > 1 << 20 || art.workspace_size > 1 << 24 {
        return Ok(());
    }
    model
        .set_num_threads(1)
        .map_err(|e| format!("set_num_threads(1): {e}"))?;
    let mut buffers: Vec<Vec<u64>> = model
        .inputs()
        .iter()
        .chain(model.outputs())
        .map(|i| vec![0u64; (i.byte_size() as usize).div_ceil(8)])
        .collect();
    let mut raw: Vec<RawTensor> = model
        .inputs()
        .iter()
        .chain(model.outputs())
        .zip(buffers.iter_mut())
        .map(|(info, buf)| RawTensor {
            dtype: info.dtype().code(),
            rank: info.shape().len() as u32,
            shape: info.shape().as_ptr(),
            data: buf.as_mut_ptr().cast(),
            byte_size: info.byte_size(),
        })
        .collect();
    let outputs = raw.split_off(model.inputs().len());
    // SAFETY: each tensor points to a live buffer of its declared size.
    unsafe { model.run_raw(&raw, &outputs) }.map_err(|e| format!("a valid run failed: {e}"))?;
    if !outputs.is_empty() {
        // SAFETY: as above; one output short is refused before any use.
        match unsafe { model.run_raw(&raw, &outputs[1..]) } {
            Err(Error::InvalidArgument(_)) => {}
            other => return Err(format!("a missing output gave {other:?}")),
        }
    }
    Ok(())
}
