//! GPU targets on a machine without a GPU: every check a CPU-only machine
//! (and CI) can make of the device code Kiln produces.
//!
//! - CUDA: the PTX of every model below is assembled by NVIDIA's `ptxas`
//!   (PyPI's `nvidia-cuda-nvcc`, installed by scripts/setup.sh) for sm_80
//!   and sm_90, and has no unresolved `.extern .func` (libdevice linked).
//! - ROCm: every HSACO is an AMDGPU code object whose notes
//!   (`llvm-readobj --notes`) describe each kernel (VGPR/SGPR counts, LDS).
//! - Vulkan: every SPIR-V module passes `spirv-val`, and the models run on
//!   Mesa's lavapipe (Vulkan on the CPU) through `kiln run --target vulkan`
//!   and match ONNX Runtime's outputs (the bundled test sets).
//! - Metal: MSL for every kernel, and the host part is an arm64 Mach-O
//!   dylib (`llvm-objdump`).
//! - Without a driver, `kiln run` of a CUDA artifact exits 4 with "CUDA
//!   driver not found".
//!
//! Expected values come from ONNX Runtime (the models' test sets) and the
//! ONNX node tests' stored outputs, never from a Kiln run. A tool that is
//! missing fails the test under CI (`CI` set: setup.sh installs them all)
//! and skips it, saying so, elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_LOG", "error");
    if let Some(ptxas) = ptxas() {
        c.env("KILN_PTXAS", ptxas);
    }
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output, what: &str) -> Output {
    assert!(o.status.success(), "{what}: {:?}\n{}", o.status, text(&o));
    o
}

/// A tool the tests need: `None` (with a note) when it is missing outside CI;
/// under CI a missing tool is a failure.
fn need(tool: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing (scripts/setup.sh installs it)"
        );
        eprintln!("note: {tool} not found: skipped (run scripts/setup.sh)");
    }
    found
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `ptxas`: `$KILN_PTXAS`, else the one of PyPI's `nvidia-cuda-nvcc` in the
/// project venv (or in `.cache/nvcc`, a `pip install --target`).
fn ptxas() -> Option<PathBuf> {
    static P: OnceLock<Option<PathBuf>> = OnceLock::new();
    P.get_or_init(|| {
        if let Some(p) = std::env::var_os("KILN_PTXAS").map(PathBuf::from) {
            return Some(p);
        }
        let root = repo();
        let mut candidates = vec![root.join(".cache/nvcc/nvidia/cu13/bin/ptxas")];
        if let Ok(dirs) = std::fs::read_dir(root.join(".venv/lib")) {
            for d in dirs.flatten() {
                candidates.push(d.path().join("site-packages/nvidia/cu13/bin/ptxas"));
            }
        }
        candidates.into_iter().find(|p| p.is_file())
    })
    .clone()
}

fn llvm_tool(name: &str) -> Option<PathBuf> {
    on_path(&format!("{name}-22")).or_else(|| {
        Some(PathBuf::from(format!("/usr/lib/llvm-22/bin/{name}"))).filter(|p| p.is_file())
    })
}

/// Whether Mesa's lavapipe is installed (its Vulkan ICD and the loader).
fn lavapipe() -> bool {
    let icd = std::fs::read_dir("/usr/share/vulkan/icd.d")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
        })
        .unwrap_or(false);
    let loader = [
        "/usr/lib/x86_64-linux-gnu/libvulkan.so.1",
        "/usr/lib/aarch64-linux-gnu/libvulkan.so.1",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    need(
        "Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1)",
        (icd && loader).then(PathBuf::new),
    )
    .is_some()
}

/// The project venv's Python.
fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}

/// The ONNX node tests (`.cache/onnx-node-tests`, generated on first use).
fn node_tests() -> PathBuf {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::var_os("KILN_ONNX_NODE_TESTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".cache/onnx-node-tests"));
        if !dir.join("index.json").exists() {
            let st = Command::new(python())
                .arg(repo().join("testdata/onnx_node_tests.py"))
                .arg(&dir)
                .status()
                .expect("run the node-test generator");
            assert!(st.success(), "testdata/onnx_node_tests.py failed");
        }
        dir
    })
    .clone()
}

