//! Typed op attributes.
//!
//! Attributes are stored in a sorted map so that printing and hashing are
//! deterministic. Each op's allowed attributes, their kinds and defaults are
//! declared once in its [`OpDef`](crate::ops::OpDef); the verifier checks
//! nodes against that schema.

use crate::dtype::DType;
use crate::graph::WeightId;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

/// One attribute value.
#[derive(Clone, Debug)]
pub enum Attr {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float (f32 attributes from ONNX widen exactly).
    Float(f64),
    /// A boolean flag.
    Bool(bool),
    /// A string.
    Str(String),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f64>),
    /// A list of strings.
    Strs(Vec<String>),
    /// An element type.
    DType(DType),
    /// A reference to a graph weight (used by `nn.constant`).
    Weight(WeightId),
}

/// The kind of an attribute, used by op schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrKind {
    /// [`Attr::Int`]
    Int,
    /// [`Attr::Float`]
    Float,
    /// [`Attr::Bool`]
    Bool,
    /// [`Attr::Str`]
    Str,
    /// [`Attr::Ints`]
    Ints,
    /// [`Attr::Floats`]
    Floats,
    /// [`Attr::Strs`]
    Strs,
    /// [`Attr::DType`]
    DType,
    /// [`Attr::Weight`]
    Weight,
    /// A string from a closed set of spellings: an [`AttrEnum`]'s
    /// [`AttrEnum::NAMES`]. Stored and printed as [`Attr::Str`]; the verifier
    /// and the ONNX importer refuse any other spelling.
    Enum(&'static [&'static str]),
}

impl AttrKind {
    /// Human-readable name with its article, used in diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            AttrKind::Int => "an integer",
            AttrKind::Float => "a float",
            AttrKind::Bool => "a bool",
            AttrKind::Str => "a string",
            AttrKind::Ints => "an integer list",
            AttrKind::Floats => "a float list",
            AttrKind::Strs => "a string list",
            AttrKind::DType => "a dtype",
            AttrKind::Weight => "a weight reference",
            AttrKind::Enum(_) => "a string",
        }
    }

    /// Why `a` (already of a fitting kind) is not an allowed value, if it
    /// is not: only [`AttrKind::Enum`] restricts values.
    pub fn value_error(self, name: &str, a: &Attr) -> Option<String> {
        match (self, a) {
            (AttrKind::Enum(names), Attr::Str(s)) if !names.contains(&s.as_str()) => {
                Some(unknown_value(name, s, names))
            }
            _ => None,
        }
    }
}

fn unknown_value(name: &str, value: &str, names: &[&str]) -> String {
    format!(
        "attribute '{name}' has unknown value \"{value}\" (expected one of {})",
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A string attribute whose values form a closed set, read as a Rust enum.
///
/// Declared with [`attr_enum!`](crate::attr_enum), which also gives the
/// type inherent `name`/`parse` methods. Op schemas name the set with
/// [`AttrKind::Enum`]`(T::NAMES)`, so the verifier, the importer and every
/// reader agree on the spellings, which are those `.kir` prints.
pub trait AttrEnum: Copy + Eq + fmt::Debug + Sized + 'static {
    /// Every spelling, in declaration order.
    const NAMES: &'static [&'static str];
    /// The spelling of `self`.
    fn as_str(self) -> &'static str;
    /// The value spelled `s`, if any.
    fn from_str(s: &str) -> Option<Self>;
    /// [`AttrEnum::from_str`], with the verifier's message on failure.
    fn read(name: &str, s: &str) -> Result<Self, String> {
        Self::from_str(s).ok_or_else(|| unknown_value(name, s, Self::NAMES))
    }
}

