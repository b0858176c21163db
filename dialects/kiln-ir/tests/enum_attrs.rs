//! Closed-set string attributes ([`AttrEnum`]): every schema that names a
//! set has a default inside it, each typed enum's spellings map one-to-one,
//! the verifier refuses a spelling outside the set (naming the attribute,
//! the value and the allowed ones), and the text format keeps the spellings.

use kiln_ir::attr::{AttrEnum, AttrKind};
use kiln_ir::codec::block::Scheme;
use kiln_ir::codec::E8m0Rounding;
use kiln_ir::ops::layout::{DataLayout, PackLayout};
use kiln_ir::ops::resample::{
    AspectPolicy, CoordinateTransform, GridMode, GridPadding, NearestMode, ResizeMode,
};
use kiln_ir::ops::{
    AttrDefault, AutoPad, DepthToSpaceMode, FusedKind, GeluApprox, PadMode, QuantPart,
    ScatterReduction, ShiftDirection,
};
use kiln_ir::text::{parse, print};
use kiln_ir::OpKind;
use std::collections::HashSet;

/// `T`'s spellings are unique, and each parses to a value that spells it.
fn bijective<T: AttrEnum>() -> usize {
    let mut seen = HashSet::new();
    for &n in T::NAMES {
        assert!(seen.insert(n), "{n} listed twice");
        let v = T::from_str(n).unwrap_or_else(|| panic!("{n} does not parse"));
        assert_eq!(v.as_str(), n);
    }
    assert_eq!(T::from_str(""), None);
    assert_eq!(T::from_str("no-such-spelling"), None);
    T::NAMES.len()
}

#[test]
fn every_enum_maps_its_spellings_one_to_one() {
    let counts = [
        bijective::<AutoPad>(),
        bijective::<DataLayout>(),
        bijective::<PackLayout>(),
        bijective::<ResizeMode>(),
        bijective::<NearestMode>(),
        bijective::<CoordinateTransform>(),
        bijective::<AspectPolicy>(),
        bijective::<GridMode>(),
        bijective::<GridPadding>(),
        bijective::<PadMode>(),
        bijective::<ScatterReduction>(),
        bijective::<DepthToSpaceMode>(),
        bijective::<GeluApprox>(),
        bijective::<ShiftDirection>(),
        bijective::<E8m0Rounding>(),
        bijective::<QuantPart>(),
        bijective::<FusedKind>(),
        bijective::<Scheme>(),
    ];
    // The sets ONNX defines (and Kiln's own), so a dropped variant shows.
    assert_eq!(
        counts,
        [4, 2, 8, 3, 4, 6, 3, 3, 3, 4, 5, 2, 2, 2, 3, 6, 3, 12]
    );
    // Case matters: ONNX spells auto_pad in capitals, Kiln's layouts in lower case.
    assert_eq!(AutoPad::parse("same_upper"), None);
    assert_eq!(AutoPad::parse("SAME_UPPER"), Some(AutoPad::SameUpper));
    assert_eq!(DataLayout::parse("NHWC"), None);
}

#[test]
fn every_enum_attribute_defaults_inside_its_set() {
    let mut enum_attrs = 0;
    for &k in OpKind::ALL {
        let d = k.def();
        for a in d.attrs {
            let AttrKind::Enum(names) = a.kind else {
                continue;
            };
            enum_attrs += 1;
            assert!(!names.is_empty(), "{}.{} has an empty set", d.name, a.name);
            match a.default {
                AttrDefault::Str(s) => assert!(
                    names.contains(&s),
                    "{}.{} defaults to \"{s}\", outside {names:?}",
                    d.name,
                    a.name
                ),
                AttrDefault::Required | AttrDefault::Absent => {}
                other => panic!("{}.{} has a non-string default {other:?}", d.name, a.name),
            }
        }
        // No string attribute with a closed set is left untyped: the only
        // free-form strings are Einsum's equation.
        for a in d.attrs {
            if a.kind == AttrKind::Str {
                assert_eq!((d.name, a.name), ("nn.einsum", "equation"));
            }
        }
    }
    assert!(enum_attrs >= 20, "only {enum_attrs} enum attributes");
}

fn verify_errors(src: &str) -> String {
    match parse(src, "t.kir", None) {
        Ok(p) => panic!("verified:\n{}", print(&p.graph)),
        Err(e) => e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn the_verifier_refuses_a_value_outside_the_set() {
    let e = verify_errors(
        r#"graph @g(%x: tensor<4xf32>, %p: tensor<2xi64>) -> (tensor<?xf32>) {
  %y = nn.pad %x, %p {mode = "mirror"} : tensor<?xf32>
  return %y
}"#,
    );
    assert!(
        e.contains(
            "attribute 'mode' has unknown value \"mirror\" \
             (expected one of \"constant\", \"reflect\", \"edge\", \"wrap\")"
        ),
        "{e}"
    );
    assert!(e.contains("t.kir:2:"), "the error names no line: {e}");
    let e = verify_errors(
        r#"graph @g(%x: tensor<1x1x4x4xf32>, %w: tensor<1x1x3x3xf32>) -> (tensor<1x1x4x4xf32>) {
  %y = nn.conv %x, %w {auto_pad = "same_upper"} : tensor<1x1x4x4xf32>
  return %y
}"#,
    );
    assert!(e.contains("unknown value \"same_upper\""), "{e}");
    assert!(e.contains("\"SAME_UPPER\""), "{e}");
    // A string where the schema wants a set is checked by value, a number is
    // refused by kind.
    let e = verify_errors(
        r#"graph @g(%x: tensor<4xf32>) -> (tensor<4xf32>) {
  %y = nn.gelu %x {approximate = 1} : tensor<4xf32>
  return %y
}"#,
    );
    assert!(
        e.contains("attribute 'approximate' must be a string, got an integer"),
        "{e}"
    );
}

#[test]
fn the_text_format_keeps_the_spellings() {
    let src = r#"graph @g(%x: tensor<1x1x4x4xf32>, %w: tensor<1x1x3x3xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) {
  %y = nn.conv %x, %w {auto_pad = "SAME_LOWER"} : tensor<1x1x4x4xf32>
  %z = nn.gelu %y {approximate = "tanh"} : tensor<1x1x4x4xf32>
  return %y, %z
}"#;
    let g = match parse(src, "t.kir", None) {
        Ok(p) => p.graph,
        Err(e) => panic!("{e:?}"),
    };
    let text = print(&g);
    assert!(text.contains("auto_pad = \"SAME_LOWER\""), "{text}");
    assert!(text.contains("approximate = \"tanh\""), "{text}");
    let again = match parse(&text, "t.kir", None) {
        Ok(p) => print(&p.graph),
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(text, again);
}
