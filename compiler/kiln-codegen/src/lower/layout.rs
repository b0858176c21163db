//! `nn.pack` and `nn.unpack` as tensor code (the packings of
//! `kiln_ir::ops::layout`), for packed values computed at run time; packed
//! weights reach kernels as derived weights instead.

use super::ctx::{affine_map, Builder, Res, Val};
use super::{attr_err, NodeIn};
use kiln_ir::ops::layout::{unpack_shape, PackLayout, Packing};

/// `nn.unpack`: every logical element read from its packed position, an
/// affine function of the logical index.
pub(crate) fn unpack(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?;
    let p = Packing::read(n.a, unpack_shape(n.a).map_err(attr_err)?).map_err(attr_err)?;
    let s = &p.logical;
    let nr = p.block;
    let map: Vec<String> = match p.layout {
        PackLayout::GemmB => vec![
            format!("d1 floordiv {nr}"),
            "d0".into(),
            format!("d1 mod {nr}"),
        ],
        PackLayout::ConvNhwc => {
            let cgo = s[0] / p.groups;
            vec![
                format!("d0 floordiv {cgo}"),
                format!("(d0 mod {cgo}) floordiv {nr}"),
                format!("(d2 * {} + d3) * {} + d1", s[3], s[1]),
                format!("(d0 mod {cgo}) mod {nr}"),
            ]
        }
        PackLayout::DwConvNhwc => vec!["d2".into(), "d3".into(), "d0".into()],
        PackLayout::Int8GemmB | PackLayout::Int8GemmBNarrow => vec![
            format!("d1 floordiv {nr}"),
            "d0 floordiv 4".into(),
            format!("(d1 mod {nr}) * 4 + d0 mod 4"),
        ],
        PackLayout::RowPanels => vec![
            format!("d0 floordiv {nr}"),
            "d1".into(),
            format!("d0 mod {nr}"),
        ],
        PackLayout::RowPanelsK8 => vec![
            format!("d0 floordiv {nr}"),
            "d1 floordiv 8".into(),
            format!("d0 mod {nr}"),
            "d1 mod 8".into(),
        ],
        PackLayout::Nchwc => {
            let r = s.len();
            let mut m = vec!["d0".to_string(), format!("d1 floordiv {nr}")];
            m.extend((2..r).map(|i| format!("d{i}")));
            m.push(format!("d1 mod {nr}"));
            m
        }
    };
    b.read_through(x, &map, s)
}

/// `nn.pack`: every packed element read from its logical position, or zero
/// past the logical extent.
pub(crate) fn pack(b: &mut Builder, n: &NodeIn<'_>) -> Res<Val> {
    let x = n.input(0)?.clone();
    let p = Packing::read(n.a, x.shape.clone()).map_err(attr_err)?;
    if matches!(
        p.layout,
        PackLayout::Int8GemmB
            | PackLayout::Int8GemmBNarrow
            | PackLayout::RowPanels
            | PackLayout::RowPanelsK8
    ) {
        return Err(format!(
            "{} packs constant weights only (derived weights)",
            p.layout.name()
        ));
    }
    let shape = p.packed_shape();
    let s = p.logical.clone();
    let nr = p.block;
    let r = shape.len();
    let dt = x.dtype;
    b.tabulate(dt, &shape, |body, idx| {
        let apply = |body: &mut super::ctx::Body<'_>, e: String| {
            body.op(format!(
                "affine.apply {}({})",
                affine_map(r, std::slice::from_ref(&e)),
                idx.join(", ")
            ))
        };
        // (logical index expressions, the padded extent checked, its bound)
        let (subs, padded): (Vec<String>, Option<(String, u64)>) = match p.layout {
            PackLayout::GemmB => {
                let col = format!("d0 * {nr} + d2");
                (vec!["d1".into(), col.clone()], Some((col, s[1])))
            }
            PackLayout::ConvNhwc => {
                let cgo = s[0] / p.groups;
                let (cg, kw) = (s[1], s[3]);
                let o = format!("d1 * {nr} + d3");
                (
                    vec![
                        format!("d0 * {cgo} + {o}"),
                        format!("d2 mod {cg}"),
                        format!("d2 floordiv {}", kw * cg),
                        format!("(d2 mod {}) floordiv {cg}", kw * cg),
                    ],
                    Some((o, cgo)),
                )
            }
            PackLayout::DwConvNhwc => (
                vec!["d2".into(), "0".into(), "d0".into(), "d1".into()],
                None,
            ),
            PackLayout::Int8GemmB
            | PackLayout::Int8GemmBNarrow
            | PackLayout::RowPanels
            | PackLayout::RowPanelsK8 => {
                unreachable!("refused above")
            }
            PackLayout::Nchwc => {
                let c = format!("d1 * {nr} + d{}", r - 1);
                let mut v = vec!["d0".to_string(), c.clone()];
                v.extend((2..r - 1).map(|i| format!("d{i}")));
                (v, Some((c, s[1])))
            }
        };
        let mut at: Vec<String> = subs.into_iter().map(|e| apply(body, e)).collect();
        let Some((e, bound)) = padded else {
            return Ok(body.extract(&x, &at));
        };
        // Clamp the padded coordinate (so the read stays inside `x`) and
        // select zero where it is past the logical extent.
        let coord = apply(body, e);
        let last = body.index(bound as i64 - 1);
        let clamped = body.op(format!("arith.minsi {coord}, {last} : index"));
        let bound_c = body.index(bound as i64);
        let valid = body.op(format!("arith.cmpi slt, {coord}, {bound_c} : index"));
        if p.layout == PackLayout::ConvNhwc {
            // Output channel g * Cout_g + min(o, Cout_g - 1).
            let cgo = s[0] / p.groups;
            at[0] = body.op(format!(
                "affine.apply affine_map<(d0, d1) -> (d0 * {cgo} + d1)>({}, {clamped})",
                idx[0]
            ));
        } else {
            // gemm_b's column and nchwc's channel are coordinate 1.
            at[1] = clamped;
        }
        let v = body.extract(&x, &at);
        let zero = body.num(0.0, dt)?;
        Ok(body.select(&valid, &v, &zero, super::ctx::elem(dt)?))
    })
}
