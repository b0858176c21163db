//! Host tensors for `kiln run`/`kiln bench`: reading inputs from `.npy` or
//! ONNX `TensorProto` (`.pb`) files, writing outputs, comparing results.
//!
//! Invariants:
//! - Tensor bytes are in Kiln's storage layout (little-endian, row-major)
//!   in a buffer aligned to 64 bytes, so they always pass the runtime's
//!   alignment check.
//! - `.pb` files are decoded by the ONNX frontend's own tensor decoder (the
//!   tensor is wrapped as the sole initializer of an in-memory model), so
//!   inputs get exactly the checks model weights get; external data is
//!   refused.
//! - `.npy` goes through `npyz` (reads the header's dtype and shape
//!   dynamically, streams typed data, writes standard v1 files; chosen over
//!   `ndarray-npy`, which needs the element type at compile time and pulls
//!   in `ndarray`). Fortran order and big-endian data are converted, not
//!   refused. f16 is NumPy's `<f2`; bf16 follows `ml_dtypes` (`<V2`, see
//!   [`NPY_BF16_DESCR`]); float8 and 4-bit types need `.pb` files.
//! - Tensor files are told apart by content (the `.npy` magic), never by
//!   extension.
//! - Comparisons never let NaN pass.

use crate::error::{DriverError, Result};
use kiln_ir::DType;
use kiln_onnx::proto::onnx as pb;
use prost::Message;
use std::path::Path;

