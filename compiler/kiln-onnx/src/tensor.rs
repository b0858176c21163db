//! Decoding `TensorProto` into Kiln's storage layout.
//!
//! Invariants:
//! - The result is `(DType, dims, Blob)` where the blob holds exactly
//!   `dtype.storage_bytes(numel)` little-endian bytes, packed nibble types
//!   low nibble first, `bool` as one 0/1 byte.
//! - `raw_data` and external data are never copied: the blob is a view of
//!   the mapped model or external file. Only the typed repeated fields
//!   (`float_data`, `int32_data`, ...) are converted into a new buffer, and
//!   only after their element count has been checked, so a lying header
//!   cannot make the loader allocate more than the file's own size.
//! - All size arithmetic is checked; negative or overflowing dims and data
//!   of the wrong length are `InvalidInput`.

use crate::error::{Ctx, OnnxError};
use crate::external::{ExternalData, ExternalRef};
use crate::proto::onnx::{tensor_proto::DataType, TensorProto};
use kiln_ir::{Blob, DType};
use std::sync::Arc;

/// A decoded constant tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxTensor {
    /// The tensor's name (empty for unnamed attribute tensors).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape, outermost first.
    pub dims: Vec<u64>,
    /// `dtype.storage_bytes(numel)` bytes in Kiln's storage layout.
    pub data: Blob,
}

impl OnnxTensor {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        // Checked when the tensor was decoded.
        self.dims.iter().product()
    }

    /// The tensor's type.
    pub fn tensor_type(&self) -> kiln_ir::TensorType {
        kiln_ir::TensorType::fixed(self.dtype, &self.dims)
    }
}

/// Maps an ONNX `TensorProto.DataType` code to a Kiln dtype.
///
/// `Err(Some(name))` is a valid ONNX type Kiln does not support;
/// `Err(None)` is not a valid ONNX type code at all.
pub fn dtype_from_onnx(code: i32) -> Result<DType, Option<&'static str>> {
    let dt = DataType::try_from(code).map_err(|_| None)?;
    Ok(match dt {
        DataType::Float => DType::F32,
        DataType::Uint8 => DType::U8,
        DataType::Int8 => DType::I8,
        DataType::Uint16 => DType::U16,
        DataType::Int16 => DType::I16,
        DataType::Int32 => DType::I32,
        DataType::Int64 => DType::I64,
        DataType::Bool => DType::Bool,
        DataType::Float16 => DType::F16,
        DataType::Double => DType::F64,
        DataType::Uint32 => DType::U32,
        DataType::Uint64 => DType::U64,
        DataType::Bfloat16 => DType::BF16,
        DataType::Float8e4m3fn => DType::F8E4M3FN,
        DataType::Float8e5m2 => DType::F8E5M2,
        DataType::Uint4 => DType::U4,
        DataType::Int4 => DType::I4,
        DataType::Float8e4m3fnuz => DType::F8E4M3FNUZ,
        DataType::Float8e5m2fnuz => DType::F8E5M2FNUZ,
        DataType::Float4e2m1 => DType::F4E2M1,
        DataType::Float8e8m0 => DType::F8E8M0,
        DataType::Uint2 => DType::U2,
        DataType::Int2 => DType::I2,
        DataType::Undefined => return Err(None),
        other => return Err(Some(other.as_str_name())),
    })
}

/// Checked element count of `dims`.
pub(crate) fn checked_dims(
    ctx: &Ctx,
    what: &str,
    dims: &[i64],
) -> Result<(Vec<u64>, u64), OnnxError> {
    let mut out = Vec::with_capacity(dims.len());
    let mut numel: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d)
            .map_err(|_| ctx.invalid(what, format!("negative dimension {d} in shape {dims:?}")))?;
        numel = numel.checked_mul(d).ok_or_else(|| {
            ctx.invalid(what, format!("element count of shape {dims:?} overflows"))
        })?;
        out.push(d);
    }
    Ok((out, numel))
}

