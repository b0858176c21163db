//! The artifact integrity record ("seal"): a trailer the compiler appends to
//! every artifact shared library after linking, which the runtime reads and
//! checks *before* `dlopen`, so a truncated, altered or foreign file is
//! refused with a typed error instead of crashing the loader (SIGBUS on a
//! truncated segment, SIGSEGV on a corrupt relocation) or running code the
//! CPU cannot execute (SIGILL).
//!
//! Layout (all integers little-endian), appended after the ELF file, which
//! ELF loaders ignore because no segment or section points there:
//!
//! ```text
//! trailer start (= payload length)
//!   [0, 8)    magic "KILNSEAL"
//!   [8, 12)   record format version (1)
//!   [12, 16)  artifact ABI version (kiln.h's KILN_ABI_VERSION)
//!   [16, 24)  payload length: bytes of the file before the trailer
//!   [24, 32)  external weights file: size in bytes (0 when none)
//!   [32, 40)  external weights file: xxh3-64 of its bytes (0 when none)
//!   then four strings, each a u32 byte length and UTF-8 bytes:
//!     descriptor symbol ("kiln_artifact", or "<name>_artifact")
//!     architecture ("x86_64", "aarch64")
//!     LLVM CPU name the code was generated for ("x86-64-v3", "znver4")
//!     required CPU features, comma-separated LLVM names ("avx2,fma,...")
//!   format 2 only (a multi-versioned artifact, `--cpu=A,B`): a u32 count
//!   of alternates, then for each, in increasing preference: three strings
//!   (file name beside this one, CPU, features) and the alternate file's
//!   size and xxh3-64 (u64 each)
//! footer, the last 24 bytes of the file:
//!   [-24, -16) trailer length (from its magic to the end of the file)
//!   [-16, -8)  magic "KILNSEAL" again
//!   [-8, end)  xxh3-64 of every byte of the file before this field
//! ```
//!
//! Invariants:
//! - The checksum covers the whole ELF file (code, descriptor, embedded
//!   weights) and the record itself, so any truncation or flipped byte is
//!   detected. It is an integrity check against damage, not a signature: it
//!   does not stop a deliberate forger, who can recompute it.
//! - The record is deterministic (no time stamps, no paths), so sealed
//!   artifacts stay byte-identical across output folders and machines.
//! - One implementation: the compiler writes records with [`Sealer`] and the
//!   runtime reads them with [`verify`]; there is no second copy.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Leading and trailing magic of the record.
pub const MAGIC: &[u8; 8] = b"KILNSEAL";

/// Version of the record layout described above: 1, or 2 when the record
/// lists alternates (older runtimes refuse those with a clear message).
pub const FORMAT_VERSION: u32 = 2;

/// Bytes of the fixed footer at the end of the file.
pub const FOOTER_LEN: usize = 24;

/// Largest record accepted (strings included); larger lengths mean a
/// corrupt or foreign file.
pub const MAX_TRAILER_LEN: u64 = 1 << 20;

const FIXED_LEN: usize = 40;

/// What a record says about its artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `KILN_ABI_VERSION` of the descriptor inside.
    pub abi_version: u32,
    /// The symbol of the descriptor function (`kiln_artifact` by default).
    pub symbol: String,
    /// Architecture name (`x86_64`, `aarch64`).
    pub arch: String,
    /// The LLVM CPU the code was generated for.
    pub cpu: String,
    /// Comma-separated LLVM feature names the code may use.
    pub features: String,
    /// Size and checksum of the external weights file, if any.
    pub weights: Option<WeightsSeal>,
    /// Other builds of the same model for other CPUs (`--cpu=A,B`), in
    /// increasing preference; the runtime loads the most preferred one this
    /// CPU can run, else this file.
    pub alternates: Vec<Alternate>,
}

/// One alternate build of a multi-versioned artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternate {
    /// Its file name, in the same folder (no path separators).
    pub file: String,
    /// The LLVM CPU it was generated for.
    pub cpu: String,
    /// Comma-separated LLVM feature names it may use.
    pub features: String,
    /// Size of the whole file (sealed).
    pub size: u64,
    /// xxh3-64 of the whole file, binding it to this record.
    pub hash: u64,
}

/// Size and xxh3-64 checksum of an external weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightsSeal {
    pub size: u64,
    pub hash: u64,
}