/// A byte buffer aligned to 64 bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlignedBytes {
    words: Vec<[u64; 8]>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes {
            words: vec![[0u64; 8]; len.div_ceil(64)],
            len,
        }
    }

    /// Writes every byte (with zeros, as they are after [`AlignedBytes::zeroed`]), so that each
    /// page has its own memory. A fresh zeroed allocation is the OS's one shared zero page until
    /// written, and reading many virtual pages that alias one physical page is much slower on
    /// some CPUs (AMD's L1 tags lines by virtual address): inputs that are only read, as
    /// benchmark inputs are, would time that instead of the model.
    pub fn make_resident(&mut self) {
        // Opaque to the optimizer, so that a zero fill of zeroed memory is not elided.
        std::hint::black_box(self.as_mut()).fill(0);
    }

    /// A copy of `bytes`.
    pub fn from_slice(bytes: &[u8]) -> AlignedBytes {
        let mut b = AlignedBytes::zeroed(bytes.len());
        b.as_mut().copy_from_slice(bytes);
        b
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialized bytes; u64
        // arrays have no padding.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

impl AsMut<[u8]> for AlignedBytes {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_ref`; any byte pattern is a valid u64.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// A named tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// The graph input or output name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Extents, outermost first.
    pub shape: Vec<u64>,
    /// `dtype.storage_bytes(numel)` bytes in Kiln's storage layout.
    pub data: AlignedBytes,
}

impl HostTensor {
    /// A zero-filled tensor.
    pub fn zeros(name: &str, dtype: DType, shape: &[u64]) -> Result<HostTensor> {
        let bytes = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| dtype.storage_bytes(n))
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| {
                DriverError::Limit(format!("tensor '{name}' of shape {shape:?} is too large"))
            })?;
        Ok(HostTensor {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
            data: AlignedBytes::zeroed(bytes),
        })
    }

    /// Converts to the interpreter's tensor.
    pub fn to_interp(&self) -> Result<kiln_interp::Tensor> {
        Ok(kiln_interp::Tensor::from_bytes(
            self.dtype,
            &self.shape,
            self.data.as_ref(),
        )?)
    }

    /// Converts from the interpreter's tensor.
    pub fn from_interp(name: &str, t: &kiln_interp::Tensor) -> HostTensor {
        HostTensor {
            name: name.to_owned(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            data: AlignedBytes::from_slice(&t.to_bytes()),
        }
    }

    /// The elements as f64 (float and integer dtypes; `None` otherwise).
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        self.to_interp().ok().map(|t| t.to_f64_vec())
    }
}

/// The magic bytes that start every `.npy` file.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a tensor file, telling the format by its content: a `.npy` file
/// (its magic bytes), else an ONNX `TensorProto`. `name` is the graph input
/// it is for (a `.pb` file's own name is ignored).
pub fn read_tensor(path: &Path, name: &str) -> Result<HostTensor> {
    let mut head = [0u8; 6];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| DriverError::io("open", path, e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DriverError::io("read", path, e)),
            }
        }
        n
    };
    if head[..n] == *NPY_MAGIC {
        read_npy(path, name)
    } else {
        read_pb(path, name)
    }
}

/// Reads an ONNX `TensorProto` file.
pub fn read_pb(path: &Path, name: &str) -> Result<HostTensor> {
    let bytes = std::fs::read(path).map_err(|e| DriverError::io("read", path, e))?;
    let mut tensor = pb::TensorProto::decode(bytes.as_slice()).map_err(|e| {
        DriverError::tensor_file(
            path,
            format!("neither a .npy file nor an ONNX TensorProto: {e}"),
        )
    })?;
    let tensor_name = "tensor".to_owned();
    tensor.name = Some(tensor_name.clone());
    let model = pb::ModelProto {
        ir_version: Some(8),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(pb::GraphProto {
            name: Some("tensor".into()),
            initializer: vec![tensor],
            ..Default::default()
        }),
        ..Default::default()
    };
    let file = path.display().to_string();
    // The frontend's checks apply; its errors are about this tensor file.
    let loaded = kiln_onnx::load_model_bytes(&file, model.encode_to_vec().into()).map_err(|e| {
        match e.kind() {
            kiln_onnx::ErrorKind::InvalidInput => {
                let msg = e.to_string();
                let msg = msg.strip_prefix(&format!("{file}: ")).unwrap_or(&msg);
                DriverError::tensor_file(path, msg)
            }
            _ => DriverError::Onnx(e),
        }
    })?;
    let t = loaded
        .graph
        .initializer(&tensor_name)
        .ok_or_else(|| DriverError::Internal(format!("{file}: decoded tensor vanished")))?;
    Ok(HostTensor {
        name: name.to_owned(),
        dtype: t.dtype,
        shape: t.dims.clone(),
        data: AlignedBytes::from_slice(t.data.bytes()),
    })
}

/// The ONNX `TensorProto.DataType` code of a Kiln dtype (the inverse of
/// [`kiln_onnx::dtype_from_onnx`], so the mapping lives in one place).
pub fn onnx_dtype_code(dtype: DType) -> Option<i32> {
    (0..64).find(|&c| kiln_onnx::dtype_from_onnx(c) == Ok(dtype))
}

/// Writes an ONNX `TensorProto` file (raw data).
pub fn write_pb(path: &Path, t: &HostTensor) -> Result<()> {
    let code = onnx_dtype_code(t.dtype).ok_or_else(|| {
        DriverError::Unsupported(format!("dtype {} has no ONNX equivalent", t.dtype.name()))
    })?;
    let proto = pb::TensorProto {
        name: Some(t.name.clone()),
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(code),
        raw_data: Some(bytes::Bytes::copy_from_slice(t.data.as_ref())),
        ..Default::default()
    };
    std::fs::write(path, proto.encode_to_vec()).map_err(|e| DriverError::io("write", path, e))
}

/// The `.npy` descriptor of bfloat16 data: `ml_dtypes` (what JAX and
/// PyTorch interop use from NumPy) has no NumPy type code, so `np.save` of a
/// `bfloat16` array writes its raw 2-byte elements as `<V2` and
/// `np.load(...).view(ml_dtypes.bfloat16)` reads them back. Kiln reads a
/// 2-byte void dtype as bf16 and writes bf16 the same way.
pub const NPY_BF16_DESCR: &str = "<V2";

macro_rules! npy_types {
    ($m:ident) => {
        $m! {
            F64 => f64, F32 => f32, F16 => half::f16, I64 => i64, I32 => i32, I16 => i16,
            I8 => i8, U64 => u64, U32 => u32, U16 => u16, U8 => u8,
        }
    };
}

/// The Kiln dtype of a `.npy` type string.
fn npy_dtype(ts: &npyz::TypeStr) -> Option<DType> {
    use npyz::TypeChar as C;
    Some(match (ts.type_char(), ts.size_field()) {
        (C::Float, 8) => DType::F64,
        (C::Float, 4) => DType::F32,
        (C::Float, 2) => DType::F16,
        (C::RawData, 2) => DType::BF16,
        (C::Int, 8) => DType::I64,
        (C::Int, 4) => DType::I32,
        (C::Int, 2) => DType::I16,
        (C::Int, 1) => DType::I8,
        (C::Uint, 8) => DType::U64,
        (C::Uint, 4) => DType::U32,
        (C::Uint, 2) => DType::U16,
        (C::Uint, 1) => DType::U8,
        (C::Bool, 1) => DType::Bool,
        _ => return None,
    })
}

/// Reads a `.npy` file (`<f2` as f16, `<V2` as bf16; see
/// [`NPY_BF16_DESCR`]).
pub fn read_npy(path: &Path, name: &str) -> Result<HostTensor> {
    let bad = |why: String| DriverError::tensor_file(path, why);
    let file = std::fs::File::open(path).map_err(|e| DriverError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| DriverError::io("stat", path, e))?
        .len();
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| bad(format!("not a .npy file: {e}")))?;
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(bad("structured .npy dtypes are not supported".into()));
    };
    let dtype = npy_dtype(&ts).ok_or_else(|| {
        bad(format!(
            ".npy dtype {ts} is not supported (float64/32/16, bfloat16 as {NPY_BF16_DESCR}, \
             signed and unsigned integers, bool; use a .pb file for float8 and 4-bit types)"
        ))
    })?;
    let shape = npy.shape().to_vec();
    let fortran = npy.order() == npyz::Order::Fortran;
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    // A lying header must not make us allocate beyond the file's size.
    if numel.saturating_mul(u64::from(dtype.bits()) / 8) > len {
        return Err(bad(format!(
            "shape {shape:?} needs more data than the file holds"
        )));
    }
    let mut out = HostTensor::zeros(name, dtype, &shape)?;
    macro_rules! read_as {
        ($($d:ident => $t:ty),* $(,)?) => {
            match dtype {
                $(DType::$d => {
                    let v: Vec<$t> = npy.into_vec().map_err(|e| bad(format!("bad data: {e}")))?;
                    store(&mut out, &v, fortran, |x| x.to_le_bytes());
                })*
                DType::BF16 => {
                    // Raw little-endian elements, as ml_dtypes writes them.
                    let v: Vec<npyz::FixedSizeBytes<2>> =
                        npy.into_vec().map_err(|e| bad(format!("bad data: {e}")))?;
                    store(&mut out, &v, fortran, |x| x.0);
                }
                DType::Bool => {
                    let v: Vec<bool> = npy.into_vec().map_err(|e| bad(format!("bad data: {e}")))?;
                    store(&mut out, &v, fortran, |x| [u8::from(x)]);
                }
                _ => return Err(DriverError::Internal("npy dtype table".into())),
            }
        };
    }
    npy_types!(read_as);
    Ok(out)
}

/// Stores row-major (or column-major, transposed on the way) elements.
fn store<T: Copy, const N: usize>(
    out: &mut HostTensor,
    v: &[T],
    fortran: bool,
    le: impl Fn(T) -> [u8; N],
) {
    let shape = out.shape.clone();
    let bytes = out.data.as_mut();
    for (i, &x) in v.iter().enumerate() {
        let dst = if fortran {
            // Column-major index i → row-major index.
            let mut rem = i as u64;
            let mut idx = vec![0u64; shape.len()];
            for (k, &d) in shape.iter().enumerate() {
                idx[k] = rem % d.max(1);
                rem /= d.max(1);
            }
            idx.iter().zip(&shape).fold(0u64, |a, (&ix, &d)| a * d + ix) as usize
        } else {
            i
        };
        if let Some(slot) = bytes.get_mut(dst * N..(dst + 1) * N) {
            slot.copy_from_slice(&le(x));
        }
    }
}

/// Writes a `.npy` file (little-endian, C order; bf16 as
/// [`NPY_BF16_DESCR`]). The caller stages it (see [`write_outputs`]): on
/// error the file may be partial.
pub fn write_npy(path: &Path, t: &HostTensor) -> Result<()> {
    use npyz::WriterBuilder;
    // Refused before the file is created.
    if !matches!(t.dtype, DType::BF16 | DType::Bool) && !npy_writable(t.dtype) {
        return Err(DriverError::Unsupported(format!(
            "output '{}': {} tensors cannot be written as .npy (use --output-format=pb)",
            t.name,
            t.dtype.name()
        )));
    }
    let io = |e| DriverError::io("write", path, e);
    let file = std::fs::File::create(path).map_err(|e| DriverError::io("create", path, e))?;
    let w = std::io::BufWriter::new(file);
    let b = t.data.as_ref();
    macro_rules! write_as {
        ($($d:ident => $t:ty),* $(,)?) => {
            match t.dtype {
                $(DType::$d => {
                    const N: usize = std::mem::size_of::<$t>();
                    let mut out = npyz::WriteOptions::<$t>::new()
                        .default_dtype()
                        .shape(&t.shape)
                        .writer(w)
                        .begin_nd()
                        .map_err(io)?;
                    out.extend(b.chunks_exact(N).map(|c| {
                        let mut a = [0u8; N];
                        a.copy_from_slice(c);
                        <$t>::from_le_bytes(a)
                    }))
                    .map_err(io)?;
                    out.finish().map_err(io)?;
                })*
                DType::BF16 => {
                    let descr: npyz::TypeStr = NPY_BF16_DESCR
                        .parse()
                        .map_err(|e| DriverError::Internal(format!("{NPY_BF16_DESCR}: {e}")))?;
                    let mut out = npyz::WriteOptions::<npyz::FixedSizeBytes<2>>::new()
                        .dtype(npyz::DType::Plain(descr))
                        .shape(&t.shape)
                        .writer(w)
                        .begin_nd()
                        .map_err(io)?;
                    out.extend(b.chunks_exact(2).map(|c| npyz::FixedSizeBytes([c[0], c[1]])))
                        .map_err(io)?;
                    out.finish().map_err(io)?;
                }
                DType::Bool => {
                    let mut out = npyz::WriteOptions::<bool>::new()
                        .default_dtype()
                        .shape(&t.shape)
                        .writer(w)
                        .begin_nd()
                        .map_err(io)?;
                    out.extend(b.iter().map(|&x| x != 0)).map_err(io)?;
                    out.finish().map_err(io)?;
                }
                other => {
                    return Err(DriverError::Internal(format!(
                        "npy writer table lacks {}",
                        other.name()
                    )))
                }
            }
        };
    }
    npy_types!(write_as);
    Ok(())
}

/// Whether `npy_types!` has a plain NumPy type for `dtype`.
fn npy_writable(dtype: DType) -> bool {
    macro_rules! listed {
        ($($d:ident => $t:ty),* $(,)?) => {
            matches!(dtype, $(DType::$d)|*)
        };
    }
    npy_types!(listed)
}

/// A file name for a tensor name: every character outside
/// `[A-Za-z0-9._-]` becomes `_`; an empty name or one made only of dots
/// (`.`, `..`) gets a leading `_`.
pub fn sanitize_file_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().all(|c| c == '.') {
        s.insert(0, '_');
    }
    s
}

/// Output file format of `kiln run`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// `OUT/<sanitized name>.npy`.
    #[default]
    Npy,
    /// `OUT/output_<i>.pb` (the ONNX test-set layout).
    Pb,
}

/// Writes outputs into `dir` (created if needed) and returns the paths.
/// Two names that sanitize to the same file are refused. Every file is
/// written to a temporary file in `dir` first and renamed only when all
/// were written, so a failure leaves no partial or empty output.
pub fn write_outputs(
    dir: &Path,
    outputs: &[HostTensor],
    format: OutputFormat,
) -> Result<Vec<std::path::PathBuf>> {
    if dir.exists() && !dir.is_dir() {
        return Err(DriverError::Invalid(format!(
            "--output-dir {} is not a directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| DriverError::io("create directory", dir, e))?;
    let mut paths = Vec::new();
    for (i, t) in outputs.iter().enumerate() {
        let path = match format {
            OutputFormat::Npy => dir.join(format!("{}.npy", sanitize_file_name(&t.name))),
            OutputFormat::Pb => dir.join(format!("output_{i}.pb")),
        };
        if paths.contains(&path) {
            return Err(DriverError::Invalid(format!(
                "outputs '{}' and another output map to the same file {}; use --output-format=pb",
                t.name,
                path.display()
            )));
        }
        paths.push(path);
    }
    let mut staged = Vec::new();
    for (t, path) in outputs.iter().zip(&paths) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::Builder::new()
            .prefix(".kiln-tmp-")
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(|e| DriverError::io("create a file in", dir, e))?
            .into_temp_path();
        match format {
            OutputFormat::Npy => write_npy(&tmp, t),
            OutputFormat::Pb => write_pb(&tmp, t),
        }
        // Errors name the output, not the temporary file.
        .map_err(|e| match e {
            DriverError::Io { action, source, .. } => DriverError::io(action, path, source),
            other => other,
        })?;
        staged.push(tmp);
    }
    for (tmp, path) in staged.into_iter().zip(&paths) {
        tmp.persist(path)
            .map_err(|e| DriverError::io("write", path, e.error))?;
    }
    Ok(paths)
}

/// Reads the ONNX test-set files `<prefix>_0.pb`, `<prefix>_1.pb`, ... in
/// `dir` (stopping at the first missing index), naming them after `names`
/// (or after the file's own tensor name where `names` runs out).
pub fn read_test_set(dir: &Path, prefix: &str, names: &[String]) -> Result<Vec<HostTensor>> {
    let mut out = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("{prefix}_{i}.pb"));
        if !path.is_file() {
            break;
        }
        let name = names.get(i).cloned().unwrap_or_default();
        out.push(read_pb(&path, &name)?);
    }
    Ok(out)
}

/// Largest relative error of `got` against `expected`, where the
/// denominator is at least `floor` (so values near zero are compared with
/// an absolute tolerance of `tolerance * floor`). Integers and bools must
/// match exactly (error 0 or infinity). `Err` explains a mismatch of
/// dtype, shape, or a NaN (which never passes, in either tensor).
pub fn max_relative_error(
    expected: &HostTensor,
    got: &HostTensor,
    floor: f64,
) -> Result<f64, String> {
    if expected.dtype != got.dtype {
        return Err(format!(
            "'{}': dtype {} differs from the expected {}",
            got.name,
            got.dtype.name(),
            expected.dtype.name()
        ));
    }
    if expected.shape != got.shape {
        return Err(format!(
            "'{}': shape {:?} differs from the expected {:?}",
            got.name, got.shape, expected.shape
        ));
    }
    let (Some(e), Some(g)) = (expected.to_f64(), got.to_f64()) else {
        return Err(format!("'{}': cannot decode the tensor data", got.name));
    };
    let float = expected.dtype.is_float();
    let mut worst = 0.0f64;
    for (i, (&e, &g)) in e.iter().zip(&g).enumerate() {
        if e.is_nan() || g.is_nan() {
            return Err(format!(
                "'{}': NaN at flat index {i} (expected {e}, got {g})",
                got.name
            ));
        }
        let err = if float {
            if e == g {
                0.0
            } else {
                (g - e).abs() / e.abs().max(floor)
            }
        } else if e == g {
            0.0
        } else {
            f64::INFINITY
        };
        worst = worst.max(err);
    }
    Ok(worst)
}

/// How close two floating-point elements must be: `|got - expected| <=
/// atol + rtol * |expected|` (NumPy's `allclose`, as `iree-run-module
/// --expected_output` checks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Tolerance {
    /// The default tolerance of a dtype: a few units in the last place of
    /// its precision, scaled for the reassociation a compiler may do
    /// (reductions summed in another order). Integers and bools are exact.
    pub fn for_dtype(dtype: DType) -> Tolerance {
        let (rtol, atol) = match dtype {
            DType::F64 => (1e-9, 1e-12),
            DType::F32 => (1e-4, 1e-5),
            DType::F16 => (1e-2, 1e-3),
            DType::BF16 => (2e-2, 1e-2),
            DType::F8E4M3FN | DType::F8E5M2 | DType::NF4 => (0.13, 0.02),
            _ => (0.0, 0.0),
        };
        Tolerance { rtol, atol }
    }

    /// This tolerance with the given parts replaced (`--rtol`, `--atol`).
    pub fn with(self, rtol: Option<f64>, atol: Option<f64>) -> Tolerance {
        Tolerance {
            rtol: rtol.unwrap_or(self.rtol),
            atol: atol.unwrap_or(self.atol),
        }
    }

    /// Whether `got` is close enough to `expected`. NaN equals only NaN;
    /// an infinity only the same infinity.
    pub fn accepts(&self, expected: f64, got: f64) -> bool {
        if expected.is_nan() || got.is_nan() {
            return expected.is_nan() && got.is_nan();
        }
        if expected.is_infinite() || got.is_infinite() {
            return expected == got;
        }
        (got - expected).abs() <= self.atol + self.rtol * expected.abs()
    }
}

/// One element of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Element {
    /// Its index, outermost dimension first.
    pub index: Vec<u64>,
    /// The expected (reference) value.
    pub expected: f64,
    /// The value computed.
    pub got: f64,
}