/// A representative slice of the ONNX node tests: elementwise math (the
/// functions each device library lowers differently), reductions,
/// contractions, convolutions and pooling, data movement, and a constant
/// table (Resize's weights); static shapes, data inputs only.
const NODE_TESTS: &[&str] = &[
    "test_relu",
    "test_sigmoid",
    "test_tanh",
    "test_erf",
    "test_exp",
    "test_log",
    "test_sqrt",
    "test_pow",
    "test_softmax_axis_1",
    "test_reduce_max_default_axes_keepdims_random",
    "test_matmul_3d",
    "test_gemm_default_no_bias",
    "test_conv_with_strides_padding",
    "test_maxpool_2d_pads",
    "test_averagepool_2d_default",
    "test_layer_normalization_4d_axis1",
    "test_transpose_all_permutations_3",
    "test_concat_3d_axis_1",
    "test_add_bcast",
    "test_where_example",
    "test_argmax_default_axis_example",
    "test_cast_FLOAT_to_DOUBLE",
    "test_resize_upsample_scales_linear",
];

/// Inputs of node tests that decide shapes or constants, compiled in as
/// constants (`--freeze-input`, as `kiln run` specializes them).
const FROZEN: &[(&str, &str, &str)] =
    &[("test_resize_upsample_scales_linear", "scales", "input_1.pb")];

/// `--freeze-input` arguments for a model of [`all_models`].
fn freeze_args(name: &str, model: &Path) -> Vec<String> {
    FROZEN
        .iter()
        .filter(|(n, _, _)| *n == name)
        .map(|(_, input, file)| {
            let dir = model.parent().unwrap().join("test_data_set_0");
            format!("--freeze-input={input}={}", dir.join(file).display())
        })
        .collect()
}

/// The bundled real models (test sets from ONNX Runtime).
const MODELS: &[&str] = &["mlp", "cnn", "transformer"];

/// Every model file the device-code checks compile.
fn all_models() -> Vec<(String, PathBuf)> {
    let nodes = node_tests();
    let mut v: Vec<(String, PathBuf)> = NODE_TESTS
        .iter()
        .map(|n| (n.to_string(), nodes.join(n).join("model.onnx")))
        .collect();
    for m in MODELS {
        v.push((
            m.to_string(),
            repo().join("testdata/models").join(m).join("model.onnx"),
        ));
    }
    for (name, p) in &v {
        assert!(p.is_file(), "{name}: {} is missing", p.display());
    }
    v
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-gpu-test-")
        .tempdir()
        .unwrap()
}

/// Compiles every model of [`all_models`] for `target` with `--emit=EMIT -o DIR/NAME` and
/// calls `check(name, output, failures)` on each output; returns the failures (a failed
/// compile is one).
fn compile_each(
    target: &str,
    emit: &str,
    dir: &Path,
    mut check: impl FnMut(&str, &Path, &mut Vec<String>),
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, model) in all_models() {
        let out = dir.join(&name);
        let o = kiln()
            .args(["compile", "--target", target, "--emit", emit, "-o"])
            .arg(&out)
            .args(freeze_args(&name, &model))
            .arg(&model)
            .output()
            .unwrap();
        if o.status.success() {
            check(&name, &out, &mut failures);
        } else {
            failures.push(format!(
                "{name}: kiln compile --target {target}: {}",
                text(&o)
            ));
        }
    }
    failures
}

#[test]
fn print_targets_lists_gpu_targets_and_chips() {
    let o = ok(
        kiln()
            .args(["compile", "--print-targets"])
            .output()
            .unwrap(),
        "--print-targets",
    );
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "cuda",
        "nvptx64-nvidia-cuda",
        "cuda:sm_80",
        "cuda:sm_90",
        "cuda:sm_100",
        "rocm",
        "amdgcn-amd-amdhsa",
        "rocm:gfx90a",
        "rocm:gfx942",
        "rocm:gfx1100",
        "vulkan",
        "metal",
    ] {
        assert!(s.contains(want), "--print-targets lacks {want}:\n{s}");
    }
}

