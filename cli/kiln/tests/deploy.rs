//! Deployment: sealed artifacts refused without a signal when truncated,
//! altered or built for a CPU this one lacks; validated `--cpu`; several
//! models in one C program (CMake + Ninja, depfiles) and one Rust program
//! (kiln-build); reproducible artifacts; `.kir` that compiles to the same
//! artifact; `kiln config`.
//!
//! Expected model outputs come from ONNX Runtime (`testdata/models/*/
//! test_data_set_0`), never from an earlier Kiln run.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_LOG", "error");
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kiln"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

fn model(name: &str) -> PathBuf {
    repo().join("testdata/models").join(name).join("model.onnx")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "failed ({:?}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    o
}

fn compile(args: &[&str]) -> Output {
    kiln().arg("compile").args(args).output().unwrap()
}

/// Runs `kiln run` on the mlp's bundled input.
fn run_mlp(so: &Path, out: &Path) -> Output {
    kiln()
        .arg("run")
        .arg(so)
        .arg("--input-dir")
        .arg(repo().join("testdata/models/mlp/test_data_set_0"))
        .arg("--output-dir")
        .arg(out)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The exit code; a signal (SIGBUS, SIGSEGV, SIGILL) fails the test.
fn code(o: &Output) -> i32 {
    assert_eq!(
        o.status.signal(),
        None,
        "killed by a signal:\n{}",
        stderr(o)
    );
    o.status.code().unwrap()
}

#[test]
fn truncated_and_altered_artifacts_are_refused_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("m.so");
    ok(compile(&[s(&model("mlp")), "-o", s(&so), "--cpu=native"]));
    ok(run_mlp(&so, &dir.path().join("out")));
    let bytes = std::fs::read(&so).unwrap();
    // Cuts inside the ELF headers, the code, the weights and the record.
    for cut in [
        100,
        4096,
        bytes.len() / 2,
        bytes.len() - 40,
        bytes.len() - 1,
    ] {
        let bad = dir.path().join(format!("cut{cut}.so"));
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let o = run_mlp(&bad, &dir.path().join("o"));
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("cut{cut}.so")),
            "{}",
            stderr(&o)
        );
    }
    // One flipped bit anywhere (ELF header, relocations, code, weights).
    for at in [5, 64, 1000, bytes.len() / 3, bytes.len() - 200] {
        let mut altered = bytes.clone();
        altered[at] ^= 0x10;
        let bad = dir.path().join(format!("flip{at}.so"));
        std::fs::write(&bad, &altered).unwrap();
        let o = run_mlp(&bad, &dir.path().join("o"));
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("flip{at}.so")) && e.contains("corrupt artifact"),
            "{e}"
        );
    }
}

/// A CPU this machine cannot run, and the features it lacks, from
/// /proc/cpuinfo: an AMD CPU on an Intel host (no SSE4a), else a newer Intel
/// CPU (AVX-512, AMX).
fn foreign_cpu() -> (&'static str, &'static str) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap()
        .split_whitespace()
        .collect();
    if !flags.contains(&"sse4a") {
        ("znver3", "sse4a")
    } else if !flags.contains(&"avx512f") {
        ("sapphirerapids", "avx512f")
    } else {
        ("graniterapids", "amx-fp16")
    }
}

#[test]
fn an_artifact_for_a_cpu_this_one_lacks_is_refused_before_it_runs() {
    let (cpu, missing) = foreign_cpu();
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("foreign.so");
    ok(compile(&[
        s(&model("mlp")),
        "-o",
        s(&so),
        &format!("--cpu={cpu}"),
    ]));
    let o = run_mlp(&so, &dir.path().join("out"));
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(missing) && e.contains(cpu) && e.contains("foreign.so"),
        "{e}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn cpu_and_target_are_validated_with_one_message_and_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.so");
    let mlp = model("mlp");
    for args in [
        vec!["--cpu=bogus"],
        vec!["--target=aarch64", "--cpu=skylake"],
        vec!["--target=mips"],
    ] {
        let mut a = vec![s(&mlp), "-o", s(&out)];
        a.extend(args.iter().copied());
        let o = compile(&a);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(!e.contains("LLVM"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    let cpus = ok(compile(&["--print-cpus", "--target=aarch64"]));
    let text = String::from_utf8_lossy(&cpus.stdout);
    assert!(
        text.contains("neoverse-v1") && !text.contains("skylake"),
        "{text}"
    );
    let targets = ok(compile(&["--print-targets"]));
    let text = String::from_utf8_lossy(&targets.stdout);
    assert!(
        text.contains("x86_64") && text.contains("x86-64-v3"),
        "{text}"
    );
}

/// The shipped runtime (`build-c-lib.sh`), built once per test run into the
/// folder the C API test also uses.
fn runtime_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir().join("kiln-c-package");
        let out = target.join("kiln-c");
        ok(Command::new("bash")
            .arg(repo().join("runtime/scripts/build-c-lib.sh"))
            .arg(&out)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap());
        out.join("lib")
    })
}

