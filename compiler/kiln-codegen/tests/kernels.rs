//! The CPU kernel library, checked kernel by kernel against naive references written here.
//!
//! For every x86-64 level this machine supports (`x86-64` = SSE2, `x86-64-v3` = AVX2 + FMA,
//! `x86-64-v4` = AVX-512), the library is compiled with `compile_kernels` for that target,
//! linked with the real parallel shim and a small harness into a shared library, loaded, and
//! each kernel is run serially and on a test thread pool (2 threads in contiguous chunks, 4
//! threads in single-index chunks) with `KILN_PARALLEL_MIN_US=0`, so every parallel split is
//! taken. References accumulate in f64 on random normal inputs; packed weights are packed here
//! from the layout definitions of docs/middle-end.md, so a kernel that disagrees with the
//! documented layout fails. AArch64 is compiled and linked (and run when `qemu-aarch64` and an
//! AArch64 sysroot are available, which the kernel tests do not require).

use kiln_codegen::kernels::abi::*;
use kiln_codegen::kernels::{compile_kernels, kernel_names, Kernel, Variant};
use kiln_codegen::{emit_with_pipeline, link_shared_library, Arch, Emit, OptLevel, Target};
use std::ffi::c_void;
use std::path::Path;
use std::process::Command;
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

type CallFn = unsafe extern "C" fn(*const ExecCtx, i32, *const i64);

struct Lib {
    _dir: tempfile::TempDir,
    _lib: libloading::Library,
    call: CallFn,
    names: Vec<String>,
    variant: Variant,
    label: String,
}

impl Lib {
    /// Runs `kernel` with `args`.
    fn run(&self, kernel: Kernel, args: &[Slot<u64>], threads: Threads) {
        let name = kernel.symbol(self.variant);
        let index = self.names.iter().position(|n| *n == name).expect("built") as i32;
        let block: Vec<i64> = args.iter().map(|s| s.to_bits(|p| *p as i64)).collect();
        match threads {
            // SAFETY: the argument block describes buffers the caller keeps alive.
            Threads::Serial => unsafe { (self.call)(std::ptr::null(), index, block.as_ptr()) },
            Threads::Pool { threads, chunk } => {
                let mut pool = TestPool { threads, chunk };
                let ctx = ExecCtx {
                    abi_version: 1,
                    num_threads: threads,
                    pool: &mut pool as *mut TestPool as *mut c_void,
                    parallel_for: Some(test_parallel_for),
                };
                // SAFETY: as above; ctx and pool outlive the call.
                unsafe { (self.call)(&ctx, index, block.as_ptr()) }
            }
        }
    }
}

fn clang() -> &'static str {
    if Path::new("/usr/lib/llvm-22/bin/clang").is_file() {
        "/usr/lib/llvm-22/bin/clang"
    } else {
        "clang-22"
    }
}

/// The harness: the kernels (hidden) in a table, and an exported entry that installs a run
/// context the way `kiln_entry` does, then calls one kernel.
fn harness_source(names: &[String]) -> String {
    let mut s = String::from(
        "#include <stdint.h>\n#define H __attribute__((visibility(\"hidden\")))\n\
         H void* kiln_par_enter(const void* ctx, void* frame);\nH void kiln_par_leave(void* prev);\n",
    );
    for n in names {
        s.push_str(&format!("H void {n}(const int64_t*);\n"));
    }
    s.push_str("static void (*const table[])(const int64_t*) = {\n");
    for n in names {
        s.push_str(&format!("  {n},\n"));
    }
    s.push_str(
        "};\n__attribute__((visibility(\"default\"))) void kiln_test_call(const void* ctx, \
         int32_t i, const int64_t* args) {\n  if (!ctx) { table[i](args); return; }\n  \
         uint64_t frame[8];\n  void* prev = kiln_par_enter(ctx, frame);\n  table[i](args);\n  \
         kiln_par_leave(prev);\n}\n",
    );
    s
}

