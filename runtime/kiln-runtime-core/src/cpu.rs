//! Whether this CPU can run an artifact: its architecture and the CPU
//! features the artifact's code was generated for, checked before any of
//! that code runs (from the integrity record before `dlopen`, or from the
//! descriptor's target record for a statically linked artifact).
//!
//! Feature names are LLVM's (`avx2`, `avx512f`, `sse4a`, `neon`, `sve`).
//! Detection uses `cpuid`/`xgetbv` on x86-64 (a vector feature counts only
//! when the OS saves its registers, as XCR0 says) and `getauxval(AT_HWCAP)`
//! on AArch64 Linux. A recorded name with no entry in this module's tables
//! (LLVM's tuning flags such as `fast-gather`, or a feature newer than this
//! runtime) cannot be checked and is not reported.

use crate::error::Error;
use alloc::string::String;
use alloc::vec::Vec;

/// The architecture name of this process (as recorded in artifacts).
pub fn host_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        "unknown"
    }
}

/// `Ok(Some(true|false))` for a feature this runtime can detect, `None`
/// for one it cannot.
fn has_feature(name: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        x86::has(name)
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    {
        arm::has(name)
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_os = "linux")
    )))]
    {
        let _ = name;
        None
    }
}

/// The features of `features` (comma-separated, optional `+` prefixes;
/// `-name` entries are ignored) that this CPU lacks.
pub fn missing_features(features: &str) -> Vec<String> {
    let mut missing: Vec<String> = features
        .split(',')
        .map(|f| f.trim().trim_start_matches('+'))
        .filter(|f| !f.is_empty() && !f.starts_with('-'))
        .filter(|f| has_feature(f) == Some(false))
        .map(String::from)
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Refuses an artifact built for another architecture or for features this
/// CPU lacks; `what` names the artifact in the message.
pub fn check(what: &str, arch: &str, cpu: &str, features: &str) -> Result<(), Error> {
    let host = host_arch();
    if arch != host {
        return Err(Error::UnsupportedCpu(alloc::format!(
            "{what} was built for {arch} (cpu '{cpu}'); this machine is {host}"
        )));
    }
    let missing = missing_features(features);
    if !missing.is_empty() {
        return Err(Error::UnsupportedCpu(alloc::format!(
            "{what} was built for cpu '{cpu}' and needs CPU features this machine lacks: {} \
             (rebuild it with a lower --cpu, e.g. --cpu={}, or --cpu=native on this machine)",
            missing.join(", "),
            if host == "aarch64" {
                "generic"
            } else {
                "x86-64-v2"
            }
        )));
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! cpuid leaves and bits of LLVM's x86 feature names.
    use core::arch::x86_64::{__cpuid_count, _xgetbv, CpuidResult};

    #[derive(Clone, Copy)]
    enum Reg {
        Eax,
        Ebx,
        Ecx,
        Edx,
    }

    /// Register state the OS must save for a feature to be usable (XCR0).
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        None,
        /// SSE + AVX (XCR0 bits 1, 2).
        Ymm,
        /// Plus opmask and the upper ZMM registers (bits 5, 6, 7).
        Zmm,
        /// Plus AMX tile config and data (bits 17, 18).
        Amx,
    }

    use Reg::*;
    use State::*;

    /// (LLVM name, leaf, subleaf, register, bit, OS state).
    const TABLE: &[(&str, u32, u32, Reg, u32, State)] = &[
        ("x87", 1, 0, Edx, 0, None),
        ("cx8", 1, 0, Edx, 8, None),
        ("cmov", 1, 0, Edx, 15, None),
        ("mmx", 1, 0, Edx, 23, None),
        ("fxsr", 1, 0, Edx, 24, None),
        ("sse", 1, 0, Edx, 25, None),
        ("sse2", 1, 0, Edx, 26, None),
        ("sse3", 1, 0, Ecx, 0, None),
        ("pclmul", 1, 0, Ecx, 1, None),
        ("ssse3", 1, 0, Ecx, 9, None),
        ("fma", 1, 0, Ecx, 12, Ymm),
        ("cx16", 1, 0, Ecx, 13, None),
        ("sse4.1", 1, 0, Ecx, 19, None),
        ("sse4.2", 1, 0, Ecx, 20, None),
        ("crc32", 1, 0, Ecx, 20, None),
        ("movbe", 1, 0, Ecx, 22, None),
        ("popcnt", 1, 0, Ecx, 23, None),
        ("aes", 1, 0, Ecx, 25, None),
        ("xsave", 1, 0, Ecx, 26, None),
        ("avx", 1, 0, Ecx, 28, Ymm),
        ("f16c", 1, 0, Ecx, 29, Ymm),
        ("rdrnd", 1, 0, Ecx, 30, None),
        ("fsgsbase", 7, 0, Ebx, 0, None),
        ("sgx", 7, 0, Ebx, 2, None),
        ("bmi", 7, 0, Ebx, 3, None),
        ("avx2", 7, 0, Ebx, 5, Ymm),
        ("bmi2", 7, 0, Ebx, 8, None),
        ("invpcid", 7, 0, Ebx, 10, None),
        ("rtm", 7, 0, Ebx, 11, None),
        ("avx512f", 7, 0, Ebx, 16, Zmm),
        ("evex512", 7, 0, Ebx, 16, Zmm),
        ("avx512dq", 7, 0, Ebx, 17, Zmm),
        ("rdseed", 7, 0, Ebx, 18, None),
        ("adx", 7, 0, Ebx, 19, None),
        ("avx512ifma", 7, 0, Ebx, 21, Zmm),
        ("clflushopt", 7, 0, Ebx, 23, None),
        ("clwb", 7, 0, Ebx, 24, None),
        ("avx512cd", 7, 0, Ebx, 28, Zmm),
        ("sha", 7, 0, Ebx, 29, None),
        ("avx512bw", 7, 0, Ebx, 30, Zmm),
        ("avx512vl", 7, 0, Ebx, 31, Zmm),
        ("prefetchwt1", 7, 0, Ecx, 0, None),
        ("avx512vbmi", 7, 0, Ecx, 1, Zmm),
        ("pku", 7, 0, Ecx, 3, None),
        ("waitpkg", 7, 0, Ecx, 5, None),
        ("avx512vbmi2", 7, 0, Ecx, 6, Zmm),
        ("shstk", 7, 0, Ecx, 7, None),
        ("gfni", 7, 0, Ecx, 8, None),
        ("vaes", 7, 0, Ecx, 9, Ymm),
        ("vpclmulqdq", 7, 0, Ecx, 10, Ymm),
        ("avx512vnni", 7, 0, Ecx, 11, Zmm),
        ("avx512bitalg", 7, 0, Ecx, 12, Zmm),
        ("avx512vpopcntdq", 7, 0, Ecx, 14, Zmm),
        ("rdpid", 7, 0, Ecx, 22, None),
        ("kl", 7, 0, Ecx, 23, None),
        ("cldemote", 7, 0, Ecx, 25, None),
        ("movdiri", 7, 0, Ecx, 27, None),
        ("movdir64b", 7, 0, Ecx, 28, None),
        ("enqcmd", 7, 0, Ecx, 29, None),
        ("uintr", 7, 0, Edx, 5, None),
        ("avx512vp2intersect", 7, 0, Edx, 8, Zmm),
        ("serialize", 7, 0, Edx, 14, None),
        ("tsxldtrk", 7, 0, Edx, 16, None),
        ("pconfig", 7, 0, Edx, 18, None),
        ("amx-bf16", 7, 0, Edx, 22, Amx),
        ("avx512fp16", 7, 0, Edx, 23, Zmm),
        ("amx-tile", 7, 0, Edx, 24, Amx),
        ("amx-int8", 7, 0, Edx, 25, Amx),
        ("sha512", 7, 1, Eax, 0, Ymm),
        ("sm3", 7, 1, Eax, 1, None),
        ("sm4", 7, 1, Eax, 2, Ymm),
        ("raoint", 7, 1, Eax, 3, None),
        ("avxvnni", 7, 1, Eax, 4, Ymm),
        ("avx512bf16", 7, 1, Eax, 5, Zmm),
        ("cmpccxadd", 7, 1, Eax, 7, None),
        ("amx-fp16", 7, 1, Eax, 21, Amx),
        ("hreset", 7, 1, Eax, 22, None),
        ("avxifma", 7, 1, Eax, 23, Ymm),
        ("avxvnniint8", 7, 1, Edx, 4, Ymm),
        ("avxneconvert", 7, 1, Edx, 5, Ymm),
        ("amx-complex", 7, 1, Edx, 8, Amx),
        ("avxvnniint16", 7, 1, Edx, 10, Ymm),
        ("prefetchi", 7, 1, Edx, 14, None),
        // AMD reports PREFETCHIT0/1 here instead (Zen 5), as LLVM's host
        // detection reads it.
        ("prefetchi", 0x8000_0021, 0, Eax, 20, None),
        ("xsaveopt", 0xd, 1, Eax, 0, None),
        ("xsavec", 0xd, 1, Eax, 1, None),
        ("xsaves", 0xd, 1, Eax, 3, None),
        ("ptwrite", 0x14, 0, Ebx, 4, None),
        ("sahf", 0x8000_0001, 0, Ecx, 0, None),
        ("lzcnt", 0x8000_0001, 0, Ecx, 5, None),
        ("sse4a", 0x8000_0001, 0, Ecx, 6, None),
        ("prfchw", 0x8000_0001, 0, Ecx, 8, None),
        ("xop", 0x8000_0001, 0, Ecx, 11, Ymm),
        ("lwp", 0x8000_0001, 0, Ecx, 15, None),
        ("fma4", 0x8000_0001, 0, Ecx, 16, Ymm),
        ("tbm", 0x8000_0001, 0, Ecx, 21, None),
        ("mwaitx", 0x8000_0001, 0, Ecx, 29, None),
        ("64bit", 0x8000_0001, 0, Edx, 29, None),
        ("clzero", 0x8000_0008, 0, Ebx, 0, None),
        ("wbnoinvd", 0x8000_0008, 0, Ebx, 9, None),
    ];

    fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
        // Leaves above the maximum the CPU reports read as zero: ask first.
        let base = leaf & 0x8000_0000;
        let max = __cpuid_count(base, 0).eax;
        if leaf > max {
            return CpuidResult {
                eax: 0,
                ebx: 0,
                ecx: 0,
                edx: 0,
            };
        }
        __cpuid_count(leaf, sub)
    }

    /// XCR0, or 0 when the OS has not enabled XSAVE.
    fn xcr0() -> u64 {
        if cpuid(1, 0).ecx & (1 << 27) == 0 {
            return 0;
        }
        // SAFETY: OSXSAVE is set, so xgetbv is available.
        unsafe { xgetbv0() }
    }

    #[target_feature(enable = "xsave")]
    unsafe fn xgetbv0() -> u64 {
        // SAFETY: the caller checked OSXSAVE.
        unsafe { _xgetbv(0) }
    }

    fn state_enabled(state: State) -> bool {
        let x = xcr0();
        let ymm = x & 0b110 == 0b110;
        match state {
            None => true,
            Ymm => ymm,
            Zmm => ymm && x & 0xe0 == 0xe0,
            Amx => ymm && x & (0b11 << 17) == (0b11 << 17),
        }
    }

    /// Whether the CPU has feature `name` (`None`: not in the table). A
    /// feature listed more than once (Intel's and AMD's CPUID bit) is
    /// present when any of its bits is set.
    pub(super) fn has(name: &str) -> Option<bool> {
        let mut entries = TABLE.iter().filter(|e| e.0 == name).peekable();
        entries.peek()?;
        Some(entries.any(|&(_, leaf, sub, reg, bit, state)| {
            let r = cpuid(leaf, sub);
            let word = match reg {
                Eax => r.eax,
                Ebx => r.ebx,
                Ecx => r.ecx,
                Edx => r.edx,
            };
            word & (1 << bit) != 0 && state_enabled(state)
        }))
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod arm {
    //! Linux HWCAP bits of LLVM's AArch64 feature names.

    /// (LLVM name, 1 = AT_HWCAP / 2 = AT_HWCAP2, bit).
    const TABLE: &[(&str, u32, u32)] = &[
        ("fp-armv8", 1, 0),
        ("neon", 1, 1),
        ("aes", 1, 3),
        ("sha2", 1, 6),
        ("crc", 1, 7),
        ("lse", 1, 8),
        ("fullfp16", 1, 10),
        ("rdm", 1, 12),
        ("jsconv", 1, 13),
        ("complxnum", 1, 14),
        ("rcpc", 1, 15),
        ("ccpp", 1, 16),
        ("sha3", 1, 17),
        ("sm4", 1, 19),
        ("dotprod", 1, 20),
        ("sve", 1, 22),
        ("fp16fml", 1, 23),
        ("dit", 1, 24),
        ("rcpc-immo", 1, 26),
        ("flagm", 1, 27),
        ("ssbs", 1, 28),
        ("sb", 1, 29),
        ("pauth", 1, 30),
        ("ccdp", 2, 0),
        ("sve2", 2, 1),
        ("sve-aes", 2, 2),
        ("sve2-bitperm", 2, 4),
        ("sve2-sha3", 2, 5),
        ("sve2-sm4", 2, 6),
        ("altnzcv", 2, 7),
        ("fptoint", 2, 8),
        ("i8mm", 2, 13),
        ("bf16", 2, 14),
        ("rand", 2, 16),
        ("bti", 2, 17),
        ("mte", 2, 18),
        ("sme", 2, 23),
    ];

    pub(super) fn has(name: &str) -> Option<bool> {
        let &(_, word, bit) = TABLE.iter().find(|e| e.0 == name)?;
        let at = if word == 1 {
            libc::AT_HWCAP
        } else {
            libc::AT_HWCAP2
        };
        // SAFETY: getauxval has no preconditions.
        let caps = unsafe { libc::getauxval(at) };
        Some(caps & (1 << bit) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_baseline_is_present_and_tuning_flags_are_not_reported() {
        // Every x86-64 CPU has these.
        assert!(missing_features("64bit,cmov,cx8,sse,sse2,fxsr,x87").is_empty());
        assert!(missing_features("+sse2,-avx512f,fast-gather,slow-3ops-lea").is_empty());
        assert_eq!(has_feature("no-such-feature"), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_detection_agrees_with_std() {
        // std's runtime detection is an independent implementation.
        let pairs = [
            ("avx", std::is_x86_feature_detected!("avx")),
            ("avx2", std::is_x86_feature_detected!("avx2")),
            ("fma", std::is_x86_feature_detected!("fma")),
            ("avx512f", std::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
            ("sse4a", std::is_x86_feature_detected!("sse4a")),
            ("bmi2", std::is_x86_feature_detected!("bmi2")),
            ("lzcnt", std::is_x86_feature_detected!("lzcnt")),
            ("sha", std::is_x86_feature_detected!("sha")),
        ];
        for (name, expected) in pairs {
            assert_eq!(has_feature(name), Some(expected), "{name}");
        }
    }

    #[test]
    fn another_architecture_is_refused_by_name() {
        let err = check("m.so", "mips", "generic", "").unwrap_err();
        assert!(err.to_string().contains("built for mips"), "{err}");
        assert!(check("m.so", host_arch(), "generic", "").is_ok());
    }
}