/// Raw f32 files of an ONNX Runtime test set: (input, expected output).
fn raw_test_set(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let set = repo()
        .join("testdata/models")
        .join(name)
        .join("test_data_set_0");
    let mut paths = Vec::new();
    for f in ["input_0.pb", "output_0.pb"] {
        let t = kiln_driver::tensors::read_tensor(&set.join(f), "t").unwrap();
        let p = dir.join(format!("{name}_{f}.bin"));
        std::fs::write(&p, t.data.as_ref()).unwrap();
        paths.push(p);
    }
    (paths.remove(0), paths.remove(0))
}

#[test]
fn config_reports_the_runtime() {
    let lib = runtime_dir();
    let o = ok(kiln()
        .args(["config", "--cflags", "--libs", "--static"])
        .env("KILN_RUNTIME_DIR", lib)
        .output()
        .unwrap());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("libkiln_runtime.a") && text.contains("-I"),
        "{text}"
    );
    assert!(text.contains("-lpthread -ldl -lm"), "{text}");
    let none = kiln().arg("config").output().unwrap();
    assert_eq!(code(&none), 2);
}

#[test]
fn two_models_in_one_c_program_with_cmake_and_ninja() {
    let lib = runtime_dir();
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    let cmake = |args: &[&str]| {
        ok(Command::new("cmake")
            .args(args)
            .env("KILN_RUNTIME_DIR", lib)
            .output()
            .expect("cmake (scripts/setup.sh installs it)"))
    };
    cmake(&[
        "-G",
        "Ninja",
        "-S",
        s(&repo().join("examples/cmake")),
        "-B",
        s(&build),
        &format!("-DKILN={}", env!("CARGO_BIN_EXE_kiln")),
    ]);
    let first = cmake(&["--build", s(&build)]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("kiln compile mlp4"));
    let (a_in, a_out) = raw_test_set(dir.path(), "mlp");
    let (b_in, b_out) = raw_test_set(dir.path(), "mlp_dynamic");
    let run = ok(Command::new(build.join("two_models"))
        .args([&a_in, &a_out, &b_in, &b_out])
        .output()
        .unwrap());
    assert!(String::from_utf8_lossy(&run.stdout).contains("two_models: ok"));
    // Only the descriptor functions are global in the model objects.
    let nm = ok(Command::new("nm")
        .args(["-g", "--defined-only"])
        .arg(build.join("mlp.o"))
        .output()
        .unwrap());
    let globals: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    assert_eq!(globals, ["mlp_artifact"]);
    // The depfile lists the model: nothing to do until it changes.
    let again = cmake(&["--build", s(&build)]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("no work to do"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let deps = std::fs::read_to_string(build.join("mlp.d")).unwrap();
    assert!(deps.contains("mlp/model.onnx"), "{deps}");
}

#[test]
fn two_models_in_one_rust_program_with_kiln_build() {
    let dir = tempfile::tempdir().unwrap();
    let (a_in, a_out) = raw_test_set(dir.path(), "mlp");
    let (b_in, b_out) = raw_test_set(dir.path(), "mlp_dynamic");
    let manifest = repo().join("examples/kiln-build-demo/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let o = ok(Command::new(cargo)
        .args(["run", "--offline", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--")
        .args([&a_in, &a_out, &b_in, &b_out])
        .env("KILN", env!("CARGO_BIN_EXE_kiln"))
        .env("CARGO_TARGET_DIR", target_dir().join("kiln-build-demo"))
        .output()
        .unwrap());
    assert!(String::from_utf8_lossy(&o.stdout).contains("kiln-build-demo: ok"));
}

#[test]
fn artifacts_are_reproducible_across_folders_threads_time_and_the_object_cache() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let build = |sub: &str, threads: &str, epoch: &str, cache: &Path| -> Vec<Vec<u8>> {
        let dir = root.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let mut files = Vec::new();
        for (emit, out) in [("lib", "m.so"), ("obj", "m.o")] {
            let path = dir.join(out);
            ok(kiln()
                .arg("compile")
                .arg(model("mlp"))
                .args(["--emit", emit, "--no-runtime", "--name", "mlp", "-o"])
                .arg(&path)
                .env("KILN_NUM_THREADS", threads)
                .env("RAYON_NUM_THREADS", threads)
                .env("SOURCE_DATE_EPOCH", epoch)
                .env("KILN_CACHE_DIR", cache)
                .output()
                .unwrap());
            files.push(std::fs::read(&path).unwrap());
            files.push(std::fs::read(dir.join("mlp.h")).unwrap());
        }
        files
    };
    // Each kiln process also gets a fresh random hash seed for its maps. The first build fills
    // an empty object cache, the second reads it, the third has none.
    let a = build("a", "1", "1", &cache);
    let cached: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for prefix in ["parallel-shim-", "kiln_k_"] {
        assert!(
            cached
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(".o")),
            "no {prefix}* object was cached: {cached:?}"
        );
    }
    let b = build("deeper/folder b", "3", "2000000000", &cache);
    assert!(
        a == b,
        "artifacts differ between folders, thread counts or times"
    );
    let c = build("c", "1", "1", Path::new("off"));
    assert!(a == c, "artifacts differ with and without the object cache");
}

#[test]
fn a_written_kir_compiles_to_the_same_artifact_from_another_folder() {
    let dir = tempfile::tempdir().unwrap();
    let kir = dir.path().join("first/m.kir");
    std::fs::create_dir_all(kir.parent().unwrap()).unwrap();
    ok(compile(&[s(&model("mlp")), "--emit=kir", "-o", s(&kir)]));
    assert!(dir.path().join("first/m.kir.weights").is_file());
    // Through `kiln opt -o` into another folder: weights follow the file.
    let moved = dir.path().join("second/n.kir");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    ok(kiln()
        .args(["opt", s(&kir), "-o", s(&moved)])
        .output()
        .unwrap());
    let text = std::fs::read_to_string(&moved).unwrap();
    assert!(
        text.contains("file<\"n.kir.weights\"") && !text.contains("elided"),
        "{text}"
    );
    std::fs::remove_dir_all(dir.path().join("first")).unwrap();
    let from_kir = dir.path().join("k.so");
    let from_onnx = dir.path().join("o.so");
    let deps = dir.path().join("k.d");
    ok(compile(&[
        s(&moved),
        "-o",
        s(&from_kir),
        "--depfile",
        s(&deps),
    ]));
    ok(compile(&[s(&model("mlp")), "-o", s(&from_onnx)]));
    assert!(std::fs::read(&from_kir).unwrap() == std::fs::read(&from_onnx).unwrap());
    let d = std::fs::read_to_string(&deps).unwrap();
    assert!(
        d.contains("n.kir.weights") && d.starts_with(s(&from_kir)),
        "{d}"
    );
}

#[test]
fn header_names_never_overwrite_kiln_h() {
    let dir = tempfile::tempdir().unwrap();
    let o = compile(&[
        s(&model("mlp")),
        "--emit=obj",
        "--no-runtime",
        "-o",
        s(&dir.path().join("kiln.o")),
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("kiln.h"));
    let bad = compile(&[
        s(&model("mlp")),
        "--name",
        "9lives",
        "-o",
        s(&dir.path().join("x.so")),
    ]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
}

#[test]
fn file_system_errors_exit_2_with_plain_messages() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let so = dir.path().join("m.so");
    ok(compile(&[s(&model("mlp")), "-o", s(&so), "--cpu=native"]));
    let o = run_mlp(&so, &file);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let c = compile(&[s(&model("mlp")), "-o", s(&file.join("x.so"))]);
    assert_eq!(code(&c), 2, "{}", stderr(&c));
    for e in [stderr(&o), stderr(&c)] {
        assert!(e.contains("a-file") && !e.contains(".kiln-"), "{e}");
    }
    // Outputs appear whole, with the usual permissions, and nothing else.
    let out = dir.path().join("out");
    ok(run_mlp(&so, &out));
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["probs.npy"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("probs.npy"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o044, 0, "{mode:o}");
}

#[test]
fn a_closed_pipe_on_a_text_stage_is_not_an_error() {
    use std::io::Read;
    let mut child = kiln()
        .args(["compile", s(&model("mlp")), "--emit=llvm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // stdout is dropped (closed) here, like `| head -c 16`.
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// `--cpu=A,B`: one library per CPU, the runtime loads the last one this
/// CPU can run. Which one it loaded is shown by `run -v`, and proven by
/// damaging the files: a damaged chosen build is refused by name, a
/// damaged build for a CPU this one lacks is never opened.
#[test]
fn multi_versioned_artifacts_load_the_best_build_this_cpu_can_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (foreign, _) = foreign_cpu();
    // Every x86-64 machine runs x86-64, and any x86-64 CPU of the last 15
    // years x86-64-v2 (SSE4.2, POPCNT).
    let so = d.join("m.so");
    ok(compile(&[
        s(&model("mlp")),
        "-o",
        s(&so),
        "--cpu=x86-64,x86-64-v2",
        "--weights=external",
    ]));
    for f in [
        "m.so",
        "m.so.weights",
        "m.so.x86-64-v2",
        "m.so.x86-64-v2.weights",
    ] {
        assert!(d.join(f).is_file(), "{f}");
    }
    let run = |so: &Path| {
        kiln()
            .env("KILN_LOG", "kiln=info")
            .arg("run")
            .arg(so)
            .arg("--input-dir")
            .arg(repo().join("testdata/models/mlp/test_data_set_0"))
            .arg("--output-dir")
            .arg(d.join("out"))
            .arg("--expected")
            .arg(repo().join("testdata/models/mlp/test_data_set_0"))
            .output()
            .unwrap()
    };
    let o = ok(run(&so));
    assert!(stderr(&o).contains("cpu=\"x86-64-v2\""), "{}", stderr(&o));
    let flip = |path: &Path| {
        let mut b = std::fs::read(path).unwrap();
        b[4000] ^= 1;
        std::fs::write(path, b).unwrap();
    };
    flip(&d.join("m.so.x86-64-v2"));
    let o = run(&so);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("m.so.x86-64-v2"), "{}", stderr(&o));

    // A build for a CPU this one lacks is skipped: the baseline runs even
    // when that build is damaged.
    let so2 = d.join("n.so");
    ok(compile(&[
        s(&model("mlp")),
        "-o",
        s(&so2),
        &format!("--cpu=x86-64,{foreign}"),
    ]));
    let alt = d.join(format!("n.so.{foreign}"));
    flip(&alt);
    let o = ok(run(&so2));
    assert!(stderr(&o).contains("cpu=\"x86-64\""), "{}", stderr(&o));
    // Deleting it makes no difference either; swapping in another file
    // under the chosen build's name does (size and checksum are recorded).
    std::fs::remove_file(&alt).unwrap();
    ok(run(&so2));

    // Reproducible: another folder gives the same bytes for every file.
    let other = d.join("again");
    std::fs::create_dir(&other).unwrap();
    let so3 = other.join("m.so");
    ok(compile(&[
        s(&model("mlp")),
        "-o",
        s(&so3),
        "--cpu=x86-64,x86-64-v2",
        "--weights=external",
    ]));
    ok(compile(&[
        s(&model("mlp")),
        "-o",
        s(&so),
        "--cpu=x86-64,x86-64-v2",
        "--weights=external",
    ]));
    for f in ["m.so", "m.so.x86-64-v2", "m.so.x86-64-v2.weights"] {
        assert_eq!(
            std::fs::read(d.join(f)).unwrap(),
            std::fs::read(other.join(f)).unwrap(),
            "{f}"
        );
    }
    // Only shared libraries, and each CPU once.
    let o = compile(&[
        s(&model("mlp")),
        "--emit=obj",
        "-o",
        s(&d.join("m.o")),
        "--cpu=x86-64,x86-64-v2",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = compile(&[
        s(&model("mlp")),
        "-o",
        s(&d.join("k.so")),
        "--cpu=x86-64,x86-64",
    ]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(!d.join("k.so").exists());
}

/// Whether a Vulkan driver (Mesa's lavapipe here) is installed: its ICD manifest.
fn vulkan_icd() -> bool {
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|d| {
            std::fs::read_dir(d).is_ok_and(|mut e| {
                e.any(|f| f.is_ok_and(|f| f.path().extension().is_some_and(|x| x == "json")))
            })
        })
}

/// The C API's device memory on a Vulkan artifact (lavapipe): a chosen device, buffers
/// allocated from the model, a run on device pointers that matches ONNX Runtime and the
/// host-pointer run, and the misuse paths (`testdata/c/run_device.c`).
#[test]
fn device_memory_runs_through_the_c_api() {
    if !vulkan_icd() {
        eprintln!("skipped: no Vulkan driver (scripts/setup.sh installs mesa-vulkan-drivers)");
        return;
    }
    let lib = runtime_dir();
    let dir = tempfile::tempdir().unwrap();
    let gpu = dir.path().join("mlp_vk.so");
    let cpu = dir.path().join("mlp_cpu.so");
    ok(compile(&[
        s(&model("mlp")),
        "--target=vulkan",
        "-o",
        s(&gpu),
    ]));
    ok(compile(&[s(&model("mlp")), "-o", s(&cpu)]));
    let (x, y) = raw_test_set(dir.path(), "mlp");
    let exe = dir.path().join("run_device");
    let include = lib.parent().unwrap().join("include");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    ok(Command::new(cc)
        .args(["-std=c11", "-Wall", "-Werror", "-O1"])
        .arg(format!("-I{}", include.display()))
        .arg(repo().join("testdata/c/run_device.c"))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.display()))
        .arg("-lkiln_runtime")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lm")
        .output()
        .unwrap());
    let run = ok(Command::new(&exe)
        .args([&gpu, &cpu, &x, &y])
        .output()
        .unwrap());
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "ok");

    // The same through the Rust API.
    let opts = kiln_runtime::LoadOptions { device: Some(0) };
    let m = kiln_runtime::Model::load_with(&gpu, &opts).unwrap();
    assert!(m.is_device());
    let (input, output) = (m.inputs()[0].clone(), m.outputs()[0].clone());
    let xb = std::fs::read(&x).unwrap();
    let yb = std::fs::read(&y).unwrap();
    let dx = m.device_alloc(xb.len() as u64).unwrap();
    let dy = m.device_alloc(yb.len() as u64).unwrap();
    m.device_upload(dx, &xb).unwrap();
    let t = |info: &kiln_runtime::TensorInfo, address: u64, bytes: usize| {
        (info.dtype(), info.shape().to_vec(), address, bytes as u64)
    };
    let (idt, ishape, ia, ib) = t(&input, dx, xb.len());
    let (odt, oshape, oa, ob) = t(&output, dy, yb.len());
    fn dev(
        dtype: kiln_runtime::DType,
        shape: &[i64],
        address: u64,
        bytes: u64,
    ) -> kiln_runtime::DeviceTensor<'_> {
        kiln_runtime::DeviceTensor {
            dtype,
            shape,
            address,
            bytes,
        }
    }
    m.run_device(&[dev(idt, &ishape, ia, ib)], &[dev(odt, &oshape, oa, ob)])
        .unwrap();
    let mut got = vec![0u8; yb.len()];
    m.device_download(dy, &mut got).unwrap();
    let f = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (got, want) = (f(&got), f(&yb));
    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * scale, "{g} vs ONNX Runtime's {w}");
    }
    // A host address is not a device allocation.
    let host = xb.as_ptr() as u64;
    let e = m
        .run_device(&[dev(idt, &ishape, host, ib)], &[dev(odt, &oshape, oa, ob)])
        .unwrap_err();
    assert!(e.to_string().contains("not a device allocation"), "{e}");
    m.device_free(dx).unwrap();
    assert!(m.device_free(dx).is_err());
}
