//! Runs every case of `fixtures/ops.json` (expected values from the ONNX
//! reference evaluator / ONNX Runtime, produced by `fixtures/gen_cases.py`)
//! through `eval_node` and compares with dtype-appropriate tolerances. NaN
//! must match NaN exactly; integer results must match exactly.

use kiln_interp::{eval_node, Limits, Tensor};
use kiln_ir::{Attr, Attrs, DType, Node, OpKind, ValueId};
use serde_json::Value;

fn tensor(v: &Value) -> Tensor {
    let dtype = DType::from_name(v["dtype"].as_str().unwrap()).unwrap();
    let shape: Vec<u64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect();
    let data = v["data"].as_array().unwrap();
    if dtype.is_float() {
        let f = data
            .iter()
            .map(|x| x.as_str().unwrap().parse::<f64>().unwrap())
            .collect();
        Tensor::from_f64(dtype, shape, f)
    } else {
        let i = data
            .iter()
            .map(|x| i128::from(x.as_i64().unwrap()))
            .collect();
        Tensor::from_ints(dtype, shape, i)
    }
}

fn attr(v: &Value) -> Attr {
    let (k, x) = v.as_object().unwrap().iter().next().unwrap();
    match k.as_str() {
        "int" => Attr::Int(x.as_i64().unwrap()),
        "float" => Attr::Float(x.as_f64().unwrap()),
        "bool" => Attr::Bool(x.as_bool().unwrap()),
        "ints" => Attr::Ints(
            x.as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_i64().unwrap())
                .collect(),
        ),
        "str" => match DType::from_name(x.as_str().unwrap()) {
            Some(d)
                if !x.as_str().unwrap().is_empty() && k == "str" && x.as_str() != Some("none") =>
            {
                // Only Cast's `to` spells a dtype; other strings never collide
                // with dtype names.
                Attr::DType(d)
            }
            _ => Attr::Str(x.as_str().unwrap().to_string()),
        },
        other => panic!("unknown attr kind {other}"),
    }
}

/// Tolerance per result dtype: f32 results are correctly rounded from f64
/// here, but the reference computes in f32.
fn close(dt: DType, got: f64, want: f64) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || dt != DType::F32 {
        return got == want;
    }
    (got - want).abs() <= 1e-5 + 1e-5 * want.abs()
}

#[test]
fn onnx_reference_cases() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ops.json"
    ))
    .unwrap();
    let root: Value = serde_json::from_str(&text).unwrap();
    let mut failures = Vec::new();
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() > 70, "fixture lost its cases");
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let op = OpKind::from_name(c["op"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{name}: unknown op"));
        let mut attrs = Attrs::new();
        for (k, v) in c["attrs"].as_object().unwrap() {
            attrs.insert(k.clone(), attr(v));
        }
        let inputs: Vec<Option<Tensor>> = c["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (!v.is_null()).then(|| tensor(v)))
            .collect();
        let want: Vec<Tensor> = c["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        let node = Node {
            op,
            inputs: (0..inputs.len()).map(|i| Some(ValueId(i as u32))).collect(),
            outputs: (0..want.len()).map(|i| ValueId(100 + i as u32)).collect(),
            attrs,
            loc: Some(name.to_string()),
            body: None,
        };
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
        let got = match eval_node(&[], &node, &refs, &Limits::default()) {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        for (i, w) in want.iter().enumerate() {
            let g = &got[i];
            // The reference promotes some stash outputs; compare values.
            if g.shape != w.shape {
                failures.push(format!(
                    "{name} #{i}: shape {:?} vs expected {:?}",
                    g.shape, w.shape
                ));
                continue;
            }
            if g.dtype.is_float() != w.dtype.is_float() {
                failures.push(format!(
                    "{name} #{i}: dtype {} vs expected {}",
                    g.dtype, w.dtype
                ));
                continue;
            }
            let bad: Vec<String> = (0..w.numel())
                .filter(|&e| match (g.ints(), w.ints()) {
                    (Some(a), Some(b)) => a[e] != b[e],
                    _ => !close(w.dtype, g.get_f64(e), w.get_f64(e)),
                })
                .take(3)
                .map(|e| format!("[{e}] {} vs {}", g.get_f64(e), w.get_f64(e)))
                .collect();
            if !bad.is_empty() {
                failures.push(format!("{name} #{i}: {}", bad.join(", ")));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
