//! Benchmark of the CPU kernel library: GFLOP/s of GEMMs and of the convolutions of ResNet-50
//! and MobileNetV2, next to this machine's measured FMA peak, at 1 and 2 threads.
//!
//! ```text
//! cargo run --release -p kiln-codegen --example kernel_bench [-- TARGET... [--threads 1,2]]
//! ```
//! TARGETs default to `x86-64-v3` and `native`. The kernels are compiled for each target with
//! `compile_kernels` (the time is printed), run on a small spinning thread pool through the
//! parallel shim, and timed as the best of several runs by thread CPU time (robust on a shared
//! machine, where another process takes a core for milliseconds at a time): at 1 thread the
//! run's CPU time; at several, the caller's CPU time outside parallel regions plus, per region,
//! the busiest thread's CPU time inside it (so load imbalance counts, a descheduled thread does
//! not). The wall-time rate is printed beside it. The peak probe runs independent FMA chains
//! of the target's vector width.

use kiln_codegen::kernels::abi::*;
use kiln_codegen::kernels::harness::{build_harness_library, wrapper_symbol};
use kiln_codegen::kernels::{compile_kernels, Kernel, Variant};
use kiln_codegen::parallel::FRAME_BYTES;
use kiln_codegen::{OptLevel, Target};
use std::ffi::c_void;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Body = unsafe extern "C" fn(*mut c_void, i64, i64);
type ParallelFor = unsafe extern "C" fn(*mut c_void, i64, Option<Body>, *mut c_void);
type KernelFn = unsafe extern "C" fn(*const i64);
type EnterFn = unsafe extern "C" fn(*const ExecCtx, *mut u64) -> *mut c_void;
type LeaveFn = unsafe extern "C" fn(*mut c_void);

/// `kiln_exec_ctx` of `kiln.h`.
#[repr(C)]
struct ExecCtx {
    abi_version: u32,
    num_threads: u32,
    pool: *mut c_void,
    parallel_for: Option<ParallelFor>,
}

// ---------------------------------------------------------------------------------------------
// A spinning pool: workers wait for a new generation, claim chunks, report done.

struct Pool {
    threads: usize,
    /// Thread CPU time (ns) each thread spent in the current region's chunks (index 0: caller).
    busy: Vec<AtomicU64>,
    /// Sum over regions of the busiest thread's `busy` and of the caller's own (ns).
    regions_max: AtomicU64,
    regions_caller: AtomicU64,
    generation: AtomicU64,
    body: AtomicUsize,
    data: AtomicUsize,
    n: AtomicI64,
    next: AtomicI64,
    done: AtomicUsize,
}

