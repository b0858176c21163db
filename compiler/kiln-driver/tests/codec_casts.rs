//! The small float and sub-byte casts as compiled code, bit for bit against
//! ONNX's reference (`onnx.reference` Cast through `ml_dtypes`): the data of
//! `testdata/codec/codec_reference.py` (every float16 and bfloat16 value,
//! 10^6 float32 values with specials, ties and their neighbours) cast to
//! every format in every saturation / E8M0 rounding mode, to the 2- and
//! 4-bit integers, and every code of every format decoded. Generated code
//! runs `kiln_ir::codec` emitted as MLIR (the interpreter runs the same
//! definition on values, tested in `dialects/kiln-ir/tests`), so this checks
//! the emission and the boundary packing.

use kiln_driver::tensors::{AlignedBytes, HostTensor};
use kiln_driver::{compile, CompileOptions, OptLevel, Session, SessionOptions};
use kiln_ir::codec::packing;
use kiln_ir::DType;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The formats whose every code is decoded.
const DECODES: &[&str] = &[
    "f8e4m3fn",
    "f8e4m3fnuz",
    "f8e5m2",
    "f8e5m2fnuz",
    "f4e2m1",
    "f8e8m0",
];

/// `(case, target dtype, saturate, round_mode)` of every cast, from the
/// generator's `casts.tsv`.
fn casts(tsv: &str) -> Vec<(String, String, bool, String)> {
    tsv.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].into(), f[1].into(), f[2] == "1", f[3].into())
        })
        .collect()
}

fn dtype(name: &str) -> DType {
    DType::from_name(name).unwrap()
}

#[test]
fn compiled_casts_match_onnx_bit_for_bit() {
    let data = tempfile::tempdir().unwrap();
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let st = Command::new(python)
        .arg(repo().join("testdata/codec/codec_reference.py"))
        .arg(data.path())
        .status()
        .unwrap();
    assert!(st.success(), "codec_reference.py failed");
    let read = |n: &str| std::fs::read(data.path().join(n)).unwrap();
    let casts = casts(&String::from_utf8(read("casts.tsv")).unwrap());
    let x = read("inputs.f32");
    let n = (x.len() / 4) as u64;

    let mut kir = String::new();
    let mut args = vec![format!("%x: tensor<{n}xf32>")];
    let mut rets = Vec::new();
    let mut body = String::new();
    for (name, to, sat, mode) in &casts {
        let _ = writeln!(
            body,
            "  %{name} = nn.cast %x {{to = {to}, saturate = {sat}, round_mode = \"{mode}\"}} : tensor<{n}x{to}>"
        );
        rets.push((format!("%{name}"), format!("tensor<{n}x{to}>")));
    }
    for f in DECODES {
        let codes = 1u64 << dtype(f).bits();
        args.push(format!("%c_{f}: tensor<{codes}x{f}>"));
        let _ = writeln!(
            body,
            "  %d_{f} = nn.cast %c_{f} {{to = f32}} : tensor<{codes}xf32>"
        );
        rets.push((format!("%d_{f}"), format!("tensor<{codes}xf32>")));
    }
    let names: Vec<&str> = rets.iter().map(|r| r.0.as_str()).collect();
    let tys: Vec<&str> = rets.iter().map(|r| r.1.as_str()).collect();
    let _ = write!(
        kir,
        "graph @casts({}) -> ({}) {{\n{body}  return {}\n}}\n",
        args.join(", "),
        tys.join(", "),
        names.join(", ")
    );
    let graph = kiln_ir::text::parse(&kir, "casts.kir", None).unwrap().graph;
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("casts.so");
    // The portable deploy target (x86-64-v3 / generic AArch64): the casts
    // are plain arith code, and a host build may record CPU features a
    // virtual machine hides.
    let target = kiln_driver::deploy_target_from_args(None, None).unwrap();
    let mut opts = CompileOptions::new(target, Some(so.clone()));
    opts.set_level(OptLevel::O1);
    compile(graph, &opts).unwrap();
    let session = Session::open(&so, &SessionOptions::default()).unwrap();

    let mut inputs = vec![HostTensor {
        name: "x".into(),
        dtype: DType::F32,
        shape: vec![n],
        data: AlignedBytes::from_slice(&x),
    }];
    for f in DECODES {
        let dt = dtype(f);
        let codes = 1usize << dt.bits();
        let bytes = if dt.is_packed() {
            packing::pack((0..codes).map(|c| c as u8), dt.bits())
        } else {
            (0..codes).map(|c| c as u8).collect()
        };
        inputs.push(HostTensor {
            name: format!("c_{f}"),
            dtype: dt,
            shape: vec![codes as u64],
            data: AlignedBytes::from_slice(&bytes),
        });
    }
    let outs = session.run(&inputs).unwrap();
    assert_eq!(outs.len(), casts.len() + DECODES.len());
    for ((name, to, _, _), out) in casts.iter().zip(&outs) {
        let want = read(&format!("{name}.u8"));
        let dt = dtype(to);
        let got = out.data.as_ref();
        let code = |i: usize| {
            if dt.is_packed() {
                packing::get(got, dt.bits(), i)
            } else {
                got[i]
            }
        };
        let fx = |i: usize| f32::from_le_bytes(x[4 * i..4 * i + 4].try_into().unwrap());
        let bad: Vec<String> = (0..n as usize)
            // 0xFF marks integer casts numpy leaves undefined.
            .filter(|&i| !(dt.is_int() && want[i] == 0xFF) && code(i) != want[i])
            .take(8)
            .map(|i| {
                format!(
                    "{:e} ({:#010x}): got {:#04x}, want {:#04x}",
                    fx(i),
                    fx(i).to_bits(),
                    code(i),
                    want[i]
                )
            })
            .collect();
        assert!(bad.is_empty(), "{name}: mismatches:\n{}", bad.join("\n"));
        let checked = (0..n as usize)
            .filter(|&i| !(dt.is_int() && want[i] == 0xFF))
            .count();
        assert!(checked > 900_000, "{name}: only {checked} values checked");
    }
    for (f, out) in DECODES.iter().zip(&outs[casts.len()..]) {
        let want = read(&format!("decode_{f}.f32"));
        for (c, (g, w)) in out
            .data
            .as_ref()
            .chunks_exact(4)
            .zip(want.chunks_exact(4))
            .enumerate()
        {
            let (g, w) = (
                f32::from_le_bytes(g.try_into().unwrap()),
                f32::from_le_bytes(w.try_into().unwrap()),
            );
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{f} code {c:#04x}: got {g:e}, want {w:e}"
            );
        }
    }
}
