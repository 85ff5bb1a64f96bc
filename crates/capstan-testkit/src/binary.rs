//! Finding the executables that go into a test image and checking that they
//! are static, since the image has no C library to load them with.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Debian's busybox-static package puts its binary; `CAPSTAN_TEST_BUSYBOX`
/// overrides it.
pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

/// The capstan binary under test, from the `CAPSTAN_BIN` environment variable.
///
/// Integration tests of the `capstan` package can skip this and pass
/// `env!("CARGO_BIN_EXE_capstan")` straight to [`crate::TestImage::ensure`].
pub fn capstan_binary() -> Result<PathBuf> {
    match std::env::var_os("CAPSTAN_BIN") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
        _ => Err(Error::CapstanBinUnset),
    }
}

/// The host's static busybox, checked.
pub(crate) fn busybox_binary() -> Result<PathBuf> {
    let path = std::env::var_os("CAPSTAN_TEST_BUSYBOX")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_BUSYBOX), PathBuf::from);
    if !path.exists() {
        return Err(Error::BusyboxMissing { path });
    }
    ensure_static(&path)?;
    Ok(path)
}

/// Fails unless `path` is an ELF executable that needs no program
/// interpreter, i.e. runs in an image that holds nothing else.
pub(crate) fn ensure_static(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    match elf_interpreter(&bytes) {
        Ok(None) => Ok(()),
        Ok(Some(interp)) => Err(Error::NotStatic {
            path: path.to_owned(),
            reason: format!("it is dynamically linked and needs {interp}"),
        }),
        Err(reason) => Err(Error::NotStatic {
            path: path.to_owned(),
            reason: reason.to_owned(),
        }),
    }
}

const PT_INTERP: u32 = 3;

/// The program interpreter a 64-bit little-endian ELF file asks for, if any.
///
/// A static-pie executable is `ET_DYN` like a shared object but has no
/// `PT_INTERP` header, so that header, not the file type, is the test.
fn elf_interpreter(bytes: &[u8]) -> Result<Option<String>, &'static str> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("it is not an ELF executable");
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("it is not a 64-bit little-endian ELF file");
    }
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    const TRUNCATED: &str = "its ELF headers are truncated";
    let phoff = u64_at(0x20).ok_or(TRUNCATED)? as usize;
    let phentsize = u16_at(0x36).ok_or(TRUNCATED)? as usize;
    let phnum = u16_at(0x38).ok_or(TRUNCATED)? as usize;
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        if u32_at(header).ok_or(TRUNCATED)? != PT_INTERP {
            continue;
        }
        let offset = u64_at(header + 0x08).ok_or(TRUNCATED)? as usize;
        let size = u64_at(header + 0x20).ok_or(TRUNCATED)? as usize;
        let name = bytes.get(offset..offset + size).ok_or(TRUNCATED)?;
        let name = String::from_utf8_lossy(name)
            .trim_end_matches('\0')
            .to_owned();
        return Ok(Some(name));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_is_static_exactly_when_built_with_crt_static() {
        let me = std::fs::read(std::env::current_exe().expect("test binary path"))
            .expect("read test binary");
        let interpreter = elf_interpreter(&me).expect("the test binary is ELF");
        if cfg!(target_feature = "crt-static") {
            assert_eq!(interpreter, None);
        } else {
            let interpreter = interpreter.expect("a dynamic binary names its loader");
            assert!(interpreter.contains("ld-linux"), "{interpreter}");
        }
    }

    #[test]
    fn non_elf_input_is_rejected() {
        assert!(elf_interpreter(b"#!/bin/sh\necho hi\n").is_err());
        assert!(elf_interpreter(b"\x7fELF\x02\x01").is_err());
    }

    #[test]
    fn capstan_bin_unset_explains_itself() {
        let message = Error::CapstanBinUnset.to_string();
        assert!(message.contains("CAPSTAN_BIN"), "{message}");
    }
}