impl Pool {
    fn new(threads: usize) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            threads,
            busy: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            regions_max: AtomicU64::new(0),
            regions_caller: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            body: AtomicUsize::new(0),
            data: AtomicUsize::new(0),
            n: AtomicI64::new(0),
            next: AtomicI64::new(0),
            done: AtomicUsize::new(0),
        });
        for id in 1..threads {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || {
                let mut seen = 0;
                loop {
                    let mut spins = 0u32;
                    while p.generation.load(Ordering::Acquire) == seen {
                        spins += 1;
                        if spins > 20_000 {
                            std::thread::yield_now();
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    seen = p.generation.load(Ordering::Acquire);
                    p.work(id);
                    p.done.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
        pool
    }

    fn work(&self, id: usize) {
        let c0 = thread_cpu_time();
        let n = self.n.load(Ordering::Acquire);
        // SAFETY: set by run() before the generation was published.
        let body: Body = unsafe { std::mem::transmute(self.body.load(Ordering::Acquire)) };
        let data = self.data.load(Ordering::Acquire) as *mut c_void;
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= n {
                break;
            }
            // SAFETY: the kernel's contract: body may run on any thread over [i, i + 1).
            unsafe { body(data, i, i + 1) };
        }
        let ns = (thread_cpu_time() - c0).as_nanos() as u64;
        self.busy[id].store(ns, Ordering::Release);
    }

    fn run(&self, n: i64, body: Body, data: *mut c_void) {
        self.body.store(body as usize, Ordering::Release);
        self.data.store(data as usize, Ordering::Release);
        self.n.store(n, Ordering::Release);
        self.next.store(0, Ordering::Release);
        self.done.store(0, Ordering::Release);
        for b in &self.busy {
            b.store(0, Ordering::Release);
        }
        let c0 = thread_cpu_time();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.work(0);
        while self.done.load(Ordering::Acquire) < self.threads - 1 {
            std::hint::spin_loop();
        }
        let max = self.busy.iter().map(|b| b.load(Ordering::Acquire)).max();
        self.regions_max
            .fetch_add(max.unwrap_or(0), Ordering::AcqRel);
        // The caller's whole region, waiting for the workers included (a descheduled worker
        // is the machine's doing, not the kernel's).
        let caller = (thread_cpu_time() - c0).as_nanos() as u64;
        self.regions_caller.fetch_add(caller, Ordering::AcqRel);
    }

    /// Clears the per-region sums ([`Pool::parallel_cpu`] then covers what runs after).
    fn reset_regions(&self) {
        self.regions_max.store(0, Ordering::Release);
        self.regions_caller.store(0, Ordering::Release);
    }

    /// CPU time of a run on this pool whose caller used `caller_cpu` in all: the caller's time
    /// outside regions plus each region's busiest thread.
    fn parallel_cpu(&self, caller_cpu: f64) -> f64 {
        let ns = |a: &AtomicU64| a.load(Ordering::Acquire) as f64 * 1e-9;
        (caller_cpu - ns(&self.regions_caller)).max(0.0) + ns(&self.regions_max)
    }
}

unsafe extern "C" fn pool_parallel_for(
    pool: *mut c_void,
    n: i64,
    body: Option<Body>,
    data: *mut c_void,
) {
    // SAFETY: `pool` is the Pool the context was made with.
    let pool = unsafe { &*(pool as *const Pool) };
    if let Some(body) = body {
        pool.run(n, body, data);
    }
}

// ---------------------------------------------------------------------------------------------
// The library

/// The kernels of `variant` that `target` can compile (not the VNNI ones without VNNI).
fn kernels_for(target: &Target, variant: Variant) -> impl Iterator<Item = Kernel> + '_ {
    Kernel::ALL
        .into_iter()
        .filter(move |k| k.compiles_for(target, variant))
}

struct Lib {
    _lib: libloading::Library,
    kernels: Vec<(Kernel, KernelFn)>,
    enter: EnterFn,
    leave: LeaveFn,
}

impl Lib {
    fn load(target: &Target, variant: Variant, dir: &std::path::Path) -> Lib {
        let names: Vec<String> = kernels_for(target, variant)
            .map(|k| k.symbol(variant))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let path = dir.join(format!("libk-{}.so", variant.name()));
        build_harness_library(target, OptLevel::O3, &refs, &path).expect("kernels build");
        // SAFETY: just built for this machine.
        let lib = unsafe { libloading::Library::new(&path) }.expect("load");
        let sym = |name: &str| -> *const c_void {
            // SAFETY: a symbol lookup; cast to its real type below.
            unsafe {
                *lib.get::<*const c_void>(format!("{name}\0").as_bytes())
                    .unwrap()
            }
        };
        // SAFETY: the harness defines these with these signatures.
        unsafe {
            let kernels = kernels_for(target, variant)
                .map(|k| {
                    let f = sym(&wrapper_symbol(&k.symbol(variant)));
                    (k, std::mem::transmute::<*const c_void, KernelFn>(f))
                })
                .collect();
            let enter = std::mem::transmute::<*const c_void, EnterFn>(sym("kiln_harness_enter"));
            let leave = std::mem::transmute::<*const c_void, LeaveFn>(sym("kiln_harness_leave"));
            Lib {
                _lib: lib,
                kernels,
                enter,
                leave,
            }
        }
    }

    /// Runs `kernel` inside a run whose pool is `pool`.
    fn run(&self, kernel: Kernel, args: &[i64], pool: &Arc<Pool>) {
        let f = self.kernels.iter().find(|k| k.0 == kernel).unwrap().1;
        let ctx = ExecCtx {
            abi_version: 1,
            num_threads: pool.threads as u32,
            pool: Arc::as_ptr(pool) as *mut c_void,
            parallel_for: Some(pool_parallel_for),
        };
        let mut frame = [0u64; FRAME_BYTES as usize / 8];
        // SAFETY: args describes live buffers; ctx and frame outlive the run.
        unsafe {
            let prev = (self.enter)(&ctx, frame.as_mut_ptr());
            f(args.as_ptr());
            (self.leave)(prev);
        }
    }
}

fn block<P: Clone>(slots: Vec<Slot<P>>, addr: impl Fn(&P) -> i64) -> Vec<i64> {
    slots.iter().map(|s| s.to_bits(&addr)).collect()
}

// ---------------------------------------------------------------------------------------------
// Timing

fn thread_cpu_time() -> Duration {
    let mut ts = libc_timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec.
    unsafe {
        clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, &mut ts)
    };
    Duration::new(ts.sec as u64, ts.nsec as u32)
}