/// Decodes one tensor. `what` names it in errors (`initializer 'w'`).
pub(crate) fn decode_tensor(
    ctx: &Ctx,
    ext: &mut ExternalData,
    what: &str,
    t: &TensorProto,
) -> Result<OnnxTensor, OnnxError> {
    let code = t.data_type.unwrap_or(0);
    let dtype = dtype_from_onnx(code).map_err(|e| match e {
        Some(name) => ctx.unsupported(what, format!("tensor element type {name} is not supported")),
        None => ctx.invalid(what, format!("invalid tensor element type code {code}")),
    })?;
    if t.segment.is_some() {
        return Err(ctx.unsupported(what, "segmented tensors are not supported"));
    }
    let (dims, numel) = checked_dims(ctx, what, &t.dims)?;
    let expected = dtype.storage_bytes(numel).ok_or_else(|| {
        ctx.invalid(
            what,
            format!("byte size of shape {:?} x {dtype} overflows", t.dims),
        )
    })?;
    if usize::try_from(expected).is_err() {
        return Err(ctx.limit(
            what,
            format!("{expected} bytes do not fit in the address space"),
        ));
    }

    let typed_len = t.float_data.len()
        + t.int32_data.len()
        + t.int64_data.len()
        + t.double_data.len()
        + t.uint64_data.len()
        + t.string_data.len();

    let data = if t.data_location == Some(1) {
        if t.raw_data.is_some() || typed_len > 0 {
            return Err(ctx.invalid(what, "external tensor also carries inline data"));
        }
        let r = parse_external(ctx, what, t)?;
        ext.fetch(ctx, what, &r, expected)?
    } else if let Some(raw) = &t.raw_data {
        if typed_len > 0 {
            return Err(ctx.invalid(what, "tensor has both raw_data and typed data fields"));
        }
        if raw.len() as u64 != expected {
            return Err(ctx.invalid(
                what,
                format!(
                    "raw_data has {} bytes but shape {:?} of {dtype} needs {expected}",
                    raw.len(),
                    t.dims
                ),
            ));
        }
        // `raw` is a slice of the mapped model file (prost decodes `bytes`
        // fields from a `Bytes` buffer by slicing), so this is zero-copy.
        Blob::from_owner(Arc::new(raw.clone()))
    } else {
        Blob::from_vec(decode_typed(ctx, what, t, dtype, numel)?)
    };

    if dtype == DType::Bool {
        if let Some(b) = data.bytes().iter().find(|&&b| b > 1) {
            return Err(ctx.invalid(what, format!("bool tensor holds the byte {b}, not 0 or 1")));
        }
    }
    Ok(OnnxTensor {
        name: t.name.clone().unwrap_or_default(),
        dtype,
        dims,
        data,
    })
}

fn parse_external<'a>(
    ctx: &Ctx,
    what: &str,
    t: &'a TensorProto,
) -> Result<ExternalRef<'a>, OnnxError> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let key = kv.key.as_deref().unwrap_or("");
        let value = kv.value.as_deref().unwrap_or("");
        let num = || {
            value.trim().parse::<u64>().map_err(|_| {
                ctx.invalid(
                    what,
                    format!("external data '{key}' is not a non-negative integer: '{value}'"),
                )
            })
        };
        match key {
            "location" => location = Some(value),
            "offset" => offset = num()?,
            "length" => length = Some(num()?),
            // The checksum is advisory; verifying it would read every byte.
            _ => {}
        }
    }
    let location = location.ok_or_else(|| ctx.invalid(what, "external data has no 'location'"))?;
    Ok(ExternalRef {
        location,
        offset,
        length,
    })
}

