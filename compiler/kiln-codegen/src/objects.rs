//! Relocatable objects (ELF; Mach-O for macOS hosts) holding raw data (model weights), written
//! with the `object` crate.
//!
//! Invariants:
//! - The data is never turned into LLVM constants or copied into an intermediate buffer: the
//!   `object` writer borrows the caller's slice (which may be a memory map of a multi-gigabyte
//!   file) and streams it to the output.
//! - The data lives in its own allocated, read-only section, [`WEIGHTS_SECTION`], aligned to
//!   [`WEIGHTS_ALIGN`] bytes (a cache line, and enough for any vector load), and is named by exactly
//!   one global symbol with default visibility, so generated code can reference it and the runtime
//!   can find it with `dlsym`.
//!
//! Note for large models on x86-64: code using the small code model reaches only ±2 GiB; data
//! beyond that needs the medium code model and a large-data section (`.lrodata`), to be added here.

use crate::error::{CodegenError, Result};
use crate::fsutil::write_atomically;
use crate::targets::Target;
use object::write::{Object, StreamingBuffer, Symbol, SymbolSection};
use object::{BinaryFormat, SectionKind, SymbolFlags, SymbolKind, SymbolScope};
use std::io::Write;
use std::path::Path;

/// Name of the section holding the data.
pub const WEIGHTS_SECTION: &str = ".rodata.kiln.weights";

/// Alignment in bytes of the data section (and thus of the symbol, which sits at offset 0).
pub const WEIGHTS_ALIGN: u64 = 64;

/// Builds, in memory, an ELF object for `target` defining `symbol` over `data`.
///
/// Convenient for small data and tests; use [`write_data_object`] for weights.
pub fn data_object(target: &Target, symbol: &str, data: &[u8]) -> Result<Vec<u8>> {
    let object = build(target, symbol, data)?;
    Ok(object.write()?)
}

/// Writes an ELF object for `target` defining `symbol` over `data` to `path`, streaming the data.
///
/// The file appears complete or not at all (temporary file in the same directory, then rename).
pub fn write_data_object(path: &Path, target: &Target, symbol: &str, data: &[u8]) -> Result<()> {
    let object = build(target, symbol, data)?;
    write_atomically(path, 0o644, |file| {
        let io_error = |source| CodegenError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        };
        let mut stream = StreamingBuffer::new(std::io::BufWriter::new(file));
        object.emit(&mut stream)?;
        stream.result().map_err(io_error)?;
        stream.into_inner().flush().map_err(io_error)
    })
}

/// Builds, in memory, an object for `target` holding each blob as read-only data under its
/// symbol (global, hidden: other objects of the artifact reference them, nothing outside), at
/// [`WEIGHTS_ALIGN`]-byte aligned offsets. The device images of GPU artifacts.
pub fn blobs_object(target: &Target, blobs: &[(String, &[u8])]) -> Result<Vec<u8>> {
    let (architecture, endianness) =
        target
            .elf_arch()
            .ok_or_else(|| CodegenError::UnsupportedTarget {
                operation: "a host data object",
                target: target.to_string(),
            })?;
    let mut object = Object::new(target.object_format(), architecture, endianness);
    let section = object.section_id(object::write::StandardSection::ReadOnlyData);
    for (name, data) in blobs {
        if name.is_empty() || name.contains('\0') {
            return Err(CodegenError::InvalidSymbol(name.clone()));
        }
        let symbol = object.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Data,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        // An empty blob still gets one byte, so its symbol has an address of its own.
        let bytes: &[u8] = if data.is_empty() { &[0] } else { data };
        object.add_symbol_data(symbol, section, bytes, WEIGHTS_ALIGN);
    }
    Ok(object.write()?)
}

fn build<'a>(target: &Target, symbol: &str, data: &'a [u8]) -> Result<Object<'a>> {
    let (architecture, endianness) =
        target
            .elf_arch()
            .ok_or_else(|| CodegenError::UnsupportedTarget {
                operation: "a host data object",
                target: target.to_string(),
            })?;
    if symbol.is_empty() || symbol.contains('\0') {
        return Err(CodegenError::InvalidSymbol(symbol.to_owned()));
    }
    let format = target.object_format();
    let mut object = Object::new(format, architecture, endianness);
    // `ReadOnlyData` gives SHF_ALLOC without SHF_WRITE/SHF_EXECINSTR; Mach-O objects (the
    // host part of Metal artifacts) use the format's own read-only data section.
    let section = if format == BinaryFormat::Elf {
        object.add_section(
            Vec::new(),
            WEIGHTS_SECTION.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        )
    } else {
        object.section_id(object::write::StandardSection::ReadOnlyData)
    };
    object.set_section_data(section, data, WEIGHTS_ALIGN);
    object.add_symbol(Symbol {
        name: symbol.as_bytes().to_vec(),
        value: 0,
        size: data.len() as u64,
        kind: SymbolKind::Data,
        // Dynamic: global with default visibility, so it stays visible in the shared library.
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Arch;
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

    #[test]
    fn data_object_has_aligned_readonly_section_and_global_symbol() {
        let data: Vec<u8> = (0..=255).collect();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let bytes = data_object(&Target::generic(arch), "kiln_weights", &data).unwrap();
            let file = object::File::parse(&*bytes).unwrap();
            assert_eq!(file.format(), BinaryFormat::Elf);
            assert_eq!(
                Some(file.architecture()),
                Target::generic(arch).elf_arch().map(|a| a.0)
            );
            let section = file.section_by_name(WEIGHTS_SECTION).unwrap();
            assert_eq!(section.kind(), SectionKind::ReadOnlyData);
            assert_eq!(section.align(), WEIGHTS_ALIGN);
            assert_eq!(section.data().unwrap(), &data[..]);
            let symbol = file
                .symbols()
                .find(|s| s.name() == Ok("kiln_weights"))
                .unwrap();
            assert!(symbol.is_global() && symbol.is_definition());
            assert_eq!((symbol.address(), symbol.size()), (0, 256));
            assert_eq!(symbol.section_index(), Some(section.index()));
        }
    }

    #[test]
    fn streamed_file_matches_in_memory_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.o");
        let target = Target::generic(Arch::X86_64);
        write_data_object(&path, &target, "w", b"abc").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            data_object(&target, "w", b"abc").unwrap()
        );
        // Only the final file remains: the temporary file was renamed, not copied.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn rejects_gpu_targets_and_bad_symbols() {
        let gpu = Target::generic(Arch::Nvptx);
        assert!(matches!(
            data_object(&gpu, "w", b""),
            Err(CodegenError::UnsupportedTarget { .. })
        ));
        let cpu = Target::generic(Arch::X86_64);
        for bad in ["", "a\0b"] {
            assert!(matches!(
                data_object(&cpu, bad, b""),
                Err(CodegenError::InvalidSymbol(_))
            ));
        }
    }
}