/// How two tensors differ.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// Dtype or shape differ; the message says how.
    Type(String),
    /// Elements differ beyond the tolerance.
    Values {
        /// The tensors' dtype (for showing values).
        dtype: DType,
        /// The first mismatching elements in row-major order (at most the
        /// number asked for).
        first: Vec<Element>,
        /// How many elements mismatch.
        count: usize,
        /// Elements compared.
        total: usize,
        /// The largest absolute difference over the mismatching elements
        /// (NaN when one of them involves NaN).
        max_abs: f64,
    },
}

impl Difference {
    /// The difference as lines: a summary, then one line per element shown
    /// (`at [i, j]: <got> X, <expected> Y`, values as their dtype prints
    /// them).
    pub fn lines(&self, got: &str, expected: &str) -> Vec<String> {
        match self {
            Difference::Type(m) => vec![m.clone()],
            Difference::Values {
                dtype,
                first,
                count,
                total,
                max_abs,
            } => {
                let mut lines = vec![format!(
                    "{count} of {total} elements differ (largest difference {max_abs:.3e})"
                )];
                lines.extend(first.iter().map(|e| {
                    format!(
                        "at {}: {got} {}, {expected} {}",
                        format_index(&e.index),
                        format_value(e.got, *dtype),
                        format_value(e.expected, *dtype)
                    )
                }));
                lines
            }
        }
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines("got", "expected").join("\n  "))
    }
}