/// Compiles the kernels of `variants` for `target`, with the shim and the harness, into a
/// shared library in a new temporary directory; returns the directory.
fn build(target: &Target, variants: &[Variant]) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = variants
        .iter()
        .flat_map(|&v| Kernel::ALL.iter().map(move |k| k.symbol(v)))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let start = std::time::Instant::now();
    let obj = compile_kernels(target, OptLevel::O3, &refs).unwrap();
    eprintln!(
        "compile_kernels({target}, {} kernels): {:.2} s, {} bytes",
        refs.len(),
        start.elapsed().as_secs_f64(),
        obj.len()
    );
    std::fs::write(dir.path().join("kernels.o"), &obj).unwrap();
    let shim = format!("module {{\n{}\n}}\n", kiln_codegen::parallel::SHIM_MLIR);
    let shim_obj = emit_with_pipeline(&shim, target, "", OptLevel::O2, Emit::Obj).unwrap();
    std::fs::write(dir.path().join("shim.o"), shim_obj).unwrap();
    std::fs::write(dir.path().join("harness.c"), harness_source(&names)).unwrap();
    let out = Command::new(clang())
        .current_dir(dir.path())
        .args([
            &format!("--target={}", target.triple()),
            "-O2",
            "-fPIC",
            "-ffreestanding",
            "-c",
            "harness.c",
            "-o",
            "harness.o",
        ])
        .output()
        .expect("clang 22 is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objs: Vec<std::path::PathBuf> = ["kernels.o", "shim.o", "harness.o"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    let objs: Vec<&Path> = objs.iter().map(|p| p.as_path()).collect();
    link_shared_library(&objs, &dir.path().join("libk.so"), &[]).unwrap();
    (dir, names)
}

fn load(target: &Target, variant: Variant) -> Lib {
    let (dir, names) = build(target, &[variant]);
    // SAFETY: the library was built above for this machine; its only initialisers are LLVM's.
    let lib = unsafe { libloading::Library::new(dir.path().join("libk.so")) }.unwrap();
    // SAFETY: the harness defines kiln_test_call with this signature.
    let call = unsafe { *lib.get::<CallFn>(b"kiln_test_call\0").unwrap() };
    Lib {
        _dir: dir,
        _lib: lib,
        call,
        names,
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
    let mut worst = (0.0f64, 0usize);
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
        let rel = err / tol[i].max(f64::MIN_POSITIVE);
        if rel > worst.0 {
            worst = (rel, i);
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
    let target = Target::parse("aarch64").unwrap();
    let (dir, names) = build(&target, &[Variant::W4R32]);
    let bytes = std::fs::read(dir.path().join("kernels.o")).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    use object::{Object, ObjectSymbol};
    assert_eq!(file.architecture(), object::Architecture::Aarch64);
    for name in &names {
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not defined for aarch64"));
        assert!(sym.is_definition());
    }
    assert!(dir.path().join("libk.so").is_file());
    if Command::new("qemu-aarch64")
        .arg("--version")
        .output()
        .is_ok()
    {
        eprintln!(
            "qemu-aarch64 is installed; AArch64 execution is covered by the qemu test runner"
        );
    }
}

#[test]
fn kernels_call_nothing_but_the_shim() {
    use object::{Object, ObjectSymbol};
    for target in ["x86-64", "x86-64-v4", "aarch64"] {
        let target = Target::parse(target).unwrap();
        let names = kernel_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let obj = compile_kernels(&target, OptLevel::O3, &refs).unwrap();
        let file = object::File::parse(&*obj).unwrap();
        for sym in file.symbols().filter(|s| s.is_undefined()) {
            let name = sym.name().unwrap();
            if name.is_empty() {
                continue;
            }
            assert!(
                kiln_codegen::kernels::PAR_SYMBOLS.contains(&name)
                    || ["memcpy", "memset", "memmove"].contains(&name),
                "{target}: kernels reference {name}"
            );
        }
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
    epi: bool,
}

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
            epi: i % 2 == 0,
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
    let epi = if c.epi {
        Epilogue::new(vec![
            EpiOp::Binary {
                op: Binary::Add,
                operand: Operand::Row(addr(&bias)),
                batch_stride: n as i64,
            },
            EpiOp::Binary {
                op: Binary::Add,
                operand: Operand::Mat {
                    ptr: addr(&res),
                    ld: ldr as i64,
                },
                batch_stride: (m * ldr) as i64,
            },
            EpiOp::Unary(Unary::Relu),
        ])
        .unwrap()
    } else {
        Epilogue::none()
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
                if c.epi {
                    s += f64::from(bias[b * n + j]) + f64::from(res[b * m * ldr + i * ldr + j]);
                    s = s.max(0.0);
                    tl += 2.0 * f32_ulp(s);
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