#[repr(C)]
struct libc_timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut libc_timespec) -> i32;
}

/// Best (wall, CPU) time of `f` over repeated runs for about `budget`; CPU time is the calling
/// thread's, or with a `pool` [`Pool::parallel_cpu`].
fn time(mut f: impl FnMut(), budget: Duration, pool: Option<&Pool>) -> (f64, f64) {
    f();
    let start = Instant::now();
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    let mut runs = 0;
    while runs < 3 || (start.elapsed() < budget && runs < 1000) {
        if let Some(p) = pool {
            p.reset_regions();
        }
        let (w0, c0) = (Instant::now(), thread_cpu_time());
        f();
        wall = wall.min(w0.elapsed().as_secs_f64());
        let c = (thread_cpu_time() - c0).as_secs_f64();
        cpu = cpu.min(pool.map_or(c, |p| p.parallel_cpu(c)));
        runs += 1;
    }
    (wall, cpu)
}

// ---------------------------------------------------------------------------------------------
// Peak probe

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    const ITERS: usize = 20_000_000;

    #[target_feature(enable = "avx512f")]
    unsafe fn w16() -> f32 {
        let b = _mm512_set1_ps(1.000_000_1);
        let c = _mm512_set1_ps(0.999_999_9);
        let mut a = [_mm512_setzero_ps(); 12];
        for _ in 0..ITERS {
            for x in a.iter_mut() {
                *x = _mm512_fmadd_ps(*x, b, c);
            }
        }
        a.iter().map(|x| _mm512_reduce_add_ps(*x)).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn w8() -> f32 {
        let b = _mm256_set1_ps(1.000_000_1);
        let c = _mm256_set1_ps(0.999_999_9);
        let mut a = [_mm256_setzero_ps(); 12];
        for _ in 0..ITERS {
            for x in a.iter_mut() {
                *x = _mm256_fmadd_ps(*x, b, c);
            }
        }
        let mut s = [0.0f32; 8];
        for x in a {
            let mut t = [0.0f32; 8];
            // SAFETY: t holds 8 floats.
            unsafe { _mm256_storeu_ps(t.as_mut_ptr(), x) };
            for i in 0..8 {
                s[i] += t[i];
            }
        }
        s.iter().sum()
    }

    /// FMA peak (GFLOP/s of one thread) at `lanes` f32 lanes, or None if unsupported.
    pub fn gflops(lanes: usize) -> Option<f64> {
        let run = |f: unsafe fn() -> f32| {
            let (_, cpu) = super::time(
                || {
                    // SAFETY: only called after checking the CPU feature.
                    std::hint::black_box(unsafe { f() });
                },
                std::time::Duration::from_millis(300),
                None,
            );
            (ITERS * 12 * lanes * 2) as f64 / cpu * 1e-9
        };
        match lanes {
            16 if is_x86_feature_detected!("avx512f") => Some(run(w16)),
            8 if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => {
                Some(run(w8))
            }
            _ => None,
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod peak {
    pub fn gflops(_lanes: usize) -> Option<f64> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Problems

struct Rng(u64);

impl Rng {
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }
}

fn ptr(v: &[f32]) -> i64 {
    v.as_ptr() as i64
}

/// The address of a buffer the kernel writes.
fn ptr_mut(v: &mut [f32]) -> i64 {
    v.as_mut_ptr() as i64
}

/// One benchmark: a name, its FLOPs, the kernel and its argument block (buffers kept alive).
struct Problem {
    name: String,
    flops: f64,
    kernel: Kernel,
    args: Vec<i64>,
    _buffers: Vec<Vec<f32>>,
}

fn gemm(name: &str, m: usize, n: usize, k: usize, v: Variant, rng: &mut Rng) -> Problem {
    let a = rng.vec(m * k);
    let b = rng.vec(packed_b_floats(k as i64, n as i64, v) as usize);
    let mut c = vec![0.0f32; m * n];
    let args = GemmArgs {
        a: ptr(&a),
        lda: k as i64,
        a_trans: false,
        a_batch_stride: 0,
        b: ptr(&b),
        ldb: 0,
        b_format: BFormat::Packed,
        b_batch_stride: 0,
        c: ptr_mut(&mut c),
        ldc: n as i64,
        c_batch_stride: 0,
        m: m as i64,
        n: n as i64,
        k: k as i64,
        batch: 1,
        kc: 0,
        nc: 0,
        scratch: None,
        epilogue: Epilogue::none(),
    };
    Problem {
        name: format!("{name} {m}x{n}x{k}"),
        flops: 2.0 * (m * n * k) as f64,
        kernel: Kernel::Gemm,
        args: block(args.slots(), |p| *p),
        _buffers: vec![a, b, c],
    }
}

/// A convolution; `wino`: through Winograd where `abi::wino_chunk_tiles` takes it.
#[allow(clippy::too_many_arguments)]
fn conv(
    name: &str,
    hw: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    wino: bool,
    v: Variant,
    rng: &mut Rng,
) -> Problem {
    let pad = k / 2;
    let o = (hw + 2 * pad - k) / stride + 1;
    let x = rng.vec(hw * hw * cin);
    let w = rng.vec(packed_conv_floats(cout as i64, cin as i64, k as i64, k as i64, 1, v) as usize);
    let bias = rng.vec(cout);
    let mut y = vec![0.0f32; o * o * cout];
    let args = ConvArgs {
        x: Nhwc {
            ptr: ptr(&x),
            stride: cin as i64,
            offset: 0,
        },
        n: 1,
        h: hw as i64,
        w: hw as i64,
        cin: cin as i64,
        weights: ptr(&w),
        y: Nhwc {
            ptr: ptr_mut(&mut y),
            stride: cout as i64,
            offset: 0,
        },
        oh: o as i64,
        ow: o as i64,
        cout: cout as i64,
        window: Window::square(k as i64, stride as i64, pad as i64),
        groups: 1,
        kc: 0,
        nc: 0,
        wino_tiles: 0,
        scratch: None,
        quant: None,
        epilogue: Epilogue::new(vec![
            EpiOp::Binary {
                op: Binary::Add,
                operand: Operand::Row(ptr(&bias)),
                batch_stride: 0,
            },
            EpiOp::Unary(Unary::Relu),
        ])
        .unwrap(),
    };
    let chunk = if wino {
        wino_chunk_tiles(
            1,
            o as i64,
            o as i64,
            cin as i64,
            cout as i64,
            &args.window,
            1,
            v,
        )
    } else {
        0
    };
    let scratch = vec![
        0.0f32;
        (wino_scratch_bytes(
            cin as i64,
            cout as i64,
            chunk,
            wino_tiles(1, o as i64, o as i64),
            v
        ) / 4) as usize
    ];
    let args = ConvArgs {
        wino_tiles: chunk,
        scratch: (chunk > 0).then(|| ptr(&scratch)),
        ..args
    };
    let how = if chunk > 0 { " winograd" } else { "" };
    Problem {
        name: format!("{name} {hw}x{hw}x{cin} {k}x{k}/{stride} -> {cout}{how}"),
        flops: 2.0 * (o * o * cout * cin * k * k) as f64,
        kernel: Kernel::Conv2d,
        args: block(args.slots(), |p| *p),
        _buffers: vec![x, w, bias, y, scratch],
    }
}

fn dwconv(name: &str, hw: usize, c: usize, stride: usize, rng: &mut Rng) -> Problem {
    let o = (hw + 2 - 3) / stride + 1;
    let x = rng.vec(hw * hw * c);
    let w = rng.vec(9 * c);
    let bias = rng.vec(c);
    let mut y = vec![0.0f32; o * o * c];
    let args = DwConvArgs {
        x: Nhwc {
            ptr: ptr(&x),
            stride: c as i64,
            offset: 0,
        },
        n: 1,
        h: hw as i64,
        w: hw as i64,
        c: c as i64,
        weights: ptr(&w),
        y: Nhwc {
            ptr: ptr_mut(&mut y),
            stride: c as i64,
            offset: 0,
        },
        oh: o as i64,
        ow: o as i64,
        window: Window::square(3, stride as i64, 1),
        epilogue: Epilogue::new(vec![
            EpiOp::Binary {
                op: Binary::Add,
                operand: Operand::Row(ptr(&bias)),
                batch_stride: 0,
            },
            EpiOp::Unary(Unary::Clip { lo: 0.0, hi: 6.0 }),
        ])
        .unwrap(),
    };
    Problem {
        name: format!("{name} {hw}x{hw}x{c} dw3x3/{stride}"),
        flops: 2.0 * (o * o * c * 9) as f64,
        kernel: Kernel::DwConv2d,
        args: block(args.slots(), |p| *p),
        _buffers: vec![x, w, bias, y],
    }
}

fn attention(s: usize, heads: usize, d: usize, v: Variant, rng: &mut Rng) -> Problem {
    let n = heads * s * d;
    let (q, k, val) = (rng.vec(n), rng.vec(n), rng.vec(n));
    let mut o = vec![0.0f32; n];
    let mut scratch =
        vec![0.0f32; attention_scratch_bytes(d as i64, d as i64, v) as usize / 4 + 16];
    let st = [(n) as i64, (s * d) as i64, d as i64, 1];
    let t = |p: &[f32]| Strided4 {
        ptr: ptr(p),
        strides: st,
    };
    let aligned = (ptr_mut(&mut scratch) + 63) & !63;
    let args = AttentionArgs {
        q: t(&q),
        k: t(&k),
        v: t(&val),
        o: Strided4 {
            ptr: ptr_mut(&mut o),
            strides: st,
        },
        mask: None,
        b: 1,
        hq: heads as i64,
        hkv: heads as i64,
        sq: s as i64,
        sk: s as i64,
        d: d as i64,
        dv: d as i64,
        scale: 1.0 / (d as f32).sqrt(),
        causal: false,
        scratch: aligned,
    };
    Problem {
        name: format!("attention {heads}x{s}x{d}"),
        flops: 4.0 * (heads * s * s * d) as f64,
        kernel: Kernel::Attention,
        args: block(args.slots(), |p| *p),
        _buffers: vec![q, k, val, o, scratch],
    }
}

fn problems(v: Variant) -> Vec<Problem> {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let r = &mut r;
    vec![
        gemm("gemm", 1024, 1024, 1024, v, r),
        gemm("gemv", 1, 4096, 4096, v, r),
        gemm("gemm", 16, 11008, 4096, v, r),
        gemm("bert ffn", 128, 3072, 768, v, r),
        conv("resnet stem", 224, 3, 64, 7, 2, false, v, r),
        conv("resnet", 56, 64, 256, 1, 1, false, v, r),
        conv("resnet", 56, 64, 64, 3, 1, false, v, r),
        conv("resnet", 56, 256, 64, 1, 1, false, v, r),
        conv("resnet", 28, 128, 128, 3, 1, false, v, r),
        conv("resnet", 14, 256, 256, 3, 1, false, v, r),
        conv("resnet", 7, 512, 512, 3, 1, false, v, r),
        conv("resnet", 56, 64, 64, 3, 1, true, v, r),
        conv("resnet", 28, 128, 128, 3, 1, true, v, r),
        conv("resnet", 14, 256, 256, 3, 1, true, v, r),
        conv("squeezenet", 55, 16, 64, 3, 1, true, v, r),
        conv("squeezenet", 13, 64, 256, 3, 1, true, v, r),
        conv("resnet", 56, 256, 512, 1, 2, false, v, r),
        conv("mobilenetv2 stem", 224, 3, 32, 3, 2, false, v, r),
        conv("mobilenetv2", 112, 32, 16, 1, 1, false, v, r),
        conv("mobilenetv2", 112, 16, 96, 1, 1, false, v, r),
        conv("mobilenetv2", 56, 24, 144, 1, 1, false, v, r),
        conv("mobilenetv2", 56, 144, 24, 1, 1, false, v, r),
        conv("mobilenetv2", 28, 192, 32, 1, 1, false, v, r),
        conv("mobilenetv2", 28, 32, 192, 1, 1, false, v, r),
        conv("mobilenetv2", 14, 384, 64, 1, 1, false, v, r),
        conv("mobilenetv2", 14, 64, 384, 1, 1, false, v, r),
        conv("mobilenetv2", 14, 576, 96, 1, 1, false, v, r),
        conv("mobilenetv2", 7, 160, 960, 1, 1, false, v, r),
        conv("mobilenetv2", 7, 960, 160, 1, 1, false, v, r),
        conv("mobilenetv2", 14, 96, 576, 1, 1, false, v, r),
        conv("mobilenetv2", 7, 960, 320, 1, 1, false, v, r),
        dwconv("mobilenetv2", 112, 32, 1, r),
        dwconv("mobilenetv2", 56, 144, 1, r),
        dwconv("mobilenetv2", 56, 144, 2, r),
        dwconv("mobilenetv2", 14, 576, 1, r),
        dwconv("mobilenetv2", 7, 960, 1, r),
        attention(128, 12, 64, v, r),
    ]
}

fn main() {
    let mut targets = Vec::new();
    let mut threads = vec![1usize, 2];
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--threads" {
            threads = it
                .next()
                .expect("--threads N,M")
                .split(',')
                .map(|t| t.parse().expect("a thread count"))
                .collect();
        } else {
            targets.push(a);
        }
    }
    if targets.is_empty() {
        targets = vec!["x86-64-v3".into(), "native".into()];
    }
    let dir = tempfile::tempdir().unwrap();
    let pools: Vec<Arc<Pool>> = threads.iter().map(|&t| Pool::new(t)).collect();
    for spec in &targets {
        let target = Target::parse(spec).expect("a target");
        let variant = Variant::for_target(&target).expect("a CPU target");
        // Compile time of each kernel alone (thread CPU time), as an artifact pays it.
        let mut compile = Vec::new();
        for k in kernels_for(&target, variant) {
            let c0 = thread_cpu_time();
            let obj = compile_kernels(&target, OptLevel::O3, &[&k.symbol(variant)]).unwrap();
            compile.push(format!(
                "{} {:.2} s ({} KiB)",
                k.name(),
                (thread_cpu_time() - c0).as_secs_f64(),
                obj.len() / 1024
            ));
        }
        let start = Instant::now();
        let lib = Lib::load(&target, variant, dir.path());
        let built = start.elapsed().as_secs_f64();
        let peak = peak::gflops(variant.lanes());
        println!(
            "\n{spec} ({target}): variant {} (tile {}x{}), its kernels compiled and linked in \
             {built:.2} s; FMA peak {} GFLOP/s per thread",
            variant.name(),
            variant.mr(),
            variant.nr(),
            peak.map_or("?".into(), |p| format!("{p:.1}"))
        );
        println!("compile time per kernel: {}", compile.join(", "));
        print!("{:<44}", "problem");
        for t in &threads {
            print!(" {:>9} {:>6} {:>7}", format!("{t}T GF/s"), "%peak", "wall");
        }
        println!();
        for p in problems(variant) {
            print!("{:<44}", p.name);
            for pool in &pools {
                let (wall, cpu) = time(
                    || lib.run(p.kernel, &p.args, pool),
                    Duration::from_millis(400),
                    Some(pool),
                );
                let gf = p.flops / cpu * 1e-9;
                let pct = peak.map_or(f64::NAN, |pk| 100.0 * gf / (pk * pool.threads as f64));
                print!(" {gf:>9.1} {pct:>5.0}% {:>7.1}", p.flops / wall * 1e-9);
            }
            println!();
        }
    }
}
