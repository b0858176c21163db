//! Artifact descriptors from untrusted files: each way a `kiln_artifact_v1`
//! can break `kiln.h`'s contract is refused at load with its typed error,
//! never a crash; plus the fuzz harness (`harness/descriptor.rs`) run on
//! pseudo-random inputs and on every saved crash input
//! (`tests/descriptor-regressions/`).

#[path = "harness/descriptor.rs"]
mod harness;

use kiln_runtime_core::abi::{ArtifactV1, TensorDesc, ABI_VERSION};
use kiln_runtime_core::{Error, Model, RawTensor};
use std::ffi::{c_char, CStr};
use std::path::Path;

const SHAPE: [i64; 2] = [2, 3];

fn desc(name: &'static CStr, dtype: u32, shape: &'static [i64]) -> TensorDesc {
    TensorDesc {
        name: name.as_ptr(),
        dtype,
        rank: shape.len() as u32,
        shape: shape.as_ptr(),
    }
}

/// A valid descriptor: one f32 [2, 3] input and output, no weights.
fn valid(inputs: &[TensorDesc], outputs: &[TensorDesc]) -> ArtifactV1 {
    ArtifactV1 {
        abi_version: ABI_VERSION,
        num_inputs: inputs.len() as u32,
        num_outputs: outputs.len() as u32,
        flags: 0,
        inputs: inputs.as_ptr(),
        outputs: outputs.as_ptr(),
        model_name: c"m".as_ptr(),
        producer: c"test".as_ptr(),
        weights: std::ptr::null(),
        weights_size: 0,
        weights_file: std::ptr::null(),
        workspace_size: 0,
        entry: Some(harness::noop_entry),
    }
}

fn load(a: &ArtifactV1) -> Result<Model, Error> {
    // SAFETY: every pointer in the descriptors built here is NULL or valid.
    unsafe { Model::from_artifact(a, None) }
}

/// Loads `a` and expects a refusal whose message contains `needle`.
fn refused(a: &ArtifactV1, needle: &str) -> Error {
    let err = load(a).expect_err(needle);
    assert!(err.to_string().contains(needle), "{err}");
    err
}

/// An f32 [2, 3] tensor over `p` (24 bytes).
fn t(p: *mut f32) -> RawTensor {
    RawTensor {
        dtype: 2,
        rank: 2,
        shape: SHAPE.as_ptr(),
        data: p.cast(),
        byte_size: 24,
    }
}

fn io() -> [TensorDesc; 1] {
    [desc(c"x", 2, &SHAPE)]
}

#[test]
fn the_reference_descriptor_loads_and_runs() {
    let (i, o) = (io(), io());
    let model = load(&valid(&i, &o)).unwrap();
    assert_eq!(model.inputs()[0].byte_size(), 24);
    let (mut x, mut y) = ([0f32; 6], [0f32; 6]);
    // SAFETY: both buffers hold 24 bytes.
    unsafe { model.run_raw(&[t(x.as_mut_ptr())], &[t(y.as_mut_ptr())]) }.unwrap();
}