/// Declares an [`AttrEnum`]: a `Copy` enum whose variants map one-to-one to
/// attribute spellings.
///
/// ```
/// kiln_ir::attr_enum! {
///     /// How a shift moves bits.
///     pub enum Dir {
///         /// Towards the most significant bit.
///         Left = "left",
///         /// Towards the least significant bit.
///         Right = "right",
///     }
/// }
/// assert_eq!(Dir::parse("right"), Some(Dir::Right));
/// assert_eq!(Dir::Left.name(), "left");
/// assert_eq!(<Dir as kiln_ir::attr::AttrEnum>::NAMES, ["left", "right"]);
/// ```
#[macro_export]
macro_rules! attr_enum {
    ($(#[$meta:meta])* $vis:vis enum $T:ident {
        $($(#[$vmeta:meta])* $V:ident = $s:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $T {
            $($(#[$vmeta])* $V),+
        }

        impl $crate::attr::AttrEnum for $T {
            const NAMES: &'static [&'static str] = &[$($s),+];
            fn as_str(self) -> &'static str {
                self.name()
            }
            fn from_str(s: &str) -> Option<Self> {
                Self::parse(s)
            }
        }

        impl $T {
            /// The attribute spelling.
            pub const fn name(self) -> &'static str {
                match self {
                    $($T::$V => $s),+
                }
            }

            /// The value with attribute spelling `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some($T::$V),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $T {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

impl Attr {
    /// The attribute holding an [`AttrEnum`] value (its spelling).
    pub fn of_enum<T: AttrEnum>(v: T) -> Attr {
        Attr::Str(v.as_str().to_string())
    }

    /// The [`AttrEnum`] value this string attribute spells, if it is one.
    pub fn as_enum<T: AttrEnum>(&self) -> Option<T> {
        match self {
            Attr::Str(s) => T::from_str(s),
            _ => None,
        }
    }

    /// This attribute's kind.
    pub fn kind(&self) -> AttrKind {
        match self {
            Attr::Int(_) => AttrKind::Int,
            Attr::Float(_) => AttrKind::Float,
            Attr::Bool(_) => AttrKind::Bool,
            Attr::Str(_) => AttrKind::Str,
            Attr::Ints(_) => AttrKind::Ints,
            Attr::Floats(_) => AttrKind::Floats,
            Attr::Strs(_) => AttrKind::Strs,
            Attr::DType(_) => AttrKind::DType,
            Attr::Weight(_) => AttrKind::Weight,
        }
    }

    /// Whether `self` may stand where the schema asks for `kind`. An empty
    /// list literal `[]` parses as `Ints` and is accepted for any list kind.
    pub fn fits(&self, kind: AttrKind) -> bool {
        let k = self.kind();
        k == kind
            || (matches!(self, Attr::Ints(v) if v.is_empty())
                && matches!(kind, AttrKind::Floats | AttrKind::Strs))
            || (k == AttrKind::Int && kind == AttrKind::Float)
            || (k == AttrKind::Str && matches!(kind, AttrKind::Enum(_)))
    }
}

// Floats compare and hash by bit pattern so that CSE never merges 0.0 with
// -0.0 or treats NaN attributes as unequal to themselves.
impl PartialEq for Attr {
    fn eq(&self, other: &Attr) -> bool {
        match (self, other) {
            (Attr::Int(a), Attr::Int(b)) => a == b,
            (Attr::Float(a), Attr::Float(b)) => a.to_bits() == b.to_bits(),
            (Attr::Bool(a), Attr::Bool(b)) => a == b,
            (Attr::Str(a), Attr::Str(b)) => a == b,
            (Attr::Ints(a), Attr::Ints(b)) => a == b,
            (Attr::Floats(a), Attr::Floats(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (Attr::Strs(a), Attr::Strs(b)) => a == b,
            (Attr::DType(a), Attr::DType(b)) => a == b,
            (Attr::Weight(a), Attr::Weight(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Attr {}

impl Hash for Attr {
    fn hash<H: Hasher>(&self, h: &mut H) {
        std::mem::discriminant(self).hash(h);
        match self {
            Attr::Int(v) => v.hash(h),
            Attr::Float(v) => v.to_bits().hash(h),
            Attr::Bool(v) => v.hash(h),
            Attr::Str(v) => v.hash(h),
            Attr::Ints(v) => v.hash(h),
            Attr::Floats(v) => v.iter().for_each(|x| x.to_bits().hash(h)),
            Attr::Strs(v) => v.hash(h),
            Attr::DType(v) => v.hash(h),
            Attr::Weight(v) => v.hash(h),
        }
    }
}

/// A node's attributes, sorted by name.
pub type Attrs = BTreeMap<String, Attr>;

/// Writes a float so that it re-parses to the same bits and is never
/// mistaken for an integer.
pub fn fmt_float(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    if v.is_nan() {
        f.write_str("nan")
    } else if v.is_infinite() {
        f.write_str(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        let s = format!("{v:?}");
        if s.contains(['.', 'e', 'E']) {
            f.write_str(&s)
        } else {
            write!(f, "{s}.0")
        }
    }
}

fn quote(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// Writes a string literal with escapes, as the text format expects.
pub fn fmt_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    quote(f, s)
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T>(
            f: &mut fmt::Formatter<'_>,
            items: &[T],
            mut each: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
        ) -> fmt::Result {
            f.write_str("[")?;
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                each(f, x)?;
            }
            f.write_str("]")
        }
        match self {
            Attr::Int(v) => write!(f, "{v}"),
            Attr::Float(v) => fmt_float(f, *v),
            Attr::Bool(v) => write!(f, "{v}"),
            Attr::Str(s) => quote(f, s),
            Attr::Ints(v) => list(f, v, |f, x| write!(f, "{x}")),
            Attr::Floats(v) => list(f, v, |f, x| fmt_float(f, *x)),
            Attr::Strs(v) => list(f, v, |f, x| quote(f, x)),
            Attr::DType(d) => write!(f, "{d}"),
            Attr::Weight(w) => write!(f, "@{}", w.0),
        }
    }
}
