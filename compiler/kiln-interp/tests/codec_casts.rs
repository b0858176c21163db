//! `nn.cast` in the reference interpreter, bit for bit against ONNX's
//! reference (`onnx.reference` Cast through `ml_dtypes`): the data of
//! `testdata/codec/codec_reference.py` (every float16 and bfloat16 value,
//! 10^6 float32 values with specials, ties and their neighbours) cast from
//! f32 to every small float format in every saturation / E8M0 rounding mode
//! and to the 2- and 4-bit integers (the generator's `casts.tsv`), compared through the storage bytes the
//! interpreter writes. (The compiled casts: `kiln-driver/tests/codec_casts.rs`.)

use kiln_interp::{eval_node, Limits, Tensor};
use kiln_ir::codec::packing;
use kiln_ir::{Attr, Attrs, DType, Node, OpKind, ValueId};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn interpreted_casts_match_onnx_bit_for_bit() {
    let data = std::env::temp_dir().join(format!("kiln-interp-codec-{}", std::process::id()));
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    let st = Command::new(python)
        .arg(repo().join("testdata/codec/codec_reference.py"))
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "codec_reference.py failed");
    let read = |n: &str| std::fs::read(data.join(n)).unwrap();
    let raw = read("inputs.f32");
    let n = (raw.len() / 4) as u64;
    let x = Tensor::from_bytes(DType::F32, &[n], &raw).unwrap();
    let tsv = String::from_utf8(read("casts.tsv")).unwrap();
    let cases: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert!(cases.len() >= 19, "casts.tsv lists {} cases", cases.len());
    for case in &cases {
        let (name, to, sat, mode) = (case[0], case[1], case[2] == "1", case[3]);
        let dt = DType::from_name(to).unwrap();
        let mut attrs = Attrs::new();
        attrs.insert("to".into(), Attr::DType(dt));
        attrs.insert("saturate".into(), Attr::Bool(sat));
        attrs.insert("round_mode".into(), Attr::Str(mode.to_string()));
        let node = Node {
            op: OpKind::Cast,
            inputs: vec![Some(ValueId(0))],
            outputs: vec![ValueId(1)],
            attrs,
            loc: None,
            body: None,
        };
        let limits = Limits {
            max_elements: 1 << 22,
        };
        let out =
            eval_node(&[], &node, &[Some(&x)], &limits).unwrap_or_else(|e| panic!("{name}: {e}"));
        let bytes = out[0].to_bytes();
        let want = read(&format!("{name}.u8"));
        let code = |i: usize| {
            if dt.is_packed() {
                packing::get(&bytes, dt.bits(), i)
            } else {
                bytes[i]
            }
        };
        let bad: Vec<String> = (0..n as usize)
            // 0xFF marks integer casts numpy leaves undefined.
            .filter(|&i| !(dt.is_int() && want[i] == 0xFF) && code(i) != want[i])
            .take(8)
            .map(|i| {
                let v = f32::from_le_bytes(raw[4 * i..4 * i + 4].try_into().unwrap());
                format!(
                    "{v:e} ({:#010x}): got {:#04x}, want {:#04x}",
                    v.to_bits(),
                    code(i),
                    want[i]
                )
            })
            .collect();
        assert!(bad.is_empty(), "{name}: mismatches:\n{}", bad.join("\n"));
    }
    let _ = std::fs::remove_dir_all(&data);
}