/// Converts the typed repeated fields. The element count is checked
/// before anything is allocated.
fn decode_typed(
    ctx: &Ctx,
    what: &str,
    t: &TensorProto,
    dtype: DType,
    numel: u64,
) -> Result<Vec<u8>, OnnxError> {
    let count = |field: &str, len: usize, want: u64| -> Result<(), OnnxError> {
        if len as u64 != want {
            return Err(ctx.invalid(
                what,
                format!(
                    "{field} has {len} values but shape {:?} of {dtype} needs {want}",
                    t.dims
                ),
            ));
        }
        Ok(())
    };
    let other_fields = |allowed: &str| -> Result<(), OnnxError> {
        let used = [
            ("float_data", t.float_data.len()),
            ("int32_data", t.int32_data.len()),
            ("int64_data", t.int64_data.len()),
            ("double_data", t.double_data.len()),
            ("uint64_data", t.uint64_data.len()),
            ("string_data", t.string_data.len()),
        ];
        match used.iter().find(|(n, l)| *l > 0 && *n != allowed) {
            Some((n, _)) => {
                Err(ctx.invalid(what, format!("{n} is not valid for a {dtype} tensor")))
            }
            None => Ok(()),
        }
    };
    // int32_data holds one small value per entry; check it fits.
    let narrow = |lo: i64, hi: i64, width: usize| -> Result<Vec<u8>, OnnxError> {
        other_fields("int32_data")?;
        let mut out = Vec::with_capacity(t.int32_data.len() * width);
        for &v in &t.int32_data {
            let v = i64::from(v);
            if v < lo || v > hi {
                return Err(ctx.invalid(
                    what,
                    format!("int32_data value {v} is out of range for {dtype}"),
                ));
            }
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        Ok(out)
    };
    Ok(match dtype {
        DType::F32 => {
            other_fields("float_data")?;
            count("float_data", t.float_data.len(), numel)?;
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::F64 => {
            other_fields("double_data")?;
            count("double_data", t.double_data.len(), numel)?;
            t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::I64 => {
            other_fields("int64_data")?;
            count("int64_data", t.int64_data.len(), numel)?;
            t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::U64 => {
            other_fields("uint64_data")?;
            count("uint64_data", t.uint64_data.len(), numel)?;
            t.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::U32 => {
            other_fields("uint64_data")?;
            count("uint64_data", t.uint64_data.len(), numel)?;
            let mut out = Vec::with_capacity(t.uint64_data.len() * 4);
            for &v in &t.uint64_data {
                let v = u32::try_from(v).map_err(|_| {
                    ctx.invalid(
                        what,
                        format!("uint64_data value {v} is out of range for u32"),
                    )
                })?;
                out.extend_from_slice(&v.to_le_bytes());
            }
            out
        }
        DType::I32 => {
            other_fields("int32_data")?;
            count("int32_data", t.int32_data.len(), numel)?;
            t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::I16 => {
            count("int32_data", t.int32_data.len(), numel)?;
            narrow(i16::MIN.into(), i16::MAX.into(), 2)?
        }
        DType::U16 | DType::F16 | DType::BF16 => {
            count("int32_data", t.int32_data.len(), numel)?;
            narrow(0, u16::MAX.into(), 2)?
        }
        DType::I8 => {
            count("int32_data", t.int32_data.len(), numel)?;
            narrow(i8::MIN.into(), i8::MAX.into(), 1)?
        }
        DType::U8
        | DType::F8E4M3FN
        | DType::F8E5M2
        | DType::F8E4M3FNUZ
        | DType::F8E5M2FNUZ
        | DType::F8E8M0 => {
            count("int32_data", t.int32_data.len(), numel)?;
            narrow(0, u8::MAX.into(), 1)?
        }
        DType::Bool => {
            count("int32_data", t.int32_data.len(), numel)?;
            narrow(0, 1, 1)?
        }
        DType::I4 | DType::U4 | DType::F4E2M1 | DType::I2 | DType::U2 => {
            // One packed byte per int32_data entry (two 4-bit or four 2-bit
            // elements, first element lowest).
            let bytes = dtype.storage_bytes(numel).unwrap_or(u64::MAX);
            count("int32_data", t.int32_data.len(), bytes)?;
            narrow(0, u8::MAX.into(), 1)?
        }
        DType::NF4 => {
            return Err(ctx.unsupported(what, "nf4 has no ONNX encoding"));
        }
    })
}