#[test]
fn null_descriptor_and_wrong_abi_version() {
    // SAFETY: NULL is allowed and refused.
    let err = unsafe { Model::from_artifact(std::ptr::null(), None) }.unwrap_err();
    assert!(matches!(err, Error::LoadFailed(_)), "{err}");
    let (i, o) = (io(), io());
    let a = ArtifactV1 {
        abi_version: 2,
        ..valid(&i, &o)
    };
    let err = load(&a).unwrap_err();
    assert!(
        matches!(
            err,
            Error::AbiMismatch {
                found: 2,
                expected: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn wrong_counts_and_null_arrays_are_refused() {
    let (i, o) = (io(), io());
    let base = valid(&i, &o);
    for (a, needle) in [
        (
            ArtifactV1 {
                num_inputs: u32::MAX,
                ..base
            },
            "declares 4294967295 inputs",
        ),
        (
            ArtifactV1 {
                num_outputs: (1 << 16) + 1,
                ..base
            },
            "declares 65537 outputs",
        ),
        (
            ArtifactV1 {
                inputs: std::ptr::null(),
                ..base
            },
            "1 inputs but no descriptors",
        ),
        (
            ArtifactV1 {
                outputs: std::ptr::null(),
                ..base
            },
            "1 outputs but no descriptors",
        ),
        (
            ArtifactV1 {
                entry: None,
                ..base
            },
            "no entry function",
        ),
    ] {
        let err = refused(&a, needle);
        assert!(matches!(err, Error::LoadFailed(_)), "{err}");
    }
    // Zero tensors with a NULL array are fine.
    let none = ArtifactV1 {
        num_inputs: 0,
        inputs: std::ptr::null(),
        ..base
    };
    assert_eq!(load(&none).unwrap().inputs().len(), 0);
}

#[test]
fn bad_tensor_descriptors_are_refused() {
    static HUGE: [i64; 2] = [1 << 40, 1 << 40];
    static NEGATIVE: [i64; 2] = [2, -3];
    static TOO_BIG: [i64; 1] = [1 << 61]; // 2^61 f32 = 2^63 bytes > isize::MAX
    static RANK65: [i64; 65] = [1; 65];
    let o = io();
    let cases: [(TensorDesc, &str); 8] = [
        (
            TensorDesc {
                name: std::ptr::null(),
                ..desc(c"x", 2, &SHAPE)
            },
            "input 0 has no name",
        ),
        (desc(c"x", 0, &SHAPE), "unknown dtype code 0"),
        (desc(c"x", 25, &SHAPE), "unknown dtype code 25"),
        (desc(c"x", 2, &RANK65), "has rank 65"),
        (
            TensorDesc {
                shape: std::ptr::null(),
                ..desc(c"x", 2, &SHAPE)
            },
            "has no shape",
        ),
        (desc(c"x", 2, &NEGATIVE), "invalid shape [2, -3]"),
        (desc(c"x", 2, &HUGE), "invalid shape"),
        (desc(c"x", 2, &TOO_BIG), "invalid shape"),
    ];
    for (d, needle) in cases {
        let i = [d];
        let err = refused(&valid(&i, &o), needle);
        assert!(matches!(err, Error::LoadFailed(_)), "{needle}: {err}");
    }
    // A huge rank is refused before its shape is read (the pointer is NULL
    // here, so reading it would crash).
    let i = [TensorDesc {
        rank: u32::MAX,
        shape: std::ptr::null(),
        ..desc(c"x", 2, &SHAPE)
    }];
    refused(&valid(&i, &o), "has rank 4294967295");
    // A name that is not UTF-8.
    static BAD_NAME: [u8; 3] = [0xff, 0xfe, 0];
    let i = [TensorDesc {
        name: BAD_NAME.as_ptr().cast::<c_char>(),
        ..desc(c"x", 2, &SHAPE)
    }];
    refused(&valid(&i, &o), "not valid UTF-8");
}

#[test]
fn an_empty_tensor_is_empty_whatever_its_other_dims() {
    static EMPTY: [i64; 3] = [1 << 40, 1 << 40, 0];
    let (i, o) = ([desc(c"x", 2, &EMPTY)], io());
    let model = load(&valid(&i, &o)).unwrap();
    assert_eq!(model.inputs()[0].byte_size(), 0);
}

#[test]
fn absurd_sizes_are_refused_with_their_typed_error() {
    let (i, o) = (io(), io());
    let base = valid(&i, &o);
    // Not a possible allocation at all: refused at load.
    for ws in [u64::MAX, 1 << 63, (1 << 63) - 1] {
        let a = ArtifactV1 {
            workspace_size: ws,
            ..base
        };
        let err = refused(&a, "workspace size");
        assert!(matches!(err, Error::LoadFailed(_)), "{err}");
    }
    // Possible in principle but beyond any address space (1 EiB): loads, and
    // the first run fails with OutOfMemory, touching no buffer.
    let a = ArtifactV1 {
        workspace_size: 1 << 60,
        ..base
    };
    let model = load(&a).unwrap();
    let (mut x, mut y) = ([1f32; 6], [7f32; 6]);
    // SAFETY: both buffers hold 24 bytes.
    let err = unsafe { model.run_raw(&[t(x.as_mut_ptr())], &[t(y.as_mut_ptr())]) }.unwrap_err();
    assert!(matches!(err, Error::OutOfMemory(_)), "{err}");
    assert_eq!(y, [7f32; 6]);
    // Declared weight bytes that nothing holds, or that would run past the
    // end of the address space.
    let a = ArtifactV1 {
        weights_size: 64,
        ..base
    };
    let err = refused(&a, "neither embeds nor names them");
    assert!(matches!(err, Error::LoadFailed(_)), "{err}");
    let a = ArtifactV1 {
        weights: (usize::MAX - 63) as *const u8,
        weights_size: 128,
        ..base
    };
    let err = refused(&a, "embedded weights");
    assert!(matches!(err, Error::LoadFailed(_)), "{err}");
}

#[test]
fn weights_pointer_and_file_rules() {
    #[repr(align(64))]
    struct W([u8; 128]);
    static WEIGHTS: W = W([0; 128]);
    let (i, o) = (io(), io());
    let base = valid(&i, &o);
    let a = ArtifactV1 {
        weights: WEIGHTS.0.as_ptr().wrapping_add(1),
        weights_size: 16,
        ..base
    };
    let err = refused(&a, "not 64-byte aligned");
    assert!(matches!(err, Error::LoadFailed(_)), "{err}");
    let a = ArtifactV1 {
        weights: WEIGHTS.0.as_ptr(),
        weights_size: 128,
        weights_file: c"w.bin".as_ptr(),
        ..base
    };
    refused(&a, "both embedded weights and a weights file");
    let a = ArtifactV1 {
        weights_file: c"w.bin".as_ptr(),
        weights_size: 128,
        ..base
    };
    let err = refused(&a, "pass its path");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let a = ArtifactV1 {
        weights: WEIGHTS.0.as_ptr(),
        weights_size: 128,
        ..base
    };
    load(&a).unwrap();
}

/// A small deterministic generator (xorshift64*), so the harness runs on
/// the same inputs in every `cargo test`.
fn pseudo_random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn fuzz_harness_on_pseudo_random_descriptors() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut accepted = 0;
    for round in 0..20_000 {
        let len = 1 + round % 300;
        let data = pseudo_random_bytes(&mut state, len);
        if let Err(bug) = harness::check_bytes(&data) {
            panic!("input {data:?}: {bug}");
        }
        accepted += usize::from(harness::Artifact::read(&data).violations().is_empty());
    }
    // The generator must reach valid descriptors too, or it tests nothing
    // but the first check.
    assert!(accepted > 500, "only {accepted} valid descriptors");
}

#[test]
fn saved_fuzz_inputs_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/descriptor-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let data = std::fs::read(&path).unwrap();
            if let Err(bug) = harness::check_bytes(&data) {
                panic!("{}: {bug}", path.display());
            }
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
