//! The CPU kernel library, checked kernel by kernel against naive references written here.
//!
//! For every x86-64 level this machine supports (`x86-64` = SSE2, `x86-64-v3` = AVX2 + FMA,
//! `x86-64-v4` = AVX-512), the library is compiled with `compile_kernels` for that target,
//! linked with the real parallel shim and a small harness into a shared library, loaded, and
//! each kernel is run serially and on a test thread pool (2 threads in contiguous chunks, 4
//! threads in single-index chunks) with `KILN_PARALLEL_MIN_US=0`, so every parallel split is
//! taken. References accumulate in f64 on random normal inputs; packed weights are packed here
//! from the layout definitions of docs/middle-end.md, so a kernel that disagrees with the
//! documented layout fails. AArch64 is compiled and linked, not run (no AArch64 execution
//! here; the AArch64 variant's register tile is run on x86-64).

use kiln_codegen::kernels::abi::*;
use kiln_codegen::kernels::harness::{link_harness_library, wrapper_symbol};
use kiln_codegen::kernels::{compile_kernels, Kernel, Variant};
use kiln_codegen::parallel::FRAME_BYTES;
use kiln_codegen::{Arch, OptLevel, Target};
use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Building and calling the library

type Body = unsafe extern "C" fn(*mut c_void, i64, i64);
type ParallelFor = unsafe extern "C" fn(*mut c_void, i64, Option<Body>, *mut c_void);

/// `kiln_exec_ctx` of `kiln.h`.
#[repr(C)]
struct ExecCtx {
    abi_version: u32,
    num_threads: u32,
    pool: *mut c_void,
    parallel_for: Option<ParallelFor>,
}

/// The test pool: `threads` OS threads per call, claiming chunks of `chunk` indices (0: n /
/// threads, rounded up).
#[repr(C)]
struct TestPool {
    threads: u32,
    chunk: u32,
}

struct SendPtr(*mut c_void);

impl SendPtr {
    fn get(&self) -> *mut c_void {
        self.0
    }
}
// SAFETY: the kernel's parallel contract: `body` may run on any thread with `data`.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

unsafe extern "C" fn test_parallel_for(
    pool: *mut c_void,
    n: i64,
    body: Option<Body>,
    data: *mut c_void,
) {
    // SAFETY: `pool` is the TestPool of the context passed to the kernel.
    let pool = unsafe { &*(pool as *const TestPool) };
    let Some(body) = body else { return };
    let threads = i64::from(pool.threads);
    let chunk = if pool.chunk == 0 {
        (n + threads - 1) / threads
    } else {
        i64::from(pool.chunk)
    };
    let next = AtomicI64::new(0);
    let data = SendPtr(data);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let begin = next.fetch_add(chunk, Ordering::Relaxed);
                if begin >= n {
                    break;
                }
                let end = (begin + chunk).min(n);
                // SAFETY: every index of [0, n) is run exactly once, while data lives.
                unsafe { body(data.get(), begin, end) };
            });
        }
    });
}

/// How a kernel runs: outside a run (serial), or in a run on a test pool.
#[derive(Clone, Copy, Debug)]
enum Threads {
    Serial,
    Pool { threads: u32, chunk: u32 },
}

const THREADS: [Threads; 3] = [
    Threads::Serial,
    Threads::Pool {
        threads: 2,
        chunk: 0,
    },
    Threads::Pool {
        threads: 4,
        chunk: 1,
    },
];

type KernelFn = unsafe extern "C" fn(*const i64);
type EnterFn = unsafe extern "C" fn(*const ExecCtx, *mut u64) -> *mut c_void;
type LeaveFn = unsafe extern "C" fn(*mut c_void);

struct Lib {
    _dir: tempfile::TempDir,
    _lib: libloading::Library,
    kernels: Vec<(Kernel, KernelFn)>,
    enter: EnterFn,
    leave: LeaveFn,
    variant: Variant,
    label: String,
}

impl Lib {
    /// Runs `kernel` with `args`.
    fn run(&self, kernel: Kernel, args: &[Slot<u64>], threads: Threads) {
        let f = self
            .kernels
            .iter()
            .find(|k| k.0 == kernel)
            .expect("built")
            .1;
        let block: Vec<i64> = args.iter().map(|s| s.to_bits(|p| *p as i64)).collect();
        match threads {
            // SAFETY: the argument block describes buffers the caller keeps alive.
            Threads::Serial => unsafe { f(block.as_ptr()) },
            Threads::Pool { threads, chunk } => {
                let mut pool = TestPool { threads, chunk };
                let ctx = ExecCtx {
                    abi_version: 1,
                    num_threads: threads,
                    pool: &mut pool as *mut TestPool as *mut c_void,
                    parallel_for: Some(test_parallel_for),
                };
                let mut frame = [0u64; FRAME_BYTES as usize / 8];
                // SAFETY: as above; ctx, pool and frame outlive the run, which the harness
                // brackets like kiln_entry does.
                unsafe {
                    let prev = (self.enter)(&ctx, frame.as_mut_ptr());
                    f(block.as_ptr());
                    (self.leave)(prev);
                }
            }
        }
    }
}

/// The kernels a library for `target` holds: all but the VNNI int8 product where the target
/// lacks the instruction (an artifact never calls it there).
fn lib_kernels(target: &Target, variant: Variant) -> Vec<Kernel> {
    Kernel::ALL
        .into_iter()
        .filter(|k| k.compiles_for(target, variant))
        .collect()
}

/// Builds the kernels of `variant` for `target` into a harness library and loads it.
fn load(target: &Target, variant: Variant) -> Lib {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = lib_kernels(target, variant)
        .iter()
        .map(|k| k.symbol(variant))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let path = dir.path().join("libk.so");
    let start = std::time::Instant::now();
    let obj = compile_kernels(target, OptLevel::O3, &refs).unwrap();
    eprintln!(
        "compile_kernels for {target} {} ({} kernels): {:.2} s",
        variant.name(),
        refs.len(),
        start.elapsed().as_secs_f64()
    );
    assert_calls_only_the_shim(&obj, &format!("{target} {}", variant.name()));
    link_harness_library(target, OptLevel::O3, &obj, &refs, &path).unwrap();
    // SAFETY: the library was just built for this machine; it has no initialisers.
    let lib = unsafe { libloading::Library::new(&path) }.unwrap();
    let sym = |name: &str| -> *const c_void {
        // SAFETY: looking up a symbol; the caller casts it to its real signature.
        unsafe {
            *lib.get::<*const c_void>(format!("{name}\0").as_bytes())
                .unwrap()
        }
    };
    // SAFETY: the harness defines these with the signatures given by the aliases.
    let (kernels, enter, leave) = unsafe {
        let kernels = lib_kernels(target, variant)
            .into_iter()
            .map(|k| {
                let f = sym(&wrapper_symbol(&k.symbol(variant)));
                (k, std::mem::transmute::<*const c_void, KernelFn>(f))
            })
            .collect();
        (
            kernels,
            std::mem::transmute::<*const c_void, EnterFn>(sym("kiln_harness_enter")),
            std::mem::transmute::<*const c_void, LeaveFn>(sym("kiln_harness_leave")),
        )
    };
    Lib {
        _dir: dir,
        _lib: lib,
        kernels,
        enter,
        leave,
        variant,
        label: format!("{target} {}", variant.name()),
    }
}

/// The libraries to test on this machine: each x86-64 level the CPU supports with its own
/// variant, plus the AArch64 variant's register tile run on the baseline.
fn libs() -> &'static [Lib] {
    static LIBS: OnceLock<Vec<Lib>> = OnceLock::new();
    LIBS.get_or_init(|| {
        // Every kernel splits its work whenever a pool is present.
        std::env::set_var("KILN_PARALLEL_MIN_US", "0");
        let mut v = Vec::new();
        if Arch::of_host() != Some(Arch::X86_64) {
            return v;
        }
        let t = |s: &str| Target::parse(s).unwrap();
        v.push(load(&t("x86-64"), Variant::W4R16));
        v.push(load(&t("x86-64"), Variant::W4R32));
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            v.push(load(&t("x86-64-v3"), Variant::W8R16));
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            v.push(load(&t("x86-64-v4"), Variant::W16R32));
            // The VNNI int8 product (igemmv) where this machine has it.
            if std::arch::is_x86_feature_detected!("avx512vnni") {
                v.push(load(&t("x86_64:cascadelake"), Variant::W16R32));
            }
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            v.push(load(&t("x86_64:alderlake"), Variant::W8R16));
        }
        v
    })
}