/// An element value as its dtype would print it: the shortest decimal
/// that round-trips in that precision (`0.1` for an f32, not
/// `0.10000000149011612`), integers without a fraction.
pub fn format_value(v: f64, dtype: DType) -> String {
    match dtype {
        DType::F64 => v.to_string(),
        _ if dtype.is_float() => (v as f32).to_string(),
        _ => format!("{v:.0}"),
    }
}

/// `[i, j, k]`.
pub fn format_index(index: &[u64]) -> String {
    let parts: Vec<String> = index.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The row-major multi-index of flat position `flat` in `shape`.
fn unravel(mut flat: u64, shape: &[u64]) -> Vec<u64> {
    let mut index = vec![0u64; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        let d = d.max(1);
        *slot = flat % d;
        flat /= d;
    }
    index
}

/// Compares `got` with `expected`: same dtype and shape, then every
/// element within `tol` (floats; default [`Tolerance::for_dtype`]) or
/// exactly equal (integers and bools, compared on their bits). Returns the
/// first `keep` mismatching elements, or `None` when the tensors match.
pub fn compare(
    expected: &HostTensor,
    got: &HostTensor,
    tol: Option<Tolerance>,
    keep: usize,
) -> Option<Difference> {
    if expected.dtype != got.dtype {
        return Some(Difference::Type(format!(
            "dtype {} differs from the expected {}",
            got.dtype.name(),
            expected.dtype.name()
        )));
    }
    if expected.shape != got.shape {
        return Some(Difference::Type(format!(
            "shape {:?} differs from the expected {:?}",
            got.shape, expected.shape
        )));
    }
    let (Some(e), Some(g)) = (expected.to_f64(), got.to_f64()) else {
        return Some(Difference::Type(format!(
            "{} tensor data cannot be decoded",
            got.dtype.name()
        )));
    };
    let float = expected.dtype.is_float();
    let tol = tol.unwrap_or_else(|| Tolerance::for_dtype(expected.dtype));
    let width = (expected.dtype.bits() / 8) as usize;
    let (eb, gb) = (expected.data.as_ref(), got.data.as_ref());
    let mut first = Vec::new();
    let mut count = 0usize;
    let mut max_abs = 0.0f64;
    for (i, (&ev, &gv)) in e.iter().zip(&g).enumerate() {
        let same = if float {
            tol.accepts(ev, gv)
        } else if width > 0 {
            // Integers compare on their bits: f64 is inexact above 2^53.
            eb.get(i * width..(i + 1) * width) == gb.get(i * width..(i + 1) * width)
        } else {
            ev == gv
        };
        if same {
            continue;
        }
        count += 1;
        let d = (gv - ev).abs();
        max_abs = if d.is_nan() || max_abs.is_nan() {
            f64::NAN
        } else {
            max_abs.max(d)
        };
        if first.len() < keep {
            first.push(Element {
                index: unravel(i as u64, &expected.shape),
                expected: ev,
                got: gv,
            });
        }
    }
    (count > 0).then_some(Difference::Values {
        dtype: expected.dtype,
        first,
        count,
        total: e.len(),
        max_abs,
    })
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::AlignedBytes;
    use std::io::{Read, Seek, SeekFrom};

    /// How many of the 4 KiB pages of `bytes` are present (bit 63 of /proc/self/pagemap).
    fn present_pages(bytes: &[u8]) -> usize {
        let first = bytes.as_ptr() as u64 / 4096;
        let last = (bytes.as_ptr() as u64 + bytes.len() as u64 - 1) / 4096;
        let mut f = std::fs::File::open("/proc/self/pagemap").expect("/proc/self/pagemap");
        f.seek(SeekFrom::Start(first * 8)).unwrap();
        let mut entries = vec![0u8; ((last - first + 1) * 8) as usize];
        f.read_exact(&mut entries).unwrap();
        entries
            .chunks_exact(8)
            .filter(|e| u64::from_le_bytes((*e).try_into().unwrap()) >> 63 == 1)
            .count()
    }

    #[test]
    fn resident_zero_bytes_have_every_page_present() {
        // 64 MiB: above glibc's largest mmap threshold, so a fresh mapping, none of whose pages
        // has been touched.
        let len = 64 << 20;
        let mut b = AlignedBytes::zeroed(len);
        let pages = len / 4096;
        assert!(
            present_pages(b.as_ref()) < pages / 2,
            "a fresh zeroed allocation"
        );
        b.make_resident();
        assert!(present_pages(b.as_ref()) >= pages, "every page written");
        assert!(b.as_ref().iter().all(|&x| x == 0));
    }
}
