//! The small float codecs of `kiln_ir::codec` against ONNX's reference
//! (`onnx.reference` Cast through `ml_dtypes`), bit for bit: every float16
//! and bfloat16 value and 10^6 float32 values including specials, ties and
//! their neighbours, in every saturation and E8M0 rounding mode, and the
//! value of every code. The expected data is generated at test time by
//! `testdata/codec/codec_reference.py` with the project venv
//! (`scripts/setup.sh`).

use kiln_ir::codec::{CastMode, E8m0Rounding, FloatFormat};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The reference data, generated once per test binary.
fn data() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let python = repo().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup.sh first",
            python.display()
        );
        let st = Command::new(python)
            .arg(repo().join("testdata/codec/codec_reference.py"))
            .arg(dir.path())
            .status()
            .expect("run codec_reference.py");
        assert!(st.success(), "codec_reference.py failed");
        dir
    })
    .path()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn inputs() -> Vec<f32> {
    read("inputs.f32")
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Compares `f(x)` with the expected codes of `case`, listing the first
/// mismatches.
fn check(case: &str, f: impl Fn(f32) -> u8) {
    let xs = inputs();
    let want = read(&format!("{case}.u8"));
    assert_eq!(xs.len(), want.len(), "{case}: data length");
    assert!(xs.len() >= 1_131_072, "{case}: too few inputs");
    let bad: Vec<String> = xs
        .iter()
        .zip(&want)
        .filter(|(&x, &w)| f(x) != w)
        .take(8)
        .map(|(&x, &w)| {
            format!(
                "{x:e} ({:#010x}): got {:#04x}, want {w:#04x}",
                x.to_bits(),
                f(x)
            )
        })
        .collect();
    assert!(bad.is_empty(), "{case}: mismatches:\n{}", bad.join("\n"));
}

fn mode(saturate: bool, e8m0: E8m0Rounding) -> CastMode {
    CastMode { saturate, e8m0 }
}

#[test]
fn float8_encodings_match_onnx() {
    for (name, f) in [
        ("f8e4m3fn", FloatFormat::E4M3FN),
        ("f8e4m3fnuz", FloatFormat::E4M3FNUZ),
        ("f8e5m2", FloatFormat::E5M2),
        ("f8e5m2fnuz", FloatFormat::E5M2FNUZ),
    ] {
        for (suffix, sat) in [("sat", true), ("nosat", false)] {
            let m = mode(sat, E8m0Rounding::Up);
            check(&format!("{name}_{suffix}"), |x| f.encode_value(x, m));
        }
    }
}

#[test]
fn float4_encoding_matches_onnx_in_both_modes() {
    for sat in [true, false] {
        let m = mode(sat, E8m0Rounding::Up);
        check("f4e2m1", |x| FloatFormat::E2M1.encode_value(x, m));
    }
}

#[test]
fn e8m0_encodings_match_onnx() {
    for (r, e) in [
        ("up", E8m0Rounding::Up),
        ("down", E8m0Rounding::Down),
        ("nearest", E8m0Rounding::Nearest),
    ] {
        for (suffix, sat) in [("sat", true), ("nosat", false)] {
            let m = mode(sat, e);
            check(&format!("f8e8m0_{r}_{suffix}"), |x| {
                FloatFormat::E8M0.encode_value(x, m)
            });
        }
    }
}

#[test]
fn every_code_decodes_like_ml_dtypes() {
    for f in FloatFormat::ALL {
        let want: Vec<u32> = read(&format!("decode_{}.f32", f.dtype()))
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(want.len(), 1 << f.bits());
        for (c, &w) in want.iter().enumerate() {
            let got = f.decode_value(c as u8);
            let wv = f32::from_bits(w);
            // NaN payloads are not part of the format: any NaN matches.
            let same = got.to_bits() == w || (got.is_nan() && wv.is_nan());
            assert!(same, "{f:?} code {c:#04x}: got {got:e}, want {wv:e}");
        }
        let table = f.table();
        assert_eq!(table.len(), want.len());
    }
}