/// Runs `check` for every library and threading mode.
fn for_each(mut check: impl FnMut(&Lib, Threads)) {
    for lib in libs() {
        for t in THREADS {
            check(lib, t);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data

/// xorshift64* with Box-Muller normals.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
    fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
}

/// The address of an input buffer.
fn addr(v: &[f32]) -> u64 {
    v.as_ptr() as u64
}

/// The address of a buffer the kernel writes.
fn addr_mut(v: &mut [f32]) -> u64 {
    v.as_mut_ptr() as u64
}

/// 64-byte aligned scratch of `bytes` bytes followed by a canary region.
struct Scratch {
    buf: Vec<u8>,
    start: usize,
    bytes: usize,
}

const CANARY: usize = 256;

impl Scratch {
    fn new(bytes: u64) -> Scratch {
        let bytes = bytes as usize;
        let buf = vec![0xA5u8; bytes + CANARY + 64];
        let start = buf.as_ptr().align_offset(64);
        Scratch { buf, start, bytes }
    }
    fn addr(&self) -> u64 {
        self.buf[self.start..].as_ptr() as u64
    }
    fn check(&self, what: &str) {
        let tail = &self.buf[self.start + self.bytes..self.start + self.bytes + CANARY];
        assert!(
            tail.iter().all(|&b| b == 0xA5),
            "{what}: scratch written past its documented size"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison

fn f32_ulp(r: f64) -> f64 {
    let a = r.abs();
    if a.is_nan() || a < f64::from(f32::MIN_POSITIVE) {
        return 2f64.powi(-149);
    }
    2f64.powi(a.log2().floor() as i32 - 23)
}

/// Checks `got` against `want` elementwise: NaN must match NaN, infinities must match, else
/// |got - want| <= tol[i].
fn check_close(what: &str, got: &[f32], want: &[f64], tol: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        if w.is_nan() || g.is_nan() {
            assert!(
                w.is_nan() && g.is_nan(),
                "{what}[{i}]: got {g}, want {w} (NaN must match NaN)"
            );
            continue;
        }
        if w.is_infinite() || g.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]: infinities differ");
            continue;
        }
        let err = (g - w).abs();
        if err > tol[i] {
            panic!(
                "{what}[{i}]: got {g}, want {w}, error {err:.3e} > tolerance {:.3e}",
                tol[i]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reference epilogue

fn erf(x: f64) -> f64 {
    libm::erf(x)
}

fn unary_ref(u: Unary, x: f64) -> f64 {
    let f = |v: f32| f64::from(v);
    let nanmax = |a: f64, b: f64| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.max(b)
        }
    };
    let nanmin = |a: f64, b: f64| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.min(b)
        }
    };
    match u {
        Unary::Relu => nanmax(x, 0.0),
        Unary::Clip { lo, hi } => nanmin(nanmax(x, f(lo)), f(hi)),
        Unary::LeakyRelu { alpha } => {
            if x < 0.0 {
                f(alpha) * x
            } else {
                x
            }
        }
        Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Unary::Tanh => x.tanh(),
        Unary::GeluErf => {
            if x == f64::NEG_INFINITY {
                0.0
            } else {
                0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
            }
        }
        Unary::GeluTanh => {
            if x == f64::NEG_INFINITY {
                0.0
            } else {
                let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
                // 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)), exact in f64 for these ranges.
                x / (1.0 + (-2.0 * u).exp())
            }
        }
        Unary::Silu => {
            if x == f64::NEG_INFINITY {
                0.0
            } else {
                x / (1.0 + (-x).exp())
            }
        }
        Unary::HardSigmoid { alpha, beta } => nanmax(0.0, nanmin(1.0, f(alpha) * x + f(beta))),
        Unary::HardSwish => x * nanmax(0.0, nanmin(1.0, x / 6.0 + 0.5)),
        Unary::Elu { alpha } => {
            if x < 0.0 {
                f(alpha) * x.exp_m1()
            } else {
                x
            }
        }
        Unary::Exp => x.exp(),
        Unary::Erf => erf(x),
        Unary::Neg => -x,
        Unary::Abs => x.abs(),
        Unary::Sqrt => x.sqrt(),
        Unary::Log => x.ln(),
    }
}

fn binary_ref(op: Binary, c: f64, x: f64) -> f64 {
    match op {
        Binary::Add => c + x,
        Binary::Sub => c - x,
        Binary::Rsub => x - c,
        Binary::Mul => c * x,
        Binary::Div => c / x,
        Binary::Rdiv => x / c,
        Binary::Max => {
            if c.is_nan() || x.is_nan() {
                f64::NAN
            } else {
                c.max(x)
            }
        }
        Binary::Min => {
            if c.is_nan() || x.is_nan() {
                f64::NAN
            } else {
                c.min(x)
            }
        }
    }
}

/// Host-side operand data of an epilogue op, addressed like the kernel's operand.
#[derive(Clone)]
enum OpData {
    Unary(Unary),
    Binary {
        op: Binary,
        kind: OpKind,
        data: Vec<f32>,
        ld: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum OpKind {
    Imm,
    Scalar,
    Row,
    Col,
    Mat,
}

impl OpData {
    fn operand(&self, r: usize, c: usize) -> f64 {
        match self {
            OpData::Unary(_) => unreachable!(),
            OpData::Binary { kind, data, ld, .. } => f64::from(match kind {
                OpKind::Imm | OpKind::Scalar => data[0],
                OpKind::Row => data[c],
                OpKind::Col => data[r],
                OpKind::Mat => data[r * *ld as usize + c],
            }),
        }
    }

    fn apply(&self, v: f64, r: usize, c: usize) -> f64 {
        match self {
            OpData::Unary(u) => unary_ref(*u, v),
            OpData::Binary { op, .. } => binary_ref(*op, v, self.operand(r, c)),
        }
    }

    fn to_abi(&self) -> EpiOp<u64> {
        match self {
            OpData::Unary(u) => EpiOp::Unary(*u),
            OpData::Binary { op, kind, data, ld } => EpiOp::Binary {
                op: *op,
                operand: match kind {
                    OpKind::Imm => Operand::Imm(data[0]),
                    OpKind::Scalar => Operand::Scalar(addr(data)),
                    OpKind::Row => Operand::Row(addr(data)),
                    OpKind::Col => Operand::Col(addr(data)),
                    OpKind::Mat => Operand::Mat {
                        ptr: addr(data),
                        ld: *ld,
                    },
                },
                batch_stride: 0,
            },
        }
    }
}

fn epilogue(ops: &[OpData]) -> Epilogue<u64> {
    Epilogue::new(ops.iter().map(OpData::to_abi).collect()).unwrap()
}

fn epi_ref(ops: &[OpData], v: f64, r: usize, c: usize) -> f64 {
    ops.iter().fold(v, |v, op| op.apply(v, r, c))
}

/// A binary op with random operand data for an output of `rows x cols`.
fn binary(rng: &mut Rng, op: Binary, kind: OpKind, rows: usize, cols: usize) -> OpData {
    let (data, ld) = match kind {
        OpKind::Imm | OpKind::Scalar => (vec![rng.normal() + 0.5], 0),
        OpKind::Row => (rng.normals(cols, 1.0), 0),
        OpKind::Col => (rng.normals(rows, 1.0), 0),
        OpKind::Mat => {
            let ld = cols + 3;
            (rng.normals(rows * ld, 1.0), ld as i64)
        }
    };
    OpData::Binary { op, kind, data, ld }
}

// ---------------------------------------------------------------------------------------------
// Packing from the layouts of docs/middle-end.md

/// `gemm_b`: `B[K,N]` → `[ceil(N/NR), K, NR]`, `packed[p][k][j] = B[k][p*NR+j]`, 0 past N.
fn pack_gemm_b(b: &[f32], k: usize, n: usize, nr: usize) -> Vec<f32> {
    let panels = n.div_ceil(nr);
    let mut out = vec![0.0; panels * k * nr];
    for p in 0..panels {
        for kk in 0..k {
            for j in 0..nr {
                if p * nr + j < n {
                    out[(p * k + kk) * nr + j] = b[kk * n + p * nr + j];
                }
            }
        }
    }
    out
}

/// `conv_nhwc`: OIHW `W[Cout, Cin/G, KH, KW]` → per group `B_g[k][o]`, `k = (kh*KW + kw)*(Cin/G)
/// + c`, `B_g[k][o] = W[g*(Cout/G) + o][c][kh][kw]`, each packed as `gemm_b`, groups concatenated.
#[allow(dead_code)] // no test calls it yet (clippy -D warnings)
fn pack_conv_nhwc(
    w: &[f32],
    cout: usize,
    cin_g: usize,
    kh: usize,
    kw: usize,
    groups: usize,
    nr: usize,
) -> Vec<f32> {
    let cout_g = cout / groups;
    let k = kh * kw * cin_g;
    let mut out = Vec::new();
    for g in 0..groups {
        let mut bg = vec![0.0; k * cout_g];
        for o in 0..cout_g {
            for c in 0..cin_g {
                for y in 0..kh {
                    for x in 0..kw {
                        let kk = (y * kw + x) * cin_g + c;
                        bg[kk * cout_g + o] = w[(((g * cout_g + o) * cin_g + c) * kh + y) * kw + x];
                    }
                }
            }
        }
        out.extend(pack_gemm_b(&bg, k, cout_g, nr));
    }
    out
}

/// `dwconv_nhwc`: `W[C, 1, KH, KW]` → `P[kh][kw][c] = W[c][0][kh][kw]`.
#[allow(dead_code)] // no test calls it yet (clippy -D warnings)
fn pack_dwconv(w: &[f32], c: usize, kh: usize, kw: usize) -> Vec<f32> {
    let mut out = vec![0.0; kh * kw * c];
    for ch in 0..c {
        for y in 0..kh {
            for x in 0..kw {
                out[(y * kw + x) * c + ch] = w[(ch * kh + y) * kw + x];
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Library-level checks

#[test]
fn every_kernel_compiles_for_aarch64_and_links() {
    // Plain ARMv8-A, and a CPU with the dot product extension (the int8 product's SDOT path,
    // `igemmv`, which plain ARMv8-A must not get).
    for (cpu, dot) in [("aarch64", false), ("aarch64-linux-gnu:neoverse-n1", true)] {
        let target = Target::parse(cpu).unwrap();
        let kernels = lib_kernels(&target, Variant::W4R32);
        assert_eq!(kernels.contains(&Kernel::IGemmVnni), dot, "{cpu}");
        compiles_for_aarch64_and_links(&target, &kernels);
    }
}

fn compiles_for_aarch64_and_links(target: &Target, kernels: &[Kernel]) {
    use object::{Object, ObjectSymbol};
    let target = target.clone();
    let names: Vec<String> = kernels.iter().map(|k| k.symbol(Variant::W4R32)).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("libk.so");
    let obj = compile_kernels(&target, OptLevel::O3, &refs).unwrap();
    assert_calls_only_the_shim(&obj, "aarch64");
    link_harness_library(&target, OptLevel::O3, &obj, &refs, &lib).unwrap();
    let bytes = std::fs::read(&lib).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    assert_eq!(file.architecture(), object::Architecture::Aarch64);
    for name in &names {
        let wrapper = wrapper_symbol(name);
        assert!(
            file.dynamic_symbols()
                .any(|s| s.name() == Ok(wrapper.as_str()) && s.is_definition()),
            "{wrapper} not exported for aarch64"
        );
        assert!(
            !file
                .dynamic_symbols()
                .any(|s| s.name() == Ok(name.as_str())),
            "{name} must stay hidden"
        );
    }
}

/// Kernels may reference only the parallel shim and the C library's memory functions (which
/// LLVM may emit for copies): no libm, no other runtime.
fn assert_calls_only_the_shim(obj: &[u8], what: &str) {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(obj).unwrap();
    for sym in file.symbols().filter(|s| s.is_undefined()) {
        let name = sym.name().unwrap();
        assert!(
            name.is_empty()
                || kiln_codegen::kernels::PAR_SYMBOLS.contains(&name)
                || ["memcpy", "memset", "memmove"].contains(&name),
            "{what}: kernels reference {name}"
        );
    }
}

#[test]
fn unused_kernels_are_dropped() {
    use object::{Object, ObjectSymbol};
    let target = Target::parse("x86-64-v3").unwrap();
    let one = Kernel::Softmax.symbol(Variant::W8R16);
    let obj = compile_kernels(&target, OptLevel::O3, &[&one]).unwrap();
    let file = object::File::parse(&*obj).unwrap();
    let defined: Vec<String> = file
        .symbols()
        .filter(|s| s.is_definition() && s.name().is_ok_and(|n| n.starts_with("kiln_k_")))
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    assert_eq!(defined, vec![one.clone()]);
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(one.as_str()))
        .unwrap();
    match sym.flags() {
        object::SymbolFlags::Elf { st_other, .. } => {
            assert_eq!(st_other & 3, object::elf::STV_HIDDEN, "{one} is not hidden")
        }
        other => panic!("not an ELF symbol: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise math and the epilogue (through the eltwise kernel)

fn all_unary() -> Vec<Unary> {
    vec![
        Unary::Relu,
        Unary::Clip { lo: -0.5, hi: 1.25 },
        Unary::LeakyRelu { alpha: 0.1 },
        Unary::Sigmoid,
        Unary::Tanh,
        Unary::GeluErf,
        Unary::GeluTanh,
        Unary::Silu,
        Unary::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Unary::HardSwish,
        Unary::Elu { alpha: 1.5 },
        Unary::Exp,
        Unary::Erf,
        Unary::Neg,
        Unary::Abs,
        Unary::Sqrt,
        Unary::Log,
    ]
}

const BINARY: [Binary; 8] = [
    Binary::Add,
    Binary::Sub,
    Binary::Rsub,
    Binary::Mul,
    Binary::Div,
    Binary::Rdiv,
    Binary::Max,
    Binary::Min,
];

const KINDS: [OpKind; 5] = [
    OpKind::Imm,
    OpKind::Scalar,
    OpKind::Row,
    OpKind::Col,
    OpKind::Mat,
];

/// Runs eltwise over `x` (`rows x cols`, leading dimension `ldx`) into a fresh `y` (ldy =
/// cols + 2), returning y.
fn run_eltwise(
    lib: &Lib,
    t: Threads,
    x: &[f32],
    ldx: usize,
    rows: usize,
    cols: usize,
    ops: &[OpData],
) -> Vec<f32> {
    let ldy = cols + 2;
    let mut y = vec![f32::NAN; rows * ldy];
    let args = EltwiseArgs {
        x: Matrix {
            ptr: addr(x),
            ld: ldx as i64,
        },
        y: Matrix {
            ptr: addr_mut(&mut y),
            ld: ldy as i64,
        },
        rows: rows as i64,
        cols: cols as i64,
        epilogue: epilogue(ops),
    };
    lib.run(Kernel::Eltwise, &args.slots(), t);
    y
}

/// Maximum error, in units of the f32 spacing at the reference value, of `u` over `xs` (serial),
/// with differences below `abs` not counted.
fn max_ulp(lib: &Lib, u: Unary, xs: &[f32], abs: f64) -> (f64, f32) {
    let cols = 256;
    let rows = xs.len().div_ceil(cols);
    let mut x = xs.to_vec();
    x.resize(rows * cols, 0.0);
    let y = run_eltwise(
        lib,
        Threads::Serial,
        &x,
        cols,
        rows,
        cols,
        &[OpData::Unary(u)],
    );
    let mut worst = (0.0f64, 0.0f32);
    for (i, &xi) in xs.iter().enumerate() {
        let r = unary_ref(u, f64::from(xi));
        let g = f64::from(y[(i / cols) * (cols + 2) + i % cols]);
        if r.is_nan() || g.is_nan() {
            assert!(
                r.is_nan() && g.is_nan(),
                "{} {u:?}({xi}): got {g}, want {r}",
                lib.label
            );
            continue;
        }
        let rr = f64::from(r as f32);
        if rr.is_infinite() || g.is_infinite() {
            assert_eq!(g, rr, "{} {u:?}({xi}): infinities differ", lib.label);
            continue;
        }
        let err = (g - r).abs();
        if err <= abs {
            continue;
        }
        let ulps = err / f32_ulp(r);
        if ulps > worst.0 {
            worst = (ulps, xi);
        }
    }
    worst
}

fn linspace(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * (i as f32) / ((n - 1) as f32))
        .collect()
}

const SPECIALS: [f32; 12] = [
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-6,
    -1e-6,
    1e30,
    -1e30,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MIN_POSITIVE,
];

#[test]
fn vmath_accuracy() {
    // (op, inputs, bound in ulps, absolute floor) — vmath.h documents these.
    let mut cases: Vec<(Unary, Vec<f32>, f64, f64)> = vec![
        (Unary::Exp, linspace(-104.0, 89.0, 200_001), 1.5, 0.0),
        (Unary::Exp, linspace(-1.0, 1.0, 100_001), 1.5, 0.0),
        (Unary::Log, linspace(1e-6, 100.0, 200_001), 1.5, 0.0),
        (Unary::Log, linspace(0.5, 2.0, 100_001), 1.5, 0.0),
        (
            Unary::Log,
            (0..300).map(|i| 2f32.powi(i - 149)).collect(),
            1.5,
            0.0,
        ),
        (Unary::Tanh, linspace(-12.0, 12.0, 200_001), 2.0, 0.0),
        (Unary::Tanh, linspace(-1e-3, 1e-3, 20_001), 2.0, 0.0),
        (Unary::Sigmoid, linspace(-90.0, 30.0, 200_001), 3.0, 0.0),
        (Unary::Erf, linspace(-1.0, 1.0, 200_001), 3.0, 0.0),
        (Unary::Erf, linspace(-1e-3, 1e-3, 20_001), 3.0, 0.0),
        (Unary::Erf, linspace(-6.0, 6.0, 200_001), 3.0, 1.2e-7),
        (
            Unary::Elu { alpha: 1.0 },
            linspace(-20.0, 2.0, 200_001),
            2.0,
            0.0,
        ),
        (Unary::GeluErf, linspace(-12.0, 12.0, 200_001), 2.5, 1e-7),
        (Unary::GeluTanh, linspace(-12.0, 12.0, 200_001), 2.5, 1e-7),
        (Unary::Silu, linspace(-90.0, 30.0, 200_001), 3.5, 1e-30),
    ];
    for c in &mut cases {
        c.1.extend(SPECIALS);
    }
    for lib in libs() {
        for (u, xs, bound, abs) in &cases {
            let (ulps, at) = max_ulp(lib, *u, xs, *abs);
            eprintln!(
                "{}: {u:?} max error {ulps:.2} ulp at {at} (over {} inputs)",
                lib.label,
                xs.len()
            );
            assert!(
                ulps <= *bound,
                "{}: {u:?} error {ulps:.2} ulp at {at} exceeds {bound}",
                lib.label
            );
        }
    }
}

/// Tolerance of a unary op's result: a few ulps (more for the composed activations), plus an
/// absolute floor where the result passes through 0 with cancellation.
fn unary_tol(u: Unary, want: f64) -> f64 {
    let (ulps, abs) = match u {
        Unary::GeluErf | Unary::GeluTanh | Unary::Silu => (6.0, 1e-7),
        Unary::Erf => (4.0, 1.2e-7),
        Unary::Elu { .. } | Unary::Sigmoid | Unary::Tanh | Unary::Exp | Unary::Log => (4.0, 0.0),
        // a * x + b rounds twice without FMA, and may cancel.
        Unary::HardSigmoid { .. } | Unary::HardSwish => (2.0, 1.2e-7),
        _ => (1.0, 0.0),
    };
    ulps * f32_ulp(want) + abs
}

#[test]
fn every_epilogue_op() {
    let (rows, cols, ldx) = (37, 53, 61);
    let mut rng = Rng::new(1);
    let mut x = rng.normals(rows * ldx, 2.0);
    // NaN and infinities at a few positions: every op must propagate NaN.
    let nan_at = [0, 5 * ldx + 17, 36 * ldx + 52];
    for &i in &nan_at {
        x[i] = f32::NAN;
    }
    x[3 * ldx + 4] = f32::INFINITY;
    x[9 * ldx + 50] = f32::NEG_INFINITY;
    let xs = |r: usize, c: usize| f64::from(x[r * ldx + c]);
    for_each(|lib, t| {
        let what = |op: &str| format!("{} {t:?} {op}", lib.label);
        for u in all_unary() {
            let ops = [OpData::Unary(u)];
            let y = run_eltwise(lib, t, &x, ldx, rows, cols, &ops);
            let (got, want, tol) = collect(rows, cols, cols + 2, &y, |r, c| {
                let w = epi_ref(&ops, xs(r, c), r, c);
                (w, unary_tol(u, w))
            });
            check_close(&what(&format!("{u:?}")), &got, &want, &tol);
            for &i in &nan_at {
                let (r, c) = (i / ldx, i % ldx);
                assert!(y[r * (cols + 2) + c].is_nan(), "{u:?} lost a NaN");
            }
        }
        for op in BINARY {
            for kind in KINDS {
                let ops = [binary(&mut rng, op, kind, rows, cols)];
                let y = run_eltwise(lib, t, &x, ldx, rows, cols, &ops);
                let (got, want, tol) = collect(rows, cols, cols + 2, &y, |r, c| {
                    let w = epi_ref(&ops, xs(r, c), r, c);
                    (w, f32_ulp(w))
                });
                check_close(&what(&format!("{op:?} {kind:?}")), &got, &want, &tol);
            }
        }
    });
}

/// Gathers a `rows x cols` result (leading dimension `ld`) and, per element, the reference and
/// tolerance given by `want(r, c)`.
fn collect(
    rows: usize,
    cols: usize,
    ld: usize,
    got: &[f32],
    mut want: impl FnMut(usize, usize) -> (f64, f64),
) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let mut g = Vec::with_capacity(rows * cols);
    let mut w = Vec::with_capacity(rows * cols);
    let mut t = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            g.push(got[r * ld + c]);
            let (a, b) = want(r, c);
            w.push(a);
            t.push(b);
        }
    }
    (g, w, t)
}

#[test]
fn eltwise_chains_and_shapes() {
    let mut rng = Rng::new(2);
    for_each(|lib, t| {
        for (rows, cols) in [
            (1, 1),
            (1, 3),
            (3, 1),
            (2, 17),
            (5, 1000),
            (4, 1025),
            (300, 7),
        ] {
            let ldx = cols + 1;
            let x = rng.normals(rows * ldx, 1.0);
            let ops = vec![
                binary(&mut rng, Binary::Mul, OpKind::Row, rows, cols),
                binary(&mut rng, Binary::Add, OpKind::Col, rows, cols),
                OpData::Unary(Unary::GeluErf),
                binary(&mut rng, Binary::Sub, OpKind::Mat, rows, cols),
                OpData::Unary(Unary::Tanh),
                binary(&mut rng, Binary::Max, OpKind::Imm, rows, cols),
                binary(&mut rng, Binary::Rsub, OpKind::Scalar, rows, cols),
                OpData::Unary(Unary::Abs),
            ];
            let y = run_eltwise(lib, t, &x, ldx, rows, cols, &ops);
            let (got, want, tol) = collect(rows, cols, cols + 2, &y, |r, c| {
                let w = epi_ref(&ops, f64::from(x[r * ldx + c]), r, c);
                // Eight ops, each rounding once in f32 and feeding the next.
                (w, 1e-5 * w.abs() + 1e-6)
            });
            check_close(
                &format!("{} {t:?} chain {rows}x{cols}", lib.label),
                &got,
                &want,
                &tol,
            );
            // In place (Y = X), no epilogue: a copy.
            let mut z = x.clone();
            let zp = addr_mut(&mut z);
            let args = EltwiseArgs {
                x: Matrix {
                    ptr: zp,
                    ld: ldx as i64,
                },
                y: Matrix {
                    ptr: zp,
                    ld: ldx as i64,
                },
                rows: rows as i64,
                cols: cols as i64,
                epilogue: epilogue(&[OpData::Unary(Unary::Neg)]),
            };
            lib.run(Kernel::Eltwise, &args.slots(), t);
            for r in 0..rows {
                for c in 0..ldx {
                    let want = if c < cols {
                        -x[r * ldx + c]
                    } else {
                        x[r * ldx + c]
                    };
                    assert_eq!(z[r * ldx + c].to_bits(), want.to_bits(), "in place {r},{c}");
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// GEMM

const U32: f64 = 5.960_464_477_539_063e-8; // 2^-24

/// Tolerance of a dot product of `k` terms whose absolute values sum to `abs`.
fn dot_tol(k: usize, abs: f64, want: f64) -> f64 {
    8.0 * U32 * ((k as f64).sqrt() + 2.0) * abs + 2.0 * f32_ulp(want) + 1e-30
}

#[derive(Clone, Copy, Debug)]
struct GemmCase {
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    a_trans: bool,
    b_format: BFormat,
    b_shared: bool,
    kc: i64,
    nc: i64,
    epi: Epi,
}

/// The epilogue a case applies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Epi {
    None,
    /// bias + residual + activation: the form kernels apply in registers.
    Simple,
    /// Anything else: GEMM, bias + residual + GELU (one pass, `epi_row_store`); convolution,
    /// ops in another order (the generic `epi_apply`).
    General,
}

const EPIS: [Epi; 3] = [Epi::None, Epi::Simple, Epi::General];

/// Sizes: 1, primes, tile +- 1, and blocks crossing the cache-block sizes.
fn gemm_cases(mr: usize, nr: usize) -> Vec<GemmCase> {
    let sizes: Vec<(usize, usize, usize, i64, i64)> = vec![
        (1, 1, 1, 0, 0),
        (1, nr, 7, 0, 0),
        (mr, nr, 16, 0, 0),
        (mr + 1, nr + 1, 13, 0, 0),
        (mr - 1, nr - 1, 3, 0, 0),
        (2 * mr + 1, 3 * nr + 5, 31, 0, 0),
        (17, 37, 97, 0, 0),
        (1, 130, 257, 0, 0),
        (4, 9, 0, 0, 0),
        (3, 5, 2, 0, 0),
        (64, 200, 300, 0, 0),
        (131, 70, 600, 0, 0),
        (29, 3 * nr + 1, 50, 7, nr as i64),
        (16, 600, 1030, 0, 0),
        (2, 333, 129, 0, 0),
        (5, 64, 1, 0, 0),
    ];
    let formats = [BFormat::Packed, BFormat::RowMajor, BFormat::Transposed];
    sizes
        .into_iter()
        .enumerate()
        .map(|(i, (m, n, k, kc, nc))| GemmCase {
            m,
            n,
            k,
            batch: if i % 5 == 0 { 3 } else { 1 },
            a_trans: i % 4 == 1,
            b_format: formats[i % 3],
            b_shared: i % 10 == 0,
            kc,
            nc,
            epi: EPIS[i % 3],
        })
        .collect()
}

fn check_gemm(lib: &Lib, t: Threads, c: GemmCase, rng: &mut Rng) {
    let GemmCase { m, n, k, batch, .. } = c;
    let what = format!("{} {t:?} gemm {c:?}", lib.label);
    let nr = lib.variant.nr();
    // A: [M, K] (lda = K + 1) or transposed [K, M] (lda = M + 2).
    let (arows, lda) = if c.a_trans { (k, m + 2) } else { (m, k + 1) };
    let a_bs = arows * lda;
    let a = rng.normals(a_bs * batch, 1.0);
    let aval = |b: usize, i: usize, kk: usize| {
        f64::from(if c.a_trans {
            a[b * a_bs + kk * lda + i]
        } else {
            a[b * a_bs + i * lda + kk]
        })
    };
    // B logical [K, N] per batch.
    let nb = if c.b_shared { 1 } else { batch };
    let blog: Vec<Vec<f32>> = (0..nb).map(|_| rng.normals(k * n, 1.0)).collect();
    let bval =
        |b: usize, kk: usize, j: usize| f64::from(blog[if c.b_shared { 0 } else { b }][kk * n + j]);
    let (bstore, ldb, b_bs) = match c.b_format {
        BFormat::Packed => {
            let per = n.div_ceil(nr) * nr * k;
            let v: Vec<f32> = blog.iter().flat_map(|b| pack_gemm_b(b, k, n, nr)).collect();
            (v, 0, per)
        }
        BFormat::RowMajor => {
            let ldb = n + 3;
            let mut v = vec![0.0; ldb * k * nb];
            for (bi, b) in blog.iter().enumerate() {
                for kk in 0..k {
                    v[bi * ldb * k + kk * ldb..][..n].copy_from_slice(&b[kk * n..][..n]);
                }
            }
            (v, ldb, ldb * k)
        }
        BFormat::Transposed => {
            let ldb = k + 1;
            let mut v = vec![0.0; ldb * n * nb];
            for (bi, b) in blog.iter().enumerate() {
                for kk in 0..k {
                    for j in 0..n {
                        v[bi * ldb * n + j * ldb + kk] = b[kk * n + j];
                    }
                }
            }
            (v, ldb, ldb * n)
        }
    };
    let ldc = n + 5;
    let c_bs = m * ldc;
    let mut cbuf = vec![f32::NAN; c_bs * batch];
    // Epilogue: per-batch bias (row), residual (matrix), relu.
    let bias = rng.normals(n * batch, 1.0);
    let ldr = n + 2;
    let res = rng.normals(m * ldr * batch, 1.0);
    let bias_op = EpiOp::Binary {
        op: Binary::Add,
        operand: Operand::Row(addr(&bias)),
        batch_stride: n as i64,
    };
    let res_op = EpiOp::Binary {
        op: Binary::Add,
        operand: Operand::Mat {
            ptr: addr(&res),
            ld: ldr as i64,
        },
        batch_stride: (m * ldr) as i64,
    };
    let epi = match c.epi {
        Epi::None => Epilogue::none(),
        Epi::Simple => Epilogue::new(vec![bias_op, res_op, EpiOp::Unary(Unary::Relu)]).unwrap(),
        // A non-simple activation: every tile through tile_finish's one-pass epi_row_store
        // (the convolution cases' General, ops in another order, keep epi_apply covered).
        Epi::General => Epilogue::new(vec![bias_op, res_op, EpiOp::Unary(Unary::GeluErf)]).unwrap(),
    };
    let mut args = GemmArgs {
        a: addr(&a),
        lda: lda as i64,
        a_trans: c.a_trans,
        a_batch_stride: a_bs as i64,
        b: addr(&bstore),
        ldb: ldb as i64,
        b_format: c.b_format,
        b_batch_stride: if c.b_shared { 0 } else { b_bs as i64 },
        c: addr_mut(&mut cbuf),
        ldc: ldc as i64,
        c_batch_stride: c_bs as i64,
        m: m as i64,
        n: n as i64,
        k: k as i64,
        batch: batch as i64,
        kc: c.kc,
        nc: c.nc,
        scratch: None,
        epilogue: epi,
    };
    let scratch = Scratch::new(args.scratch_bytes(lib.variant));
    if c.b_format != BFormat::Packed {
        args.scratch = Some(scratch.addr());
    }
    lib.run(Kernel::Gemm, &args.slots(), t);
    scratch.check(&what);
    let mut got = Vec::new();
    let mut want = Vec::new();
    let mut tol = Vec::new();
    for b in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut abs) = (0.0, 0.0);
                for kk in 0..k {
                    let p = aval(b, i, kk) * bval(b, kk, j);
                    s += p;
                    abs += p.abs();
                }
                let mut tl = dot_tol(k, abs, s);
                if c.epi != Epi::None {
                    s += f64::from(bias[b * n + j]) + f64::from(res[b * m * ldr + i * ldr + j]);
                    s = if c.epi == Epi::Simple {
                        s.max(0.0)
                    } else {
                        unary_ref(Unary::GeluErf, s)
                    };
                    tl = 1.2 * tl + 4.0 * f32_ulp(s) + 1e-7;
                }
                got.push(cbuf[b * c_bs + i * ldc + j]);
                want.push(s);
                tol.push(tl);
            }
            // Columns past N are never written.
            for j in n..ldc {
                assert!(
                    cbuf[b * c_bs + i * ldc + j].is_nan(),
                    "{what}: wrote column {j}"
                );
            }
        }
    }
    check_close(&what, &got, &want, &tol);
}

#[test]
fn gemm_all_shapes_and_formats() {
    let mut rng = Rng::new(3);
    for lib in libs() {
        for case in gemm_cases(lib.variant.mr(), lib.variant.nr()) {
            for t in THREADS {
                check_gemm(lib, t, case, &mut rng);
            }
        }
    }
}

#[test]
fn gemm_propagates_nan_and_inf() {
    for_each(|lib, t| {
        let (m, n, k) = (7, 19, 11);
        let nr = lib.variant.nr();
        let mut a = vec![1.0f32; m * k];
        a[2 * k + 3] = f32::NAN; // row 2 all NaN
        a[5 * k] = f32::INFINITY; // row 5 +inf (B is positive)
        let b = vec![0.5f32; k * n];
        let packed = pack_gemm_b(&b, k, n, nr);
        let mut c = vec![0.0f32; m * n];
        let args = GemmArgs {
            a: addr(&a),
            lda: k as i64,
            a_trans: false,
            a_batch_stride: 0,
            b: addr(&packed),
            ldb: 0,
            b_format: BFormat::Packed,
            b_batch_stride: 0,
            c: addr_mut(&mut c),
            ldc: n as i64,
            c_batch_stride: 0,
            m: m as i64,
            n: n as i64,
            k: k as i64,
            batch: 1,
            kc: 4,
            nc: 0,
            scratch: None,
            epilogue: Epilogue::new(vec![EpiOp::Unary(Unary::Relu)]).unwrap(),
        };
        lib.run(Kernel::Gemm, &args.slots(), t);
        for i in 0..m {
            for j in 0..n {
                let v = c[i * n + j];
                match i {
                    2 => assert!(v.is_nan(), "{}: NaN lost at {i},{j}", lib.label),
                    5 => assert_eq!(v, f32::INFINITY),
                    _ => assert_eq!(v, 0.5 * k as f32),
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Convolutions

#[derive(Clone, Copy, Debug)]
struct ConvCase {
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    dil: (usize, usize),
    /// top, left, bottom, right
    pads: [usize; 4],
    groups: usize,
    kc: i64,
    epi: Epi,
    /// Input pixels stored densely (stride = cin, offset 0): window rows of small-channel
    /// convolutions are then one run of K; otherwise inside a wider buffer.
    dense: bool,
    /// Winograd tiles per chunk (0: the direct kernel).
    wino: i64,
}

impl ConvCase {
    fn out(&self) -> (usize, usize) {
        let o = |i: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
            (i + p0 + p1 - d * (k - 1) - 1) / s + 1
        };
        (
            o(
                self.h,
                self.kh,
                self.stride.0,
                self.dil.0,
                self.pads[0],
                self.pads[2],
            ),
            o(
                self.w,
                self.kw,
                self.stride.1,
                self.dil.1,
                self.pads[1],
                self.pads[3],
            ),
        )
    }
}

fn conv_cases(nr: usize) -> Vec<ConvCase> {
    let c = |n, h, w, cin, cout, k: (usize, usize), s, d, pads, groups| ConvCase {
        n,
        h,
        w,
        cin,
        cout,
        kh: k.0,
        kw: k.1,
        stride: s,
        dil: d,
        pads,
        groups,
        kc: 0,
        epi: Epi::None,
        dense: false,
        wino: 0,
    };
    let d = |case: ConvCase| ConvCase {
        dense: true,
        ..case
    };
    let mut v = vec![
        // 1x1, stride 1: the GEMM case.
        c(2, 5, 7, 13, nr + 3, (1, 1), (1, 1), (1, 1), [0; 4], 1),
        // 3x3, pad 1.
        c(1, 9, 10, 8, 2 * nr + 1, (3, 3), (1, 1), (1, 1), [1; 4], 1),
        // 3x3, stride 2, asymmetric pads.
        c(1, 11, 8, 5, 7, (3, 3), (2, 2), (1, 1), [1, 1, 0, 0], 1),
        // The ResNet stem shape: 7x7 stride 2 pad 3, 3 channels.
        c(1, 20, 18, 3, 16, (7, 7), (2, 2), (1, 1), [3; 4], 1),
        // Dilation 2.
        c(2, 12, 12, 6, 9, (3, 3), (1, 1), (2, 2), [2; 4], 1),
        // Grouped (2 groups, and 4 groups of 2 output channels).
        c(1, 6, 7, 8, 12, (3, 3), (1, 1), (1, 1), [1; 4], 2),
        c(1, 5, 5, 16, 8, (1, 1), (1, 1), (1, 1), [0; 4], 4),
        // More channels than one K block.
        c(1, 14, 14, 64, 64, (3, 3), (1, 1), (1, 1), [1; 4], 1),
        // A kernel larger than the input.
        c(1, 2, 3, 4, 5, (5, 5), (1, 1), (1, 1), [2; 4], 1),
        // Non-square kernel, stride 1 x 3.
        c(1, 9, 13, 7, 11, (1, 5), (1, 3), (1, 1), [0, 2, 0, 1], 1),
        // Few row tiles (a 7x7 image): panel-major, one K block of KV_KC_FEW where KV_KC
        // made several.
        c(1, 7, 7, 150, 2 * nr + 3, (3, 3), (1, 1), (1, 1), [1; 4], 1),
        // Many row tiles (over the variant's KV_FEW_TILES): a 3x3 window whose K runs past
        // KV_KC (panel-major where KV_KC_FEW is longer), and a 1x1 with K past KV_KC
        // (column blocks, two K blocks).
        c(1, 17, 19, 40, nr, (3, 3), (1, 1), (1, 1), [1; 4], 1),
        c(1, 23, 23, 300, nr + 3, (1, 1), (1, 1), (1, 1), [0; 4], 1),
        // More input channels than the zero row holds, with padding (few row tiles and
        // more than one K block of KV_KC_FEW).
        c(1, 3, 3, 1030, 4, (3, 3), (1, 1), (1, 1), [1; 4], 1),
        // 1x1 stride 2 (a ResNet downsample).
        c(1, 9, 9, 16, 2 * nr, (1, 1), (2, 2), (1, 1), [0; 4], 1),
        // 1x1 with padding (output pixels on the border read zeros), three images.
        c(3, 4, 5, 6, 7, (1, 1), (1, 1), (1, 1), [1, 0, 0, 1], 1),
        // Dense input: a window row of kw taps is one run of K where no row of the tile
        // reaches into the left or right padding (the stem; odd widths so tiles span image
        // rows, edges and interior).
        d(c(1, 21, 31, 3, nr + 5, (7, 7), (2, 2), (1, 1), [3; 4], 1)),
        d(c(2, 7, 13, 5, 7, (3, 3), (1, 1), (1, 1), [1, 1, 0, 2], 1)),
        // Vertical dilation only (rows still adjacent), horizontal stride 3.
        d(c(
            1,
            11,
            17,
            4,
            nr - 1,
            (3, 2),
            (1, 3),
            (2, 1),
            [2, 0, 1, 1],
            1,
        )),
        // Horizontal dilation (taps not adjacent), and a kernel wider than the input.
        d(c(1, 8, 12, 6, 9, (1, 3), (1, 1), (1, 2), [0, 2, 0, 2], 1)),
        d(c(1, 3, 2, 4, 5, (3, 5), (1, 1), (1, 1), [1, 2, 1, 2], 1)),
    ];
    // A window row longer than the zero row (3 taps x 400 channels in one K block, padding
    // above): taps stay separate.
    v.push(ConvCase {
        kc: 4096,
        ..d(c(1, 4, 9, 400, 3, (2, 3), (1, 1), (1, 1), [1, 0, 0, 0], 1))
    });
    // Small explicit K blocks: many channel blocks.
    v.push(ConvCase {
        kc: 20,
        ..c(1, 6, 5, 40, nr + 1, (3, 3), (1, 1), (1, 1), [1; 4], 1)
    });
    // 1x1 in channel blocks (partial sums of a GEMM-like tile), two images.
    v.push(ConvCase {
        kc: 8,
        ..c(2, 5, 3, 20, nr + 1, (1, 1), (1, 1), (1, 1), [0; 4], 1)
    });
    v.push(ConvCase {
        kc: 20,
        ..d(c(1, 6, 9, 12, nr + 1, (3, 3), (1, 1), (1, 1), [1; 4], 1))
    });
    // Winograd F(2x2, 3x3): odd and even output sizes (partial tiles at the bottom and
    // right), 'same' and 'valid' and asymmetric padding, channels around the vector width
    // and the panel width, chunks that do not divide the tiles, several images, more input
    // channels than one K block, a chunk of a single tile.
    let w = |wino, case: ConvCase| ConvCase { wino, ..case };
    let k3 = (3, 3);
    v.extend([
        w(
            12,
            c(1, 9, 10, 8, 2 * nr + 1, k3, (1, 1), (1, 1), [1; 4], 1),
        ),
        w(
            7,
            c(2, 7, 13, 17, nr - 1, k3, (1, 1), (1, 1), [1, 1, 0, 2], 1),
        ),
        w(100, d(c(1, 14, 14, 16, nr, k3, (1, 1), (1, 1), [1; 4], 1))),
        w(6, c(3, 5, 6, 5, 3, k3, (1, 1), (1, 1), [0; 4], 1)),
        w(
            30,
            c(1, 11, 8, 1, nr + 1, k3, (1, 1), (1, 1), [2, 0, 1, 2], 1),
        ),
        w(13, c(1, 6, 7, 600, 20, k3, (1, 1), (1, 1), [1; 4], 1)),
        w(1, c(1, 3, 4, 9, 7, k3, (1, 1), (1, 1), [1; 4], 1)),
    ]);
    for (i, case) in v.iter_mut().enumerate() {
        case.epi = EPIS[i % 3];
    }
    v
}

fn check_conv(lib: &Lib, t: Threads, c: ConvCase, rng: &mut Rng) {
    let what = format!("{} {t:?} conv {c:?}", lib.label);
    let nr = lib.variant.nr();
    let (oh, ow) = c.out();
    let (cin_g, cout_g) = (c.cin / c.groups, c.cout / c.groups);
    // Input inside a wider buffer (stride cin + 3, offset 2) unless dense; output into a concatenation
    // buffer (stride cout + 5, offset 3).
    let (xs, xo) = if c.dense { (c.cin, 0) } else { (c.cin + 3, 2) };
    let (ys, yo) = (c.cout + 5, 3);
    let x = rng.normals(c.n * c.h * c.w * xs, 1.0);
    let wt = rng.normals(c.cout * cin_g * c.kh * c.kw, 1.0);
    let packed = pack_conv_nhwc(&wt, c.cout, cin_g, c.kh, c.kw, c.groups, nr);
    let pixels = c.n * oh * ow;
    let mut y = vec![f32::NAN; pixels * ys];
    let bias = rng.normals(c.cout, 1.0);
    let res = rng.normals(pixels * c.cout, 1.0);
    let bias_op = EpiOp::Binary {
        op: Binary::Add,
        operand: Operand::Row(addr(&bias)),
        batch_stride: 0,
    };
    let res_op = EpiOp::Binary {
        op: Binary::Add,
        operand: Operand::Mat {
            ptr: addr(&res),
            ld: c.cout as i64,
        },
        batch_stride: 0,
    };
    let act = EpiOp::Unary(Unary::Clip { lo: 0.0, hi: 6.0 });
    let epi = match c.epi {
        Epi::None => Epilogue::none(),
        Epi::Simple => Epilogue::new(vec![bias_op, res_op, act]).unwrap(),
        Epi::General => Epilogue::new(vec![res_op, bias_op, act.clone(), act]).unwrap(),
    };
    let args = ConvArgs {
        x: Nhwc {
            ptr: addr(&x),
            stride: xs as i64,
            offset: xo as i64,
        },
        n: c.n as i64,
        h: c.h as i64,
        w: c.w as i64,
        cin: c.cin as i64,
        weights: addr(&packed),
        y: Nhwc {
            ptr: addr_mut(&mut y),
            stride: ys as i64,
            offset: yo as i64,
        },
        oh: oh as i64,
        ow: ow as i64,
        cout: c.cout as i64,
        window: Window {
            kh: c.kh as i64,
            kw: c.kw as i64,
            stride_h: c.stride.0 as i64,
            stride_w: c.stride.1 as i64,
            dil_h: c.dil.0 as i64,
            dil_w: c.dil.1 as i64,
            pad_top: c.pads[0] as i64,
            pad_left: c.pads[1] as i64,
            pad_bottom: c.pads[2] as i64,
            pad_right: c.pads[3] as i64,
        },
        groups: c.groups as i64,
        kc: c.kc,
        nc: 0,
        wino_tiles: c.wino,
        scratch: None,
        quant: None,
        epilogue: epi,
    };
    // Winograd's scratch starts as NaN and must have been written (the path ran).
    let mut scratch = vec![f32::NAN; args.scratch_bytes(lib.variant) as usize / 4 + 16];
    let args = ConvArgs {
        scratch: (c.wino > 0).then(|| addr_mut(&mut scratch)),
        ..args
    };
    lib.run(Kernel::Conv2d, &args.slots(), t);
    assert_eq!(
        scratch.iter().any(|v| !v.is_nan()),
        c.wino > 0,
        "{what}: Winograd scratch use"
    );
    let mut got = Vec::new();
    let mut want = Vec::new();
    let mut tol = Vec::new();
    for img in 0..c.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let pix = (img * oh + oy) * ow + ox;
                for o in 0..c.cout {
                    let g = o / cout_g;
                    let (mut s, mut abs) = (0.0f64, 0.0f64);
                    for ky in 0..c.kh {
                        let iy = (oy * c.stride.0 + ky * c.dil.0) as isize - c.pads[0] as isize;
                        if iy < 0 || iy >= c.h as isize {
                            continue;
                        }
                        for kx in 0..c.kw {
                            let ix = (ox * c.stride.1 + kx * c.dil.1) as isize - c.pads[1] as isize;
                            if ix < 0 || ix >= c.w as isize {
                                continue;
                            }
                            let base = ((img * c.h + iy as usize) * c.w + ix as usize) * xs + xo;
                            for ci in 0..cin_g {
                                let xv = f64::from(x[base + g * cin_g + ci]);
                                let wv = f64::from(wt[((o * cin_g + ci) * c.kh + ky) * c.kw + kx]);
                                s += xv * wv;
                                abs += (xv * wv).abs();
                            }
                        }
                    }
                    // Winograd sums transformed values: its rounding error is bounded by a
                    // small multiple of the direct one's (|B^T d B| and |G g G^T| at most 4
                    // and 9/4 times the inputs, |A^T M A| adds 9 terms).
                    let scale = if c.wino > 0 { 32.0 } else { 1.0 };
                    let mut tl = dot_tol(c.kh * c.kw * cin_g, scale * abs, s);
                    if c.epi != Epi::None {
                        s += f64::from(bias[o]) + f64::from(res[pix * c.cout + o]);
                        s = s.clamp(0.0, 6.0);
                        tl += 2.0 * f32_ulp(s);
                    }
                    got.push(y[pix * ys + yo + o]);
                    want.push(s);
                    tol.push(tl);
                }
                // Channels of the concatenation buffer outside [yo, yo + cout) stay untouched.
                for ch in (0..yo).chain(yo + c.cout..ys) {
                    assert!(y[pix * ys + ch].is_nan(), "{what}: wrote channel {ch}");
                }
            }
        }
    }
    check_close(&what, &got, &want, &tol);
}

#[test]
fn conv2d_shapes_strides_pads_groups() {
    let mut rng = Rng::new(4);
    for lib in libs() {
        for case in conv_cases(lib.variant.nr()) {
            for t in THREADS {
                check_conv(lib, t, case, &mut rng);
            }
        }
    }
}

/// Quantized weights (int8 codes, a scale per output channel) decode a panel block per task
/// into the scratch's slots of `Q_BLOCK_FLOATS`: the channel block shrinks to the slot given
/// (49 taps: a slot of 3 channels' block, or 1, against the 10 the K block would take), a
/// serial run writes only within slot 0's floats, and the results match an f64 reference at
/// every thread count.
#[test]
fn conv2d_quantized_blocks_stay_in_their_scratch_slots() {
    let mut rng = Rng::new(12);
    let (n, hw, cin, cout, k, pad) = (1usize, 9usize, 64usize, 70usize, 7usize, 3usize);
    let taps = k * k;
    let kw = taps * cin;
    let x = rng.normals(n * hw * hw * cin, 1.0);
    let codes: Vec<i8> = (0..cout * kw).map(|_| (rng.next() % 255) as i8).collect();
    let scales = rng.normals(cout, 0.01);
    let mut want = Vec::new();
    for oy in 0..hw {
        for ox in 0..hw {
            for o in 0..cout {
                let (mut s, mut abs) = (0.0f64, 0.0f64);
                for ky in 0..k {
                    for kx in 0..k {
                        let (iy, ix) = (
                            (oy + ky) as isize - pad as isize,
                            (ox + kx) as isize - pad as isize,
                        );
                        if iy < 0 || ix < 0 || iy >= hw as isize || ix >= hw as isize {
                            continue;
                        }
                        for c in 0..cin {
                            let xv = x[((iy as usize) * hw + ix as usize) * cin + c] as f64;
                            let wv =
                                codes[o * kw + (ky * k + kx) * cin + c] as f64 * scales[o] as f64;
                            s += xv * wv;
                            abs += (xv * wv).abs();
                        }
                    }
                }
                want.push((s, abs));
            }
        }
    }
    for lib in libs() {
        let nr = lib.variant.nr();
        for block_floats in [taps * 3 * nr, taps * nr] {
            for t in THREADS {
                let what = format!("{} {t:?} quantized conv, slot {block_floats}", lib.label);
                let stride = block_floats.div_ceil(16) * 16;
                let mut scratch = vec![f32::NAN; MAX_SLOTS * stride + 1024];
                let mut y = vec![f32::NAN; hw * hw * cout];
                let args = ConvArgs {
                    x: Nhwc::dense(addr(&x), cin as i64),
                    n: n as i64,
                    h: hw as i64,
                    w: hw as i64,
                    cin: cin as i64,
                    weights: codes.as_ptr() as u64,
                    y: Nhwc::dense(addr_mut(&mut y), cout as i64),
                    oh: hw as i64,
                    ow: hw as i64,
                    cout: cout as i64,
                    window: Window::square(k as i64, 1, pad as i64),
                    groups: 1,
                    kc: 0,
                    nc: 0,
                    wino_tiles: 0,
                    scratch: None,
                    quant: Some(ConvQuant {
                        code: qcode(kiln_ir::DType::I8).unwrap(),
                        kw: kw as i64,
                        scales: addr(&scales),
                        scale_code: qcode(kiln_ir::DType::F32).unwrap(),
                        zp: None,
                        block: kw as i64,
                        nblocks: 1,
                        panels: 0,
                        block_floats: block_floats as i64,
                    }),
                    epilogue: Epilogue::none(),
                };
                assert_eq!(
                    args.scratch_bytes(lib.variant) as usize,
                    MAX_SLOTS * stride * 4,
                    "{what}"
                );
                let args = ConvArgs {
                    scratch: Some(addr_mut(&mut scratch)),
                    ..args
                };
                lib.run(Kernel::Conv2d, &args.slots(), t);
                assert!(
                    scratch[MAX_SLOTS * stride..].iter().all(|v| v.is_nan()),
                    "{what}: past the slots"
                );
                if matches!(t, Threads::Serial) {
                    assert!(
                        scratch[..block_floats].iter().any(|v| !v.is_nan()),
                        "{what}: slot 0 unused"
                    );
                    assert!(
                        scratch[block_floats..].iter().all(|v| v.is_nan()),
                        "{what}: past slot 0's block"
                    );
                }
                let tol: Vec<f64> = want.iter().map(|&(s, abs)| dot_tol(kw, abs, s)).collect();
                let w: Vec<f64> = want.iter().map(|p| p.0).collect();
                check_close(&what, &y, &w, &tol);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct DwCase {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    dil: (usize, usize),
    pads: [usize; 4],
    epi: Epi,
}

fn check_dwconv(lib: &Lib, t: Threads, c: DwCase, rng: &mut Rng) {
    let what = format!("{} {t:?} dwconv {c:?}", lib.label);
    let o = |i: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
        (i + p0 + p1 - d * (k - 1) - 1) / s + 1
    };
    let oh = o(c.h, c.kh, c.stride.0, c.dil.0, c.pads[0], c.pads[2]);
    let ow = o(c.w, c.kw, c.stride.1, c.dil.1, c.pads[1], c.pads[3]);
    let (xs, xo, ys, yo) = (c.c + 1, 1, c.c + 2, 2);
    let x = rng.normals(c.n * c.h * c.w * xs, 1.0);
    let wt = rng.normals(c.c * c.kh * c.kw, 1.0);
    let packed = pack_dwconv(&wt, c.c, c.kh, c.kw);
    let pixels = c.n * oh * ow;
    let mut y = vec![f32::NAN; pixels * ys];
    let bias = rng.normals(c.c, 1.0);
    let bias_op = EpiOp::Binary {
        op: Binary::Add,
        operand: Operand::Row(addr(&bias)),
        batch_stride: 0,
    };
    let act = EpiOp::Unary(Unary::Clip { lo: 0.0, hi: 6.0 });
    let epi = match c.epi {
        Epi::None => Epilogue::none(),
        Epi::Simple => Epilogue::new(vec![bias_op, act]).unwrap(),
        Epi::General => Epilogue::new(vec![act.clone(), bias_op, act]).unwrap(),
    };
    let args = DwConvArgs {
        x: Nhwc {
            ptr: addr(&x),
            stride: xs as i64,
            offset: xo as i64,
        },
        n: c.n as i64,
        h: c.h as i64,
        w: c.w as i64,
        c: c.c as i64,
        weights: addr(&packed),
        y: Nhwc {
            ptr: addr_mut(&mut y),
            stride: ys as i64,
            offset: yo as i64,
        },
        oh: oh as i64,
        ow: ow as i64,
        window: Window {
            kh: c.kh as i64,
            kw: c.kw as i64,
            stride_h: c.stride.0 as i64,
            stride_w: c.stride.1 as i64,
            dil_h: c.dil.0 as i64,
            dil_w: c.dil.1 as i64,
            pad_top: c.pads[0] as i64,
            pad_left: c.pads[1] as i64,
            pad_bottom: c.pads[2] as i64,
            pad_right: c.pads[3] as i64,
        },
        epilogue: epi,
    };
    lib.run(Kernel::DwConv2d, &args.slots(), t);
    let mut got = Vec::new();
    let mut want = Vec::new();
    let mut tol = Vec::new();
    for img in 0..c.n {
        for oy in 0..oh {
            for ox in 0..ow {
                let pix = (img * oh + oy) * ow + ox;
                for ch in 0..c.c {
                    let (mut s, mut abs) = (0.0f64, 0.0f64);
                    for ky in 0..c.kh {
                        let iy = (oy * c.stride.0 + ky * c.dil.0) as isize - c.pads[0] as isize;
                        for kx in 0..c.kw {
                            let ix = (ox * c.stride.1 + kx * c.dil.1) as isize - c.pads[1] as isize;
                            if iy < 0 || iy >= c.h as isize || ix < 0 || ix >= c.w as isize {
                                continue;
                            }
                            let xv = f64::from(
                                x[((img * c.h + iy as usize) * c.w + ix as usize) * xs + xo + ch],
                            );
                            let wv = f64::from(wt[(ch * c.kh + ky) * c.kw + kx]);
                            s += xv * wv;
                            abs += (xv * wv).abs();
                        }
                    }
                    let mut tl = dot_tol(c.kh * c.kw, abs, s);
                    match c.epi {
                        Epi::None => {}
                        Epi::Simple => s = (s + f64::from(bias[ch])).clamp(0.0, 6.0),
                        Epi::General => {
                            s = (s.clamp(0.0, 6.0) + f64::from(bias[ch])).clamp(0.0, 6.0)
                        }
                    }
                    tl += 2.0 * f32_ulp(s);
                    got.push(y[pix * ys + yo + ch]);
                    want.push(s);
                    tol.push(tl);
                }
                for ch in (0..yo).chain(yo + c.c..ys) {
                    assert!(y[pix * ys + ch].is_nan(), "{what}: wrote channel {ch}");
                }
            }
        }
    }
    check_close(&what, &got, &want, &tol);
}

#[test]
fn dwconv2d_shapes_strides_pads() {
    let mut rng = Rng::new(5);
    let d = |n, h, w, c, k: (usize, usize), s, dil, pads, epi| DwCase {
        n,
        h,
        w,
        c,
        kh: k.0,
        kw: k.1,
        stride: s,
        dil,
        pads,
        epi,
    };
    let cases = [
        d(2, 9, 11, 16, (3, 3), (1, 1), (1, 1), [1; 4], Epi::Simple),
        d(
            1,
            10,
            9,
            37,
            (3, 3),
            (2, 2),
            (1, 1),
            [0, 0, 1, 1],
            Epi::None,
        ),
        d(1, 7, 7, 1, (3, 3), (1, 1), (1, 1), [1; 4], Epi::General),
        d(1, 12, 12, 5, (5, 5), (1, 1), (2, 2), [4; 4], Epi::Simple),
        d(1, 6, 17, 67, (1, 1), (1, 1), (1, 1), [0; 4], Epi::General),
        d(1, 8, 8, 24, (7, 3), (1, 2), (1, 1), [3, 1, 3, 1], Epi::None),
        d(1, 2, 2, 40, (3, 3), (1, 1), (1, 1), [1; 4], Epi::Simple),
        d(1, 14, 14, 96, (3, 3), (1, 1), (1, 1), [1; 4], Epi::General),
        d(2, 15, 16, 64, (3, 3), (2, 2), (1, 1), [1; 4], Epi::Simple),
        // Channels past the last whole vector: ShuffleNet's 58, and a prime.
        d(1, 9, 7, 58, (3, 3), (1, 1), (1, 1), [1; 4], Epi::General),
        // Unequal strides (the sliding fast path follows the horizontal one), rows of
        // 1, 2 and 3 groups of 4 interior pixels plus a partial one.
        d(1, 5, 21, 19, (3, 3), (1, 2), (1, 1), [1; 4], Epi::Simple),
        d(
            1,
            7,
            13,
            8,
            (3, 3),
            (2, 1),
            (1, 1),
            [1, 0, 1, 0],
            Epi::General,
        ),
        d(1, 4, 6, 9, (3, 3), (1, 1), (1, 1), [0; 4], Epi::None),
        d(2, 9, 8, 23, (3, 3), (2, 2), (1, 1), [1; 4], Epi::Simple),
        // Rows of 1 pixel, and of one step of 8 (AVX2) or 4 pixels plus one; padding 2, so
        // that a checked step starts with two columns outside the input.
        d(1, 3, 1, 8, (3, 3), (1, 1), (1, 1), [1; 4], Epi::Simple),
        d(1, 5, 9, 16, (3, 3), (1, 1), (1, 1), [1; 4], Epi::None),
        d(1, 6, 15, 11, (3, 3), (1, 1), (1, 1), [2; 4], Epi::Simple),
        d(1, 5, 23, 13, (3, 3), (2, 2), (1, 1), [1; 4], Epi::General),
        d(1, 4, 33, 8, (3, 3), (1, 2), (1, 1), [2; 4], Epi::None),
        // Padding 3: the first and last output rows and columns see no input at all.
        d(1, 4, 5, 8, (3, 3), (1, 1), (1, 1), [3; 4], Epi::Simple),
        d(
            1,
            13,
            11,
            35,
            (3, 3),
            (1, 1),
            (2, 2),
            [2, 1, 2, 3],
            Epi::None,
        ),
    ];
    for lib in libs() {
        for case in cases {
            for t in THREADS {
                check_dwconv(lib, t, case, &mut rng);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Softmax and norms

#[test]
fn softmax_and_log_softmax() {
    let mut rng = Rng::new(6);
    let shapes = [
        (1, 1),
        (3, 5),
        (2, 17),
        (7, 100),
        (2, 1000),
        (1, 4097),
        (33, 3),
    ];
    for_each(|lib, t| {
        for (rows, cols) in shapes {
            for log in [false, true] {
                let ldx = cols + 3;
                let mut x = rng.normals(rows * ldx, 10.0);
                // Large magnitudes (no overflow allowed), -inf entries, a NaN row, an all -inf
                // row (NaN, as softmax over -inf is).
                x[0] = 85.0;
                if cols > 2 {
                    x[1] = f32::NEG_INFINITY;
                }
                if rows > 2 {
                    x[ldx + cols / 2] = f32::NAN;
                    for c in 0..cols {
                        x[2 * ldx + c] = f32::NEG_INFINITY;
                    }
                }
                let scale = rng.normals(cols, 1.0);
                let ops = [OpData::Binary {
                    op: Binary::Mul,
                    kind: OpKind::Row,
                    data: scale.clone(),
                    ld: 0,
                }];
                let use_epi = rows % 2 == 1;
                let ldy = cols + 1;
                let mut y = vec![0.0f32; rows * ldy];
                let args = SoftmaxArgs {
                    x: Matrix {
                        ptr: addr(&x),
                        ld: ldx as i64,
                    },
                    y: Matrix {
                        ptr: addr_mut(&mut y),
                        ld: ldy as i64,
                    },
                    rows: rows as i64,
                    cols: cols as i64,
                    log,
                    epilogue: if use_epi {
                        epilogue(&ops)
                    } else {
                        Epilogue::none()
                    },
                };
                lib.run(Kernel::Softmax, &args.slots(), t);
                // Each row's maximum and sum of exponentials, once per row.
                let stats: Vec<(f64, f64)> = (0..rows)
                    .map(|r| {
                        let row = (0..cols).map(|j| f64::from(x[r * ldx + j]));
                        let m = row.clone().fold(f64::NEG_INFINITY, |a, b| {
                            if a.is_nan() || b.is_nan() {
                                f64::NAN
                            } else {
                                a.max(b)
                            }
                        });
                        (m, row.map(|v| (v - m).exp()).sum())
                    })
                    .collect();
                let (got, want, tol) = collect(rows, cols, ldy, &y, |r, c| {
                    let (m, sum) = stats[r];
                    let xc = f64::from(x[r * ldx + c]);
                    let v = if log {
                        xc - m - sum.ln()
                    } else {
                        (xc - m).exp() / sum
                    };
                    let v = if use_epi { epi_ref(&ops, v, r, c) } else { v };
                    // Softmax: the rounding of x - max (amplified by exp), exp's few ulps
                    // and the f32 sum of `cols` terms; log-softmax: the absolute error of
                    // x - (max + log(sum)).
                    let tl = if log {
                        4.0 * f32_ulp(v) + 4.0 * f32_ulp(m) + 8.0 * U32
                    } else {
                        v.abs() * f32_ulp(xc - m) + (8.0 + (cols as f64).sqrt()) * f32_ulp(v) * 2.0
                    };
                    (
                        v,
                        tl * if use_epi {
                            1.0 + f64::from(scale[c].abs())
                        } else {
                            1.0
                        },
                    )
                });
                check_close(
                    &format!("{} {t:?} softmax log={log} {rows}x{cols}", lib.label),
                    &got,
                    &want,
                    &tol,
                );
            }
        }
    });
}

#[test]
fn layer_norm_and_rms_norm() {
    let mut rng = Rng::new(7);
    for_each(|lib, t| {
        for (rows, cols) in [(1, 1), (3, 7), (5, 768), (2, 1000), (9, 33)] {
            for rms in [false, true] {
                let ldx = cols + 2;
                // A large mean: a one-pass variance would lose it.
                let x: Vec<f32> = rng
                    .normals(rows * ldx, 1.0)
                    .into_iter()
                    .map(|v| v + 1000.0)
                    .collect();
                let gamma = rng.normals(cols, 1.0);
                let beta = rng.normals(cols, 1.0);
                let with_beta = (rows + cols) % 2 == 0;
                let eps = 1e-5f32;
                let mut y = vec![0.0f32; rows * cols];
                let mut mean = vec![0.0f32; rows];
                let mut rstd = vec![0.0f32; rows];
                let ops = [OpData::Unary(Unary::GeluErf)];
                let use_epi = rows % 2 == 1;
                let args = NormArgs {
                    x: Matrix {
                        ptr: addr(&x),
                        ld: ldx as i64,
                    },
                    y: Matrix {
                        ptr: addr_mut(&mut y),
                        ld: cols as i64,
                    },
                    rows: rows as i64,
                    cols: cols as i64,
                    gamma: addr(&gamma),
                    beta: with_beta.then(|| addr(&beta)),
                    epsilon: eps,
                    rms,
                    mean: Some(addr_mut(&mut mean)),
                    rstd: Some(addr_mut(&mut rstd)),
                    epilogue: if use_epi {
                        epilogue(&ops)
                    } else {
                        Epilogue::none()
                    },
                };
                lib.run(Kernel::Norm, &args.slots(), t);
                let what = format!("{} {t:?} norm rms={rms} {rows}x{cols}", lib.label);
                let mut want_mean = Vec::new();
                let mut want_rstd = Vec::new();
                let (got, want, tol) = collect(rows, cols, cols, &y, |r, c| {
                    let row: Vec<f64> = (0..cols).map(|j| f64::from(x[r * ldx + j])).collect();
                    let mu = if rms {
                        0.0
                    } else {
                        row.iter().sum::<f64>() / cols as f64
                    };
                    let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / cols as f64;
                    let rs = 1.0 / (var + f64::from(eps)).sqrt();
                    if c == 0 {
                        want_mean.push(mu);
                        want_rstd.push(rs);
                    }
                    let mut v = (row[c] - mu) * rs * f64::from(gamma[c]);
                    if with_beta {
                        v += f64::from(beta[c]);
                    }
                    let v = if use_epi { epi_ref(&ops, v, r, c) } else { v };
                    // x - mean loses the bits of mean (1000) in f32: relative to x's ulp;
                    // rstd carries the f32 sum of `cols` squares.
                    let tl = (f32_ulp(1000.0) * rs * 4.0 + 1e-6) * f64::from(gamma[c].abs())
                        + v.abs() * 16.0 * U32 * (1.0 + (cols as f64).sqrt())
                        + 8.0 * f32_ulp(v);
                    (v, tl)
                });
                check_close(&what, &got, &want, &tol);
                let rtol: Vec<f64> = want_rstd.iter().map(|r| 1e-4 * r).collect();
                check_close(&format!("{what} rstd"), &rstd, &want_rstd, &rtol);
                let mtol: Vec<f64> = want_mean.iter().map(|m| 4.0 * f32_ulp(*m) + 1e-6).collect();
                check_close(&format!("{what} mean"), &mean, &want_mean, &mtol);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Pools

#[derive(Clone, Copy, Debug)]
struct PoolCase {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    k: (usize, usize),
    stride: (usize, usize),
    dil: (usize, usize),
    pads: [usize; 4],
    ceil: bool,
    avg: bool,
    include_pad: bool,
}

fn check_pool(lib: &Lib, t: Threads, p: PoolCase, rng: &mut Rng) {
    let what = format!("{} {t:?} pool {p:?}", lib.label);
    let o = |i: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
        let span = i + p0 + p1 - d * (k - 1) - 1;
        let mut o = if p.ceil {
            span.div_ceil(s) + 1
        } else {
            span / s + 1
        };
        // ONNX/PyTorch: the last window must start inside the input or the left padding.
        if p.ceil && (o - 1) * s >= i + p0 {
            o -= 1;
        }
        o
    };
    let oh = o(p.h, p.k.0, p.stride.0, p.dil.0, p.pads[0], p.pads[2]);
    let ow = o(p.w, p.k.1, p.stride.1, p.dil.1, p.pads[1], p.pads[3]);
    let (xs, ys) = (p.c + 2, p.c + 1);
    let mut x = rng.normals(p.n * p.h * p.w * xs, 1.0);
    if !p.avg {
        x[xs + 1] = f32::NAN; // pixel 1, channel 1
    }
    let mut y = vec![0.0f32; p.n * oh * ow * ys];
    let args = PoolArgs {
        x: addr(&x),
        n: p.n as i64,
        h: p.h as i64,
        w: p.w as i64,
        c: p.c as i64,
        x_stride: xs as i64,
        y: addr_mut(&mut y),
        oh: oh as i64,
        ow: ow as i64,
        y_stride: ys as i64,
        window: Window {
            kh: p.k.0 as i64,
            kw: p.k.1 as i64,
            stride_h: p.stride.0 as i64,
            stride_w: p.stride.1 as i64,
            dil_h: p.dil.0 as i64,
            dil_w: p.dil.1 as i64,
            pad_top: p.pads[0] as i64,
            pad_left: p.pads[1] as i64,
            pad_bottom: p.pads[2] as i64,
            pad_right: p.pads[3] as i64,
        },
        kind: if p.avg {
            PoolKind::Average
        } else {
            PoolKind::Max
        },
        count_include_pad: p.include_pad,
    };
    lib.run(Kernel::Pool2d, &args.slots(), t);
    let (got, want, tol) = collect(p.n * oh * ow, p.c, ys, &y, |pix, ch| {
        let img = pix / (oh * ow);
        let (oy, ox) = ((pix / ow) % oh, pix % ow);
        let (mut acc, mut count, mut padded) =
            (if p.avg { 0.0 } else { f64::NEG_INFINITY }, 0usize, 0usize);
        for ky in 0..p.k.0 {
            let iy = (oy * p.stride.0 + ky * p.dil.0) as isize - p.pads[0] as isize;
            for kx in 0..p.k.1 {
                let ix = (ox * p.stride.1 + kx * p.dil.1) as isize - p.pads[1] as isize;
                let in_pad = iy < (p.h + p.pads[2]) as isize && ix < (p.w + p.pads[3]) as isize;
                if in_pad {
                    padded += 1;
                }
                if iy < 0 || ix < 0 || iy >= p.h as isize || ix >= p.w as isize {
                    continue;
                }
                let v = f64::from(x[((img * p.h + iy as usize) * p.w + ix as usize) * xs + ch]);
                count += 1;
                acc = if p.avg {
                    acc + v
                } else if acc.is_nan() || v.is_nan() {
                    f64::NAN
                } else {
                    acc.max(v)
                };
            }
        }
        let v = if p.avg {
            acc / (if p.include_pad { padded } else { count }) as f64
        } else {
            acc
        };
        (v, 4.0 * f32_ulp(v) + 1e-6)
    });
    check_close(&what, &got, &want, &tol);
}

#[test]
fn pool2d_max_and_average() {
    let mut rng = Rng::new(8);
    let mut cases = Vec::new();
    let base = PoolCase {
        n: 2,
        h: 7,
        w: 9,
        c: 3,
        k: (2, 2),
        stride: (2, 2),
        dil: (1, 1),
        pads: [0; 4],
        ceil: false,
        avg: false,
        include_pad: false,
    };
    for avg in [false, true] {
        cases.push(PoolCase { avg, ..base });
        cases.push(PoolCase {
            avg,
            c: 67,
            k: (3, 3),
            pads: [1; 4],
            ceil: true,
            include_pad: true,
            ..base
        });
        cases.push(PoolCase {
            avg,
            c: 16,
            k: (3, 3),
            stride: (1, 1),
            pads: [1; 4],
            ..base
        });
        cases.push(PoolCase {
            avg,
            c: 5,
            k: (3, 2),
            stride: (2, 1),
            dil: (2, 2),
            pads: [2, 1, 0, 1],
            ceil: true,
            ..base
        });
        cases.push(PoolCase {
            avg,
            h: 112,
            w: 112,
            c: 64,
            n: 1,
            k: (3, 3),
            pads: [1; 4],
            ..base
        });
    }
    for lib in libs() {
        for case in &cases {
            for t in THREADS {
                check_pool(lib, t, *case, &mut rng);
            }
        }
    }
}

#[test]
fn global_pools() {
    let mut rng = Rng::new(9);
    for_each(|lib, t| {
        for (n, hw, c) in [(1, 1, 1), (2, 49, 2048), (3, 5, 7), (1, 3136, 67)] {
            for avg in [false, true] {
                let xs = c + 1;
                let mut x = rng.normals(n * hw * xs, 1.0);
                if !avg && c > 1 {
                    x[1] = f32::NAN;
                }
                let ys = c + 3;
                let mut y = vec![0.0f32; n * ys];
                let args = GlobalPoolArgs {
                    x: addr(&x),
                    n: n as i64,
                    hw: hw as i64,
                    c: c as i64,
                    x_stride: xs as i64,
                    y: addr_mut(&mut y),
                    y_stride: ys as i64,
                    kind: if avg {
                        PoolKind::Average
                    } else {
                        PoolKind::Max
                    },
                };
                lib.run(Kernel::GlobalPool, &args.slots(), t);
                let (got, want, tol) = collect(n, c, ys, &y, |img, ch| {
                    let vals = (0..hw).map(|p| f64::from(x[(img * hw + p) * xs + ch]));
                    let v = if avg {
                        vals.sum::<f64>() / hw as f64
                    } else {
                        vals.fold(f64::NEG_INFINITY, |a, b| {
                            if a.is_nan() || b.is_nan() {
                                f64::NAN
                            } else {
                                a.max(b)
                            }
                        })
                    };
                    let abs: f64 = (0..hw)
                        .map(|p| f64::from(x[(img * hw + p) * xs + ch]).abs())
                        .sum();
                    (v, dot_tol(hw, abs / hw as f64, v))
                });
                check_close(
                    &format!("{} {t:?} gpool avg={avg} {n}x{hw}x{c}", lib.label),
                    &got,
                    &want,
                    &tol,
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Copy

/// A strided box: `dims`, and per dim the strides of X and Y, with offsets.
struct CopyCase {
    what: &'static str,
    dims: Vec<i64>,
    xs: Vec<i64>,
    ys: Vec<i64>,
    x_off: i64,
    y_off: i64,
}

fn dense(dims: &[i64]) -> Vec<i64> {
    let mut st = vec![1i64; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        st[d] = st[d + 1] * dims[d + 1];
    }
    st
}

/// The copies of interest: concat/split slices along the last and a middle axis, transposes
/// (channel shuffles with 2, 3, 4 and 5 groups, NCHW -> NHWC, a full reversal), at primes, 1
/// and around the vector widths.
fn copy_cases() -> Vec<CopyCase> {
    let mut v = Vec::new();
    // Channels [off, off + c) of a [p, total] buffer: concat's destination, split's source.
    for (p, c, total, off) in [
        (1, 1, 1, 0),
        (13, 3, 10, 4),
        (31, 58, 116, 58),
        (7, 17, 47, 30),
    ] {
        v.push(CopyCase {
            what: "concat slice",
            dims: vec![p, c],
            xs: vec![c, 1],
            ys: vec![total, 1],
            x_off: 0,
            y_off: off,
        });
        v.push(CopyCase {
            what: "split slice",
            dims: vec![p, c],
            xs: vec![total, 1],
            ys: vec![c, 1],
            x_off: off,
            y_off: 0,
        });
    }
    // A middle axis: [3, 5 of 11, 7] at 2.
    v.push(CopyCase {
        what: "middle axis",
        dims: vec![3, 5, 7],
        xs: dense(&[3, 5, 7]),
        ys: vec![77, 7, 1],
        x_off: 0,
        y_off: 14,
    });
    // Transposes: output dims, and X's strides of the transposed input.
    let mut transpose = |what: &'static str, xdims: &[i64], perm: &[usize]| {
        let st = dense(xdims);
        let dims: Vec<i64> = perm.iter().map(|&p| xdims[p]).collect();
        v.push(CopyCase {
            what,
            ys: dense(&dims),
            xs: perm.iter().map(|&p| st[p]).collect(),
            dims,
            x_off: 0,
            y_off: 0,
        });
    };
    for g in [2, 3, 4, 5] {
        for (hw, c) in [(1, 1), (9, 29), (5, 17), (3, 16), (2, 33)] {
            transpose("channel shuffle", &[1, hw, hw, g, c], &[0, 1, 2, 4, 3]);
        }
    }
    transpose("nchw to nhwc", &[2, 3, 13, 11], &[0, 2, 3, 1]);
    transpose("nhwc to nchw", &[1, 7, 5, 19], &[0, 3, 1, 2]);
    transpose("reverse", &[3, 4, 5, 6], &[3, 2, 1, 0]);
    transpose("matrix", &[37, 41], &[1, 0]);
    v
}

#[test]
fn copy_strided_boxes() {
    let mut rng = Rng::new(10);
    for_each(|lib, t| {
        for c in copy_cases() {
            let span = |st: &[i64], off: i64| {
                off + c.dims.iter().zip(st).map(|(d, s)| (d - 1) * s).sum::<i64>() + 1
            };
            let mut x = rng.normals(span(&c.xs, c.x_off) as usize, 1.0);
            // NaN payloads must arrive bit for bit.
            x[c.x_off as usize] = f32::from_bits(0x7fc0_1234);
            let sentinel = f32::from_bits(0x7f80_0abc);
            let mut y = vec![sentinel; span(&c.ys, c.y_off) as usize + 5];
            let args = CopyArgs::new(
                addr(&x),
                c.x_off,
                addr_mut(&mut y),
                c.y_off,
                &c.dims,
                &c.xs,
                &c.ys,
            )
            .expect("a box the kernel takes");
            lib.run(Kernel::Copy, &args.slots(), t);
            // Walk the box in Rust, independently of the kernel's dim merging.
            let what = format!("{} {t:?} copy {} {:?}", lib.label, c.what, c.dims);
            let mut want = vec![sentinel.to_bits(); y.len()];
            let n: i64 = c.dims.iter().product();
            for lin in 0..n {
                let (mut rem, mut xo, mut yo) = (lin, c.x_off, c.y_off);
                for d in (0..c.dims.len()).rev() {
                    let i = rem % c.dims[d];
                    rem /= c.dims[d];
                    xo += i * c.xs[d];
                    yo += i * c.ys[d];
                }
                want[yo as usize] = x[xo as usize].to_bits();
            }
            let got: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
                panic!(
                    "{what}: element {i}: got {:#x}, want {:#x}",
                    got[i], want[i]
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Attention

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// [B, H, S, D] contiguous.
    Bhsd,
    /// [B, S, H, D] contiguous (PyTorch exports).
    Bshd,
    /// [B, H, S, D] with every element two floats apart.
    Spread,
}

fn strides(l: Layout, h: usize, s: usize, d: usize) -> ([i64; 4], usize) {
    let (h, s, d) = (h as i64, s as i64, d as i64);
    let (st, per_batch) = match l {
        Layout::Bhsd => ([h * s * d, s * d, d, 1], h * s * d),
        Layout::Bshd => ([s * h * d, d, h * d, 1], h * s * d),
        Layout::Spread => ([2 * h * s * d, 2 * s * d, 2 * d, 2], 2 * h * s * d),
    };
    (st, per_batch as usize)
}

#[derive(Clone, Copy, Debug)]
struct AttnCase {
    b: usize,
    hq: usize,
    hkv: usize,
    sq: usize,
    sk: usize,
    d: usize,
    dv: usize,
    layout: Layout,
    /// None, or the mask's broadcast pattern: strides are zeroed where `false`
    /// (batch, head, query, key).
    mask: Option<[bool; 4]>,
    causal: bool,
}

fn check_attention(lib: &Lib, t: Threads, c: AttnCase, rng: &mut Rng) {
    let what = format!("{} {t:?} attention {c:?}", lib.label);
    let at = |st: &[i64; 4], b: usize, h: usize, s: usize, d: usize| {
        (b as i64 * st[0] + h as i64 * st[1] + s as i64 * st[2] + d as i64 * st[3]) as usize
    };
    let (qs, qlen) = strides(c.layout, c.hq, c.sq, c.d);
    let (ks, klen) = strides(c.layout, c.hkv, c.sk, c.d);
    let (vs, vlen) = strides(c.layout, c.hkv, c.sk, c.dv);
    let (os, olen) = strides(c.layout, c.hq, c.sq, c.dv);
    let q = rng.normals(qlen * c.b, 1.0);
    let k = rng.normals(klen * c.b, 1.0);
    let v = rng.normals(vlen * c.b, 1.0);
    let mut o = vec![f32::NAN; olen * c.b];
    // The mask is stored full [B, HQ, SQ, SK]; broadcast dims read it with stride 0.
    let full = [c.hq * c.sq * c.sk, c.sq * c.sk, c.sk, 1];
    let mut mask = rng.normals(c.b * full[0], 2.0);
    for (i, m) in mask.iter_mut().enumerate() {
        if i % 7 == 3 {
            *m = f32::NEG_INFINITY;
        }
    }
    let mstrides = c.mask.map(|keep| {
        let mut s = [0i64; 4];
        for i in 0..4 {
            if keep[i] {
                s[i] = full[i] as i64;
            }
        }
        s
    });
    let scale = 1.0 / (c.d as f32).sqrt();
    let args = AttentionArgs {
        q: Strided4 {
            ptr: addr(&q),
            strides: qs,
        },
        k: Strided4 {
            ptr: addr(&k),
            strides: ks,
        },
        v: Strided4 {
            ptr: addr(&v),
            strides: vs,
        },
        o: Strided4 {
            ptr: addr_mut(&mut o),
            strides: os,
        },
        mask: mstrides.map(|s| Strided4 {
            ptr: addr(&mask),
            strides: s,
        }),
        b: c.b as i64,
        hq: c.hq as i64,
        hkv: c.hkv as i64,
        sq: c.sq as i64,
        sk: c.sk as i64,
        d: c.d as i64,
        dv: c.dv as i64,
        scale,
        causal: c.causal,
        scratch: 0,
    };
    let scratch = Scratch::new(args.scratch_bytes(lib.variant));
    let args = AttentionArgs {
        scratch: scratch.addr(),
        ..args
    };
    lib.run(Kernel::Attention, &args.slots(), t);
    scratch.check(&what);
    let mut got = Vec::new();
    let mut want = Vec::new();
    let mut tol = Vec::new();
    let group = c.hq / c.hkv;
    for b in 0..c.b {
        for h in 0..c.hq {
            let hk = h / group;
            for i in 0..c.sq {
                let mut s = vec![0.0f64; c.sk];
                let mut ds = 0.0f64;
                for (j, sj) in s.iter_mut().enumerate() {
                    let (mut dot, mut abs) = (0.0, 0.0);
                    for e in 0..c.d {
                        let p =
                            f64::from(q[at(&qs, b, h, i, e)]) * f64::from(k[at(&ks, b, hk, j, e)]);
                        dot += p;
                        abs += p.abs();
                    }
                    ds = ds.max(dot_tol(c.d, abs, dot) * f64::from(scale));
                    *sj = dot * f64::from(scale);
                    if let Some(ms) = &mstrides {
                        *sj += f64::from(mask[at(ms, b, h, i, j)]);
                    }
                    if c.causal && j as i64 > i as i64 + c.sk as i64 - c.sq as i64 {
                        *sj = f64::NEG_INFINITY;
                    }
                }
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let sum: f64 = p.iter().sum();
                for e in 0..c.dv {
                    let (mut acc, mut abs) = (0.0, 0.0);
                    for (j, pj) in p.iter().enumerate() {
                        let vv = f64::from(v[at(&vs, b, hk, j, e)]);
                        acc += pj * vv;
                        abs += (pj * vv).abs();
                    }
                    // All keys masked: softmax over -inf is NaN.
                    let w = if m == f64::NEG_INFINITY {
                        f64::NAN
                    } else {
                        acc / sum
                    };
                    got.push(o[at(&os, b, h, i, e)]);
                    want.push(w);
                    tol.push(abs / sum * (4.0 * ds + 64.0 * U32) + 4.0 * f32_ulp(w) + 1e-7);
                }
            }
        }
    }
    check_close(&what, &got, &want, &tol);
    // Elements of a spread-out O between the written ones are untouched.
    if c.layout == Layout::Spread {
        assert!(
            o.iter().skip(1).step_by(2).all(|x| x.is_nan()),
            "{what}: wrote a gap"
        );
    }
}

#[test]
fn attention_online_softmax() {
    let mut rng = Rng::new(10);
    let a = |b, hq, hkv, sq, sk, d, dv, layout, mask, causal| AttnCase {
        b,
        hq,
        hkv,
        sq,
        sk,
        d,
        dv,
        layout,
        mask,
        causal,
    };
    // Mask broadcast patterns (batch, head, query, key).
    let per_query = Some([true, false, true, true]);
    let per_key = Some([true, false, false, true]);
    let shared = Some([false, false, true, true]);
    let cases = [
        a(2, 4, 2, 5, 7, 8, 5, Layout::Bhsd, None, false),
        a(1, 2, 2, 33, 65, 13, 16, Layout::Bshd, per_query, false),
        // Decoding: one query, causal offset SK - SQ.
        a(1, 3, 1, 1, 130, 64, 64, Layout::Bhsd, None, true),
        a(2, 2, 2, 70, 70, 16, 16, Layout::Bshd, per_key, true),
        // SK < SQ with causality: the first queries see no key (NaN).
        a(1, 2, 1, 9, 4, 8, 8, Layout::Bhsd, None, true),
        a(1, 1, 1, 40, 200, 128, 64, Layout::Spread, shared, false),
        a(1, 1, 1, 1, 1, 1, 1, Layout::Bhsd, None, false),
    ];
    for lib in libs() {
        for case in cases {
            for t in THREADS {
                check_attention(lib, t, case, &mut rng);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// igemm: exact 8-bit integer products

/// `igemm` (and `igemmv` where the library has it, with B as given and, for i8 B, packed as
/// `int8_gemm_b` like pack-weights does; and `igemmp`, AVX2's pmaddubsw pairs, with B as
/// given and, for i8 B, packed as `int8_gemm_b_narrow` from values within [-64, 64], the
/// bounds included, against rows of A at the extremes) against an exact i64 sum: odd sizes (1, primes, tile
/// +-1 for every variant's MR and NR; K not a multiple of 4), u8/i8 for both operands, zero
/// points absent, scalar, per row and per column (nonzero, extreme values), an int32 result
/// and an f32 one through an epilogue (scalar scale, then bias). Integers must match exactly;
/// the f32 result is the exact sum converted, times the scale, plus the bias.
#[test]
fn igemm_is_exact() {
    let sizes = [
        (1, 1, 1),
        (1, 67, 131),
        (7, 13, 5),
        (6, 64, 4),
        (5, 63, 3),
        (13, 65, 67),
    ];
    let more = [(8, 12, 257), (9, 17, 16), (2, 129, 1031), (25, 11, 2)];
    let (mut vnni_runs, mut pairs_runs) = (0, 0);
    for lib in libs() {
        for kernel in [Kernel::IGemm, Kernel::IGemmVnni, Kernel::IGemmPairs] {
            if !lib.kernels.iter().any(|k| k.0 == kernel) {
                continue;
            }
            vnni_runs += usize::from(kernel == Kernel::IGemmVnni);
            pairs_runs += usize::from(kernel == Kernel::IGemmPairs);
            for t in THREADS {
                for (case, &(m, n, k)) in sizes.iter().chain(&more).enumerate() {
                    igemm_case(lib, kernel, t, (m, n, k), case);
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vnni") {
        assert!(
            vnni_runs > 0,
            "the VNNI path was not tested on a machine with it"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert!(
            pairs_runs > 0,
            "the pmaddubsw path was not tested on a machine with AVX2"
        );
    }
    let _ = (vnni_runs, pairs_runs);
}

/// One igemm problem: operands and zero points, the exact sums.
struct IgemmCase {
    m: usize,
    n: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    a: Vec<u8>,
    b: Vec<u8>,
    zs: Vec<u8>,
}

impl IgemmCase {
    fn val(x: u8, signed: bool) -> i64 {
        if signed {
            x as i8 as i64
        } else {
            x as i64
        }
    }

    /// The exact sums with zero points of `za_mode` / `zb_mode` (none, scalar, per row or
    /// column).
    fn want(&self, signs: (bool, bool), za_mode: usize, zb_mode: usize) -> Vec<i64> {
        let (m, n, k) = (self.m, self.n, self.k);
        let mut want = vec![0i64; m * n];
        for i in 0..m {
            let za = match za_mode {
                0 => 0,
                1 => Self::val(self.zs[0], signs.0),
                _ => Self::val(self.zs[i], signs.0),
            };
            for j in 0..n {
                let zb = match zb_mode {
                    0 => 0,
                    1 => Self::val(self.zs[1], signs.1),
                    _ => Self::val(self.zs[j], signs.1),
                };
                want[i * n + j] = (0..k)
                    .map(|kk| {
                        let a = Self::val(self.a[i * self.lda + kk], signs.0);
                        let b = Self::val(self.b[kk * self.ldb + j], signs.1);
                        (a - za) * (b - zb)
                    })
                    .sum();
            }
        }
        want
    }
}

fn igemm_case(lib: &Lib, kernel: Kernel, t: Threads, mnk: (usize, usize, usize), case: usize) {
    let (m, n, k) = mnk;
    let mut rng = Rng::new(case as u64 * 31 + 7);
    let mut bytes = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.next() as u8).collect() };
    let (lda, ldb, ldc) = (k + 3, n + 1, n + 2);
    let mut zs = bytes(m.max(n) + 1);
    // An extreme zero point.
    zs[0] = 0x80;
    let (mut a, mut b) = (bytes(m * lda), bytes(k * ldb));
    if kernel == Kernel::IGemmPairs {
        // Values int8_gemm_b_narrow may hold (as i8; the bounds included), and rows of A at
        // the extremes of u8 (255) and of i8 (127, which the kernel flips to 255), where
        // pairs of products come closest to int16's range.
        for (i, x) in b.iter_mut().enumerate() {
            *x = match i % 7 {
                0 => 64,
                1 => (-64i8) as u8,
                _ => (i16::from(*x % 129) - 64) as i8 as u8,
            };
        }
        a[..k].fill(0xff);
        if m > 1 {
            a[lda..lda + k].fill(0x7f);
        }
    }
    let p = IgemmCase {
        m,
        n,
        k,
        lda,
        ldb,
        a,
        b,
        zs,
    };
    let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
    let scale = [0.0078125f32];
    let cscale: Vec<f32> = (0..n).map(|j| 0.001 * (1 + j % 7) as f32).collect();
    let ldr = n + 3;
    let res: Vec<f32> = (0..m * ldr)
        .map(|x| (x % 11) as f32 * 0.125 - 0.5)
        .collect();
    // igemmv also reads i8 B packed at compile time (int8_gemm_b), packed here by kiln_ir.
    let dense: Vec<u8> = (0..k * n).map(|x| p.b[x / n * ldb + x % n]).collect();
    let layout = if kernel == Kernel::IGemmPairs {
        kiln_ir::ops::layout::PackLayout::Int8GemmBNarrow
    } else {
        kiln_ir::ops::layout::PackLayout::Int8GemmB
    };
    let packing = kiln_ir::ops::layout::Packing::new(
        layout,
        lib.variant.nr() as u64,
        1,
        vec![k as u64, n as u64],
    )
    .unwrap();
    packing.check_values(&dense, kiln_ir::DType::I8).unwrap();
    let packed_b = packing.pack_bytes(&dense, 1);
    for mode in 0..8usize {
        let signs = (mode & 1 == 1, mode & 2 == 2);
        let f32_out = mode & 4 == 4;
        let za_mode = (mode + case) % 3;
        let zb_mode = (mode + case + 1) % 3;
        let want = p.want(signs, za_mode, zb_mode);
        let zero = |md: usize, second: bool| match md {
            0 => None,
            1 => Some((p.zs[usize::from(second)..].as_ptr() as u64, false)),
            _ => Some((p.zs.as_ptr() as u64, true)),
        };
        // The f32 epilogue's form: 0, 1 and 3 are igemm's one-pass forms (scalar scale, column
        // scales, bias, residual, an activation: GELU through the tile-wide call, ReLU inline),
        // 2 is not (the bias before the scale) and goes through the general epilogue.
        let form = (mode + case) % 4;
        let bin = |op: Binary, operand: Operand<u64>| EpiOp::Binary {
            op,
            operand,
            batch_stride: 0,
        };
        let epilogue = if f32_out {
            Epilogue::new(match form {
                0 => vec![
                    bin(Binary::Mul, Operand::Scalar(addr(&scale))),
                    bin(Binary::Add, Operand::Row(addr(&bias))),
                ],
                1 => vec![
                    bin(Binary::Mul, Operand::Row(addr(&cscale))),
                    bin(Binary::Add, Operand::Row(addr(&bias))),
                    bin(
                        Binary::Add,
                        Operand::Mat {
                            ptr: addr(&res),
                            ld: ldr as i64,
                        },
                    ),
                    EpiOp::Unary(Unary::GeluErf),
                ],
                2 => vec![
                    bin(Binary::Add, Operand::Row(addr(&bias))),
                    bin(Binary::Mul, Operand::Imm(0.5)),
                ],
                _ => vec![
                    bin(Binary::Mul, Operand::Imm(scale[0])),
                    bin(Binary::Mul, Operand::Row(addr(&cscale))),
                    EpiOp::Unary(Unary::Relu),
                ],
            })
            .unwrap()
        } else {
            Epilogue::none()
        };
        let forms: &[bool] = if kernel != Kernel::IGemm && signs.1 {
            &[false, true]
        } else {
            &[false]
        };
        for &packed in forms {
            let scratch = Scratch::new(igemm_scratch_bytes(
                m as i64,
                n as i64,
                k as i64,
                lib.variant,
                packed,
            ));
            let mut c = vec![0u32; m * ldc];
            let b_ptr = if packed {
                packed_b.as_ptr()
            } else {
                p.b.as_ptr()
            };
            let args = IGemmArgs {
                a: Int8Operand {
                    ptr: p.a.as_ptr() as u64,
                    packed: false,
                    ld: lda as i64,
                    signed: signs.0,
                    zero: zero(za_mode, false),
                },
                b: Int8Operand {
                    ptr: b_ptr as u64,
                    packed,
                    ld: ldb as i64,
                    signed: signs.1,
                    zero: zero(zb_mode, true),
                },
                c: Matrix {
                    ptr: c.as_mut_ptr() as u64,
                    ld: ldc as i64,
                },
                c_f32: f32_out,
                m: m as i64,
                n: n as i64,
                k: k as i64,
                scratch: scratch.addr(),
                epilogue: epilogue.clone(),
            };
            lib.run(kernel, &args.slots(), t);
            let what = format!(
                "{} {kernel:?} {t:?} m{m} n{n} k{k} mode {mode} za {za_mode} zb {zb_mode} \
                 packed {packed}",
                lib.label
            );
            scratch.check(&what);
            for i in 0..m {
                for j in 0..n {
                    let (got, w) = (c[i * ldc + j], want[i * n + j]);
                    if f32_out {
                        let x = w as f32;
                        let (e, tol) = match form {
                            0 => (x * scale[0] + bias[j], 1e-6),
                            1 => {
                                let pre = x * cscale[j] + bias[j] + res[i * ldr + j];
                                (unary_ref(Unary::GeluErf, f64::from(pre)) as f32, 1e-5)
                            }
                            2 => ((x + bias[j]) * 0.5, 1e-6),
                            _ => ((x * scale[0] * cscale[j]).max(0.0), 1e-6),
                        };
                        let g = f32::from_bits(got);
                        assert!(
                            (g - e).abs() <= tol * e.abs().max(1.0),
                            "{what}: form {form} ({i}, {j}) got {g}, want {e}"
                        );
                    } else {
                        assert_eq!(got as i32 as i64, w, "{what}: ({i}, {j})");
                    }
                }
                // The padding between rows is untouched.
                for j in n..ldc {
                    assert_eq!(c[i * ldc + j], 0, "{what}: wrote ({i}, {j})");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// iconv: quant.conv_integer on the int8 product

/// One iconv problem: `[n, c, h, w]` input, `m` output channels, window, groups.
#[derive(Clone, Copy, Debug)]
struct IconvShape {
    n: usize,
    c: usize,
    hw: (usize, usize),
    m: usize,
    k: (usize, usize),
    stride: (usize, usize),
    dil: (usize, usize),
    /// Begin and end pads: (top, left, bottom, right).
    pads: (usize, usize, usize, usize),
    groups: usize,
}

#[test]
fn iconv_is_exact() {
    let s = |n, c, hw, m, k, stride, dil, pads, groups| IconvShape {
        n,
        c,
        hw,
        m,
        k,
        stride,
        dil,
        pads,
        groups,
    };
    let shapes = [
        // 1x1 without padding: the image read as B directly.
        s(1, 13, (7, 9), 1, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
        s(2, 5, (3, 11), 17, (1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1),
        // 3x3 with padding, an odd width (vectors across rows), stride 2.
        s(1, 3, (11, 13), 7, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
        s(1, 7, (17, 19), 5, (3, 3), (2, 2), (1, 1), (0, 1, 1, 2), 1),
        s(1, 31, (9, 10), 37, (1, 1), (2, 2), (1, 1), (0, 0, 0, 0), 1),
        // Wide rows (whole-vector loads), many output channels.
        s(1, 9, (5, 40), 67, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
        // "Same" padding at stride 1 (a vector of consecutive pixels is one
        // load across output rows): ResNet's 7x7 and 14x14 maps, two
        // images, and asymmetric horizontal padding (left 0, right 2).
        s(2, 5, (7, 7), 11, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
        s(1, 4, (14, 14), 6, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1),
        s(1, 3, (6, 9), 5, (3, 3), (1, 1), (1, 1), (1, 0, 1, 2), 1),
        // Groups with dilation; depthwise (the direct loop) with stride 2.
        s(1, 6, (12, 11), 9, (3, 3), (1, 1), (2, 2), (2, 2, 2, 2), 3),
        s(2, 5, (9, 8), 5, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 5),
        s(1, 3, (19, 23), 3, (5, 3), (1, 1), (1, 2), (2, 2, 1, 3), 3),
        // Depthwise lines in stride phases: wide rows at stride 2, stride 3
        // with dilation 2 and asymmetric pads, a 1x5 window.
        s(1, 3, (13, 37), 3, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1), 3),
        s(1, 2, (7, 31), 2, (3, 3), (1, 3), (1, 2), (0, 2, 1, 1), 2),
        s(1, 5, (6, 17), 5, (1, 5), (2, 2), (1, 1), (0, 2, 0, 2), 5),
    ];
    for lib in libs() {
        for kernel in [Kernel::IConv, Kernel::IConvVnni] {
            if !lib.kernels.iter().any(|k| k.0 == kernel) {
                continue;
            }
            for t in THREADS {
                for (case, sh) in shapes.iter().enumerate() {
                    iconv_case(lib, kernel, t, *sh, case);
                }
            }
        }
    }
}

fn iconv_case(lib: &Lib, kernel: Kernel, t: Threads, sh: IconvShape, case: usize) {
    let IconvShape {
        n,
        c,
        hw: (h, w),
        m,
        k: (kh, kw),
        stride: (sy, sx),
        dil: (dy, dx),
        pads: (pt, pl, pb, pr),
        groups,
    } = sh;
    let oh = (h + pt + pb - (dy * (kh - 1) + 1)) / sy + 1;
    let ow = (w + pl + pr - (dx * (kw - 1) + 1)) / sx + 1;
    let (cg, mg) = (c / groups, m / groups);
    let mut rng = Rng::new(case as u64 * 17 + 3);
    let mut bytes = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.next() as u8).collect() };
    let x = bytes(n * c * h * w);
    let wt = bytes(m * cg * kh * kw);
    let mut zs = bytes(m + 1);
    zs[0] = 0x80;
    let bias: Vec<i32> = (0..m).map(|i| i as i32 * 37 - 500).collect();
    let scales: Vec<f32> = (0..m).map(|i| 0.0011 + i as f32 * 0.00013).collect();
    let val = IgemmCase::val;
    for mode in 0..8usize {
        let (xs, ws) = (mode & 1 == 1, mode & 2 == 2);
        let requant = mode & 4 == 4;
        // Zero points: x none or one value; w none, one value or one per channel.
        let zx_mode = (mode + case) % 2;
        let zw_mode = (mode + case) % 3;
        let y_signed = (mode + case).is_multiple_of(2);
        let per_scale = case.is_multiple_of(2);
        let zx = if zx_mode == 1 { val(zs[1], xs) } else { 0 };
        let zy = val(zs[m], y_signed);
        let mut want = vec![0i64; n * m * oh * ow];
        for b in 0..n {
            for o in 0..m {
                let g = o / mg;
                let zw = match zw_mode {
                    0 => 0,
                    1 => val(zs[0], ws),
                    _ => val(zs[o], ws),
                };
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = if requant { i64::from(bias[o]) } else { 0 };
                        for ci in 0..cg {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (y * sy + ky * dy) as i64 - pt as i64;
                                    let ix = (xo * sx + kx * dx) as i64 - pl as i64;
                                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                        continue;
                                    }
                                    let ch = g * cg + ci;
                                    let xv = x[((b * c + ch) * h + iy as usize) * w + ix as usize];
                                    let wv = wt[((o * cg + ci) * kh + ky) * kw + kx];
                                    acc += (val(xv, xs) - zx) * (val(wv, ws) - zw);
                                }
                            }
                        }
                        let at = ((b * m + o) * oh + y) * ow + xo;
                        want[at] = if requant {
                            let s = scales[if per_scale { o } else { 0 }];
                            let (lo, hi) = if y_signed { (-128, 127) } else { (0, 255) };
                            ((acc as i32 as f32 * s).round_ties_even() as i64 + zy).clamp(lo, hi)
                        } else {
                            acc
                        };
                    }
                }
            }
        }
        let args0 = IConvArgs {
            x: Int8Operand {
                ptr: x.as_ptr() as u64,
                packed: false,
                ld: 0,
                signed: xs,
                zero: (zx_mode == 1).then(|| (zs[1..].as_ptr() as u64, false)),
            },
            w: Int8Operand {
                ptr: wt.as_ptr() as u64,
                packed: false,
                ld: 0,
                signed: ws,
                zero: match zw_mode {
                    0 => None,
                    1 => Some((zs.as_ptr() as u64, false)),
                    _ => Some((zs.as_ptr() as u64, true)),
                },
            },
            bias: requant.then_some(bias.as_ptr() as u64),
            y: 0,
            input: [n as i64, c as i64, h as i64, w as i64],
            m: m as i64,
            out: [oh as i64, ow as i64],
            kernel: [kh as i64, kw as i64],
            strides: [sy as i64, sx as i64],
            dilations: [dy as i64, dx as i64],
            pads: [pt as i64, pl as i64],
            groups: groups as i64,
            scratch: 0,
            requantize: requant.then(|| Requantize {
                scale: addr(&scales),
                per_channel: per_scale,
                zero: Some(zs[m..].as_ptr() as u64),
                signed: y_signed,
            }),
        };
        let scratch = Scratch::new(args0.scratch_bytes(lib.variant));
        let what = format!("{} {kernel:?} {t:?} {sh:?} mode {mode}", lib.label);
        // One guard element past the result: nothing may be written there.
        let len = n * m * oh * ow;
        let got: Vec<i64> = if requant {
            let mut y = vec![0x5au8; len + 1];
            let args = IConvArgs {
                y: y.as_mut_ptr() as u64,
                scratch: scratch.addr(),
                ..args0
            };
            lib.run(kernel, &args.slots(), t);
            assert_eq!(y[len], 0x5a, "{what}: wrote past the result");
            y[..len].iter().map(|&v| val(v, y_signed)).collect()
        } else {
            let mut y = vec![0x5a5a5a5ai32; len + 1];
            let args = IConvArgs {
                y: y.as_mut_ptr() as u64,
                scratch: scratch.addr(),
                ..args0
            };
            lib.run(kernel, &args.slots(), t);
            assert_eq!(y[len], 0x5a5a5a5a, "{what}: wrote past the result");
            y[..len].iter().map(|&v| i64::from(v)).collect()
        };
        scratch.check(&what);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{what}: element {i}");
        }
    }
}