#[test]
fn unknown_gpu_chip_is_a_target_error() {
    let o = kiln()
        .args([
            "compile",
            "--target",
            "cuda:sm_1",
            "--emit=asm",
            "--message-format=json",
        ])
        .arg(repo().join("testdata/models/mlp/model.onnx"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("\"code\":\"E2008\""), "{}", text(&o));
    assert!(text(&o).contains("sm_1"), "{}", text(&o));
}

/// Every PTX module assembles with ptxas for sm_80 and sm_90, and calls no
/// function it does not define (libdevice is linked into it).
#[test]
fn cuda_ptx_assembles_with_ptxas_for_sm80_and_sm90() {
    let Some(ptxas) = need("ptxas (pip nvidia-cuda-nvcc)", ptxas()) else {
        return;
    };
    let dir = scratch();
    let failures = compile_each("cuda:sm_80", "asm", dir.path(), |name, ptx, failures| {
        let code = std::fs::read_to_string(ptx).unwrap();
        if !code.contains(".entry") || !code.contains(".target sm_80") {
            failures.push(format!("{name}: no kernel for sm_80 in the PTX"));
        }
        if code.contains(".extern .func") {
            failures.push(format!("{name}: unresolved .extern .func in the PTX"));
        }
        for sm in ["sm_80", "sm_90"] {
            let o = Command::new(&ptxas)
                .arg(format!("-arch={sm}"))
                .arg(ptx)
                .arg("-o")
                .arg(ptx.with_extension(format!("{sm}.cubin")))
                .output()
                .unwrap();
            if !o.status.success() {
                failures.push(format!("{name}: ptxas -arch={sm}: {}", text(&o)));
            }
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A CUDA artifact embeds PTX and SASS; without a CUDA driver `kiln run`
/// refuses it with exit 4 and "CUDA driver not found", without a crash.
#[test]
fn cuda_artifact_without_a_driver_exits_4() {
    if Path::new("/dev/nvidiactl").exists() {
        eprintln!("note: this machine has an NVIDIA driver: see scripts/gpu-check.sh");
        return;
    }
    let dir = scratch();
    let so = dir.path().join("mlp.so");
    ok(
        kiln()
            .args(["compile", "--target", "cuda:sm_90", "-o"])
            .arg(&so)
            .arg(repo().join("testdata/models/mlp/model.onnx"))
            .output()
            .unwrap(),
        "compile for cuda",
    );
    let bytes = std::fs::read(&so).unwrap();
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b".target sm_90"), "the artifact has no PTX for sm_90");
    if ptxas().is_some() {
        // A cubin is an ELF file for the CUDA machine (e_machine EM_CUDA = 190).
        let cubin = bytes
            .windows(20)
            .any(|w| w.starts_with(b"\x7fELF\x02\x01\x01") && w[18..20] == [190, 0]);
        assert!(
            cubin,
            "the artifact has no SASS (cubin) although ptxas was found"
        );
    }
    let set = repo().join("testdata/models/mlp/test_data_set_0");
    let o = kiln()
        .arg("run")
        .arg(&so)
        .arg("--input-dir")
        .arg(&set)
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .arg("--message-format=json")
        .env("LD_LIBRARY_PATH", dir.path()) // no libcuda.so.1 here
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("CUDA driver not found"), "{}", text(&o));
    assert!(text(&o).contains("\"code\":\"E4003\""), "{}", text(&o));
}

/// Every HSACO is an AMDGPU code object with a kernel descriptor per kernel.
#[test]
fn rocm_hsaco_has_kernel_descriptors() {
    let Some(readobj) = need("llvm-readobj-22", llvm_tool("llvm-readobj")) else {
        return;
    };
    let dir = scratch();
    let failures = compile_each(
        "rocm:gfx942",
        "device",
        dir.path(),
        |name, out, failures| {
            let o = ok(
                Command::new(&readobj)
                    .args(["--notes", "--file-headers"])
                    .arg(out.join("kernels.hsaco"))
                    .output()
                    .unwrap(),
                "llvm-readobj",
            );
            let notes = String::from_utf8_lossy(&o.stdout);
            for want in ["EF_AMDGPU_MACH_AMDGCN_GFX942", "amdhsa.kernels"] {
                if !notes.contains(want) {
                    failures.push(format!("{name}: no {want} in llvm-readobj's output"));
                }
            }
            let kernels = notes.matches(".symbol:").count();
            if kernels == 0 {
                failures.push(format!("{name}: no kernel descriptor"));
            }
            for field in [".sgpr_count:", ".vgpr_count:", ".group_segment_fixed_size:"] {
                let n = notes.matches(field).count();
                if n != kernels {
                    failures.push(format!("{name}: {kernels} kernels but {n} {field} entries"));
                }
            }
        },
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every SPIR-V module passes spirv-val (Vulkan 1.1 rules).
#[test]
fn vulkan_spirv_passes_spirv_val() {
    let Some(val) = need("spirv-val (spirv-tools)", on_path("spirv-val")) else {
        return;
    };
    let dir = scratch();
    let failures = compile_each("vulkan", "device", dir.path(), |name, out, failures| {
        let o = Command::new(&val)
            .args(["--target-env", "vulkan1.1"])
            .arg(out.join("kernels.spv"))
            .output()
            .unwrap();
        if !o.status.success() {
            failures.push(format!("{name}: spirv-val: {}", text(&o)));
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `kiln run --target vulkan` on a test-set folder and compares with
/// its stored outputs (`--expected`).
fn run_on_vulkan(model: &Path, set: &Path, out: &Path, tol: &str) -> Result<(), String> {
    let o = kiln()
        .arg("run")
        .arg(model)
        .args(["--target", "vulkan", "--input-dir"])
        .arg(set)
        .arg("--output-dir")
        .arg(out)
        .arg("--expected")
        .arg(set)
        .args(["--rtol", tol, "--atol", tol])
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(text(&o))
    }
}

/// The bundled models run on lavapipe and match ONNX Runtime.
#[test]
fn vulkan_models_run_on_lavapipe_and_match_onnxruntime() {
    if !lavapipe() {
        return;
    }
    let dir = scratch();
    // The run goes through Vulkan: without a driver it is refused (exit 4), never run on the
    // CPU instead.
    let mlp = repo().join("testdata/models/mlp");
    let o = kiln()
        .arg("run")
        .arg(mlp.join("model.onnx"))
        .args(["--target", "vulkan", "--input-dir"])
        .arg(mlp.join("test_data_set_0"))
        .arg("--output-dir")
        .arg(dir.path().join("none"))
        .env("VK_ICD_FILENAMES", dir.path().join("no-driver.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("Vulkan"), "{}", text(&o));
    // `--device N` picks the physical device: lavapipe is device 0; a device the driver
    // does not have is refused with exit 4 naming it, and nothing is written.
    let so = dir.path().join("mlp-vulkan.so");
    ok(
        kiln()
            .args(["compile", "--target", "vulkan", "-o"])
            .arg(&so)
            .arg(mlp.join("model.onnx"))
            .output()
            .unwrap(),
        "compile for vulkan",
    );
    let run_on = |device: &str, out: &Path| {
        kiln()
            .arg("run")
            .arg(&so)
            .arg("--input-dir")
            .arg(mlp.join("test_data_set_0"))
            .arg("--output-dir")
            .arg(out)
            .arg("--expected")
            .arg(mlp.join("test_data_set_0"))
            .args(["--device", device])
            .env_remove("KILN_DEVICE")
            .output()
            .unwrap()
    };
    ok(run_on("0", &dir.path().join("device0")), "run --device 0");
    let missing = dir.path().join("device-missing");
    let o = run_on("99", &missing);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("no device 99"), "{}", text(&o));
    assert!(!missing.exists(), "outputs written for a device that does not exist");
    let o = kiln()
        .arg("bench")
        .arg(&so)
        .args(["--runs", "2", "--warmup", "1", "--threads", "1", "--device", "99"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let mut failures = Vec::new();
    for m in MODELS {
        let d = repo().join("testdata/models").join(m);
        if let Err(e) = run_on_vulkan(
            &d.join("model.onnx"),
            &d.join("test_data_set_0"),
            &dir.path().join(m),
            "1e-4",
        ) {
            failures.push(format!("{m}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// More node tests for the Vulkan run: empty tensors or no kernel at all (`kiln run`
/// specializes their shape inputs; they must run, not crash), and GridSample's nearest mode
/// (math.trunc, which SPIR-V gets from floor and ceil).
const VULKAN_ONLY_TESTS: &[&str] = &[
    "test_tril_zero",
    "test_split_zero_size_splits_opset18",
    "test_constantofshape_int_shape_zero",
    "test_gridsample_nearest",
];

/// The node-test slice runs on lavapipe and matches the stored outputs.
#[test]
fn vulkan_node_tests_run_on_lavapipe() {
    if !lavapipe() {
        return;
    }
    let dir = scratch();
    let nodes = node_tests();
    let mut failures = Vec::new();
    for n in NODE_TESTS.iter().chain(VULKAN_ONLY_TESTS) {
        let d = nodes.join(n);
        if let Err(e) = run_on_vulkan(
            &d.join("model.onnx"),
            &d.join("test_data_set_0"),
            &dir.path().join(n),
            "1e-4",
        ) {
            failures.push(format!("{n}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Metal: MSL source for every kernel, and a host dylib for arm64 macOS.
#[test]
fn metal_msl_and_arm64_macos_host() {
    let Some(objdump) = need("llvm-objdump-22", llvm_tool("llvm-objdump")) else {
        return;
    };
    if need("spirv-cross", on_path("spirv-cross")).is_none() {
        return;
    }
    let dir = scratch();
    let model = repo().join("testdata/models/cnn/model.onnx");
    let o = ok(
        kiln()
            .args(["compile", "--target", "metal", "--emit=msl"])
            .arg(&model)
            .output()
            .unwrap(),
        "--emit=msl",
    );
    let msl = String::from_utf8_lossy(&o.stdout);
    let kernels = msl.matches("// kernel ").count();
    assert!(kernels > 0, "no kernel in the MSL:\n{msl}");
    assert_eq!(
        msl.matches("kernel void").count(),
        kernels,
        "one Metal kernel function per kernel:\n{msl}"
    );
    assert!(msl.contains("#include <metal_stdlib>"), "{msl}");
    let dylib = dir.path().join("cnn.dylib");
    ok(
        kiln()
            .args(["compile", "--target", "metal", "-o"])
            .arg(&dylib)
            .arg(&model)
            .output()
            .unwrap(),
        "compile for metal",
    );
    let o = ok(
        Command::new(&objdump)
            .args(["--macho", "--private-headers"])
            .arg(&dylib)
            .output()
            .unwrap(),
        "llvm-objdump",
    );
    let headers = String::from_utf8_lossy(&o.stdout);
    assert!(headers.contains("ARM64"), "not arm64:\n{headers}");
    assert!(headers.contains("DYLIB"), "not a dylib:\n{headers}");
    let o = ok(
        Command::new(&objdump)
            .args(["--macho", "--exports-trie"])
            .arg(&dylib)
            .output()
            .unwrap(),
        "llvm-objdump --exports-trie",
    );
    let exports = String::from_utf8_lossy(&o.stdout);
    assert!(exports.contains("_kiln_artifact"), "{exports}");
}

/// bfloat16 has no SPIR-V type in Vulkan 1.1: kernels keep bf16 tensors in 16-bit integer
/// buffers and compute in f32 (`kiln-gpu-bf16-storage`), so the SPIR-V declares no bf16 and
/// the casts, arithmetic and attention node tests in bf16 match their stored outputs on
/// lavapipe (within two bf16 ulps, ONNX's tolerance for the type).
#[test]
fn vulkan_runs_bfloat16_in_16_bit_integer_buffers() {
    let tests = [
        "test_cast_FLOAT_to_BFLOAT16",
        "test_cast_BFLOAT16_to_FLOAT",
        "test_attention_4d_causal_bf16",
    ];
    let dir = scratch();
    let d = node_tests().join(tests[2]);
    let o = kiln()
        .arg("compile")
        .arg(d.join("model.onnx"))
        .args(["--target", "vulkan", "--emit", "spirv", "-o", "-"])
        .output()
        .unwrap();
    let spirv = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && spirv.contains("spirv.func"),
        "{}",
        text(&o)
    );
    assert!(!spirv.contains("bf16"), "bf16 left in the SPIR-V:\n{spirv}");
    assert!(spirv.contains("i16"), "no 16-bit buffers:\n{spirv}");
    if !lavapipe() {
        return;
    }
    let mut failures = Vec::new();
    for t in tests {
        let d = node_tests().join(t);
        if let Err(e) = run_on_vulkan(
            &d.join("model.onnx"),
            &d.join("test_data_set_0"),
            &dir.path().join(t),
            "0.0157",
        ) {
            failures.push(format!("{t}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