/// Why a file's record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// No record at the end: not a Kiln artifact, or cut short.
    Missing,
    /// The record's lengths do not fit the file (truncated or padded).
    BadLength,
    /// The checksum differs: the file was altered or damaged.
    Checksum { stored: u64, computed: u64 },
    /// A record format this runtime does not know.
    Version(u32),
    /// The record's fields are malformed.
    Malformed(&'static str),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Missing => f.write_str(
                "no Kiln integrity record at the end of the file (not a Kiln artifact, or truncated)",
            ),
            SealError::BadLength => f.write_str(
                "the integrity record does not match the file's length (truncated or padded)",
            ),
            SealError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (recorded {stored:#018x}, file has {computed:#018x}): \
                 the file was altered or damaged"
            ),
            SealError::Version(v) => write!(
                f,
                "integrity record format {v} is newer than this runtime's ({FORMAT_VERSION})"
            ),
            SealError::Malformed(what) => write!(f, "malformed integrity record: {what}"),
        }
    }
}

/// xxh3-64 of `bytes` (the checksum used for external weights).
pub fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Streams a payload, then produces the trailer to append to it.
pub struct Sealer {
    state: xxhash_rust::xxh3::Xxh3,
    len: u64,
}

impl Default for Sealer {
    fn default() -> Self {
        Sealer::new()
    }
}

impl Sealer {
    pub fn new() -> Sealer {
        Sealer {
            state: xxhash_rust::xxh3::Xxh3::new(),
            len: 0,
        }
    }

    /// Adds the next bytes of the payload (the linked ELF file).
    pub fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// The trailer for the payload streamed so far.
    pub fn finish(mut self, record: &Record) -> Vec<u8> {
        let mut t = Vec::with_capacity(128);
        t.extend_from_slice(MAGIC);
        // Format 1 unless there are alternates, so that single builds stay
        // loadable by older runtimes.
        let version: u32 = if record.alternates.is_empty() { 1 } else { 2 };
        t.extend_from_slice(&version.to_le_bytes());
        t.extend_from_slice(&record.abi_version.to_le_bytes());
        t.extend_from_slice(&self.len.to_le_bytes());
        let w = record.weights.unwrap_or(WeightsSeal { size: 0, hash: 0 });
        t.extend_from_slice(&w.size.to_le_bytes());
        t.extend_from_slice(&w.hash.to_le_bytes());
        let put = |t: &mut Vec<u8>, s: &str| {
            t.extend_from_slice(&(s.len() as u32).to_le_bytes());
            t.extend_from_slice(s.as_bytes());
        };
        for s in [&record.symbol, &record.arch, &record.cpu, &record.features] {
            put(&mut t, s);
        }
        if version == 2 {
            t.extend_from_slice(&(record.alternates.len() as u32).to_le_bytes());
            for a in &record.alternates {
                for s in [&a.file, &a.cpu, &a.features] {
                    put(&mut t, s);
                }
                t.extend_from_slice(&a.size.to_le_bytes());
                t.extend_from_slice(&a.hash.to_le_bytes());
            }
        }
        let total = (t.len() + FOOTER_LEN) as u64;
        t.extend_from_slice(&total.to_le_bytes());
        t.extend_from_slice(MAGIC);
        self.state.update(&t);
        let sum = self.state.digest();
        t.extend_from_slice(&sum.to_le_bytes());
        t
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks the record at the end of `file` (the whole artifact) and returns
/// it. The checksum is verified before any field is trusted.
pub fn verify(file: &[u8]) -> Result<Record, SealError> {
    let n = file.len();
    if n < FOOTER_LEN || &file[n - 16..n - 8] != MAGIC {
        return Err(SealError::Missing);
    }
    let trailer_len = u64_at(file, n - FOOTER_LEN);
    if trailer_len > MAX_TRAILER_LEN
        || trailer_len < (FIXED_LEN + FOOTER_LEN) as u64
        || trailer_len > n as u64
    {
        return Err(SealError::BadLength);
    }
    let start = n - trailer_len as usize;
    if &file[start..start + 8] != MAGIC {
        return Err(SealError::BadLength);
    }
    let stored = u64_at(file, n - 8);
    let computed = hash(&file[..n - 8]);
    if stored != computed {
        return Err(SealError::Checksum { stored, computed });
    }
    let t = &file[start..n - FOOTER_LEN];
    let version = u32_at(t, 8);
    if version == 0 || version > FORMAT_VERSION {
        return Err(SealError::Version(version));
    }
    if u64_at(t, 16) != start as u64 {
        return Err(SealError::BadLength);
    }
    let (size, wh) = (u64_at(t, 24), u64_at(t, 32));
    let mut at = FIXED_LEN;
    let mut strings: [String; 4] = Default::default();
    for s in &mut strings {
        *s = read_string(t, &mut at)?;
    }
    let mut alternates = Vec::new();
    if version == 2 {
        let count = read_u32(t, &mut at)?;
        for _ in 0..count {
            let file = read_string(t, &mut at)?;
            let cpu = read_string(t, &mut at)?;
            let features = read_string(t, &mut at)?;
            let size = read_u64(t, &mut at)?;
            let hash = read_u64(t, &mut at)?;
            if file.is_empty() || file.contains(['/', '\\', '\0']) || file == ".." {
                return Err(SealError::Malformed("bad alternate file name"));
            }
            alternates.push(Alternate {
                file,
                cpu,
                features,
                size,
                hash,
            });
        }
    }
    if at != t.len() {
        return Err(SealError::Malformed("bytes after the last string"));
    }
    let [symbol, arch, cpu, features] = strings;
    if symbol.is_empty() || symbol.contains('\0') {
        return Err(SealError::Malformed("bad descriptor symbol"));
    }
    Ok(Record {
        abi_version: u32_at(t, 12),
        symbol,
        arch,
        cpu,
        features,
        weights: (size != 0 || wh != 0).then_some(WeightsSeal { size, hash: wh }),
        alternates,
    })
}

const RUN_PAST: SealError = SealError::Malformed("fields run past the record");

fn read_u32(t: &[u8], at: &mut usize) -> Result<u32, SealError> {
    let v = t.get(*at..at.saturating_add(4)).ok_or(RUN_PAST)?;
    *at += 4;
    Ok(u32_at(v, 0))
}

fn read_u64(t: &[u8], at: &mut usize) -> Result<u64, SealError> {
    let v = t.get(*at..at.saturating_add(8)).ok_or(RUN_PAST)?;
    *at += 8;
    Ok(u64_at(v, 0))
}

fn read_string(t: &[u8], at: &mut usize) -> Result<String, SealError> {
    let len = read_u32(t, at)? as usize;
    let bytes = t.get(*at..at.saturating_add(len)).ok_or(RUN_PAST)?;
    *at += len;
    core::str::from_utf8(bytes)
        .map(String::from)
        .map_err(|_| SealError::Malformed("a string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn record() -> Record {
        Record {
            abi_version: 1,
            symbol: "mlp_artifact".into(),
            arch: "x86_64".into(),
            cpu: "x86-64-v3".into(),
            features: "avx,avx2,fma".into(),
            weights: Some(WeightsSeal { size: 12, hash: 7 }),
            alternates: Vec::new(),
        }
    }

    fn multi() -> Record {
        let mut r = record();
        r.alternates = vec![Alternate {
            file: "mlp.so.x86-64-v4".into(),
            cpu: "x86-64-v4".into(),
            features: "avx512f,avx512bw".into(),
            size: 4096,
            hash: 0x1234,
        }];
        r
    }

    fn sealed(payload: &[u8], r: &Record) -> Vec<u8> {
        let mut s = Sealer::new();
        // Two updates: streaming must equal one-shot hashing.
        let (a, b) = payload.split_at(payload.len() / 2);
        s.update(a);
        s.update(b);
        let mut file = payload.to_vec();
        file.extend(s.finish(r));
        file
    }

    #[test]
    fn round_trips() {
        let file = sealed(b"\x7fELF and some code", &record());
        assert_eq!(verify(&file), Ok(record()));
        let mut no_weights = record();
        no_weights.weights = None;
        assert_eq!(verify(&sealed(b"", &no_weights)), Ok(no_weights));
        // Alternates need format 2; a single build stays format 1.
        let file = sealed(b"\x7fELF", &multi());
        assert_eq!(verify(&file), Ok(multi()));
        let version_at = |f: &[u8]| {
            let start = f.len() - u64_at(f, f.len() - FOOTER_LEN) as usize;
            u32_at(f, start + 8)
        };
        assert_eq!(version_at(&file), 2);
        assert_eq!(version_at(&sealed(b"\x7fELF", &record())), 1);
    }

    #[test]
    fn alternate_names_stay_in_the_folder() {
        for bad in ["", "../x.so", "a/b.so", ".."] {
            let mut r = multi();
            r.alternates[0].file = bad.into();
            assert_eq!(
                verify(&sealed(b"x", &r)),
                Err(SealError::Malformed("bad alternate file name")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let file = sealed(&[0x5a; 300], &multi());
        for cut in 0..file.len() {
            assert!(verify(&file[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(verify(&bad).is_err(), "flip at {i}");
        }
        // Bytes appended after the record hide it.
        let mut padded = file.clone();
        padded.push(0);
        assert_eq!(verify(&padded), Err(SealError::Missing));
    }

    #[test]
    fn a_file_without_a_record_is_missing_one() {
        assert_eq!(verify(b""), Err(SealError::Missing));
        assert_eq!(verify(&vec![0u8; 4096]), Err(SealError::Missing));
    }
}
