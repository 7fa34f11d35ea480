//! The shared libraries a host binary loads, as the host's own loader finds them: the loader
//! its ELF header names (`PT_INTERP`, read with the `elf` crate's parser) run with `--list`, which is
//! what `ldd` does (glibc's and musl's loaders both answer it). The loader's answer is the
//! truth of that host: its search path, `ld.so.cache`, `$ORIGIN` and `RUNPATH` included.

use std::path::{Path, PathBuf};

/// What a binary needs beside itself to run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Linked {
    /// The loader, as the binary names it (`/lib64/ld-linux-x86-64.so.2`); `None` for a static
    /// binary.
    pub interpreter: Option<PathBuf>,
    /// Every library it loads, directly or not, where the loader found it (the loader's own
    /// file among them, under the name libc asks for).
    pub libraries: Vec<PathBuf>,
}

/// The libraries `binary`, whose contents are `bytes` (the caller has read them to pack them),
/// loads on this host. An error names the binary and what is wrong: not an ELF file, a loader
/// that cannot be run, or the libraries not found.
pub(crate) fn linked(binary: &Path, bytes: &[u8]) -> Result<Linked, String> {
    let interpreter =
        interpreter(bytes).map_err(|e| format!("{} is not an ELF binary this host can run: {e}", binary.display()))?;
    let Some(interpreter) = interpreter else {
        return Ok(Linked::default());
    };
    let out = std::process::Command::new(&interpreter)
        .arg("--list")
        .arg(binary)
        .output()
        .map_err(|e| format!("running {}, the loader {} names: {e}", interpreter.display(), binary.display()))?;
    let listed = parse_list(&String::from_utf8_lossy(&out.stdout));
    if !listed.missing.is_empty() {
        return Err(format!(
            "{} links libraries not found on this host: {}",
            binary.display(),
            listed.missing.join(", ")
        ));
    }
    if !out.status.success() && listed.found.is_empty() {
        return Err(format!(
            "{} --list {} failed ({}): {}",
            interpreter.display(),
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Linked { interpreter: Some(interpreter), libraries: listed.found })
}

/// The path in the binary's PT_INTERP, from its ELF and program headers only (not its sections
/// and symbols, which for a test binary are most of its size).
fn interpreter(bytes: &[u8]) -> Result<Option<PathBuf>, elf::ParseError> {
    use elf::{abi::PT_INTERP, endian::AnyEndian, ElfBytes};
    let file = ElfBytes::<AnyEndian>::minimal_parse(bytes)?;
    let Some(segments) = file.segments() else { return Ok(None) };
    let Some(interp) = segments.iter().find(|p| p.p_type == PT_INTERP && p.p_filesz != 0) else { return Ok(None) };
    let raw = file.segment_data(&interp)?;
    let path = raw.split(|b| *b == 0).next().unwrap_or_default();
    Ok(Some(PathBuf::from(String::from_utf8_lossy(path).into_owned())))
}

/// A loader's `--list` answer: the files it found, in its order, and the names it did not.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listed {
    found: Vec<PathBuf>,
    missing: Vec<String>,
}

/// Parses lines such as `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f…)`,
/// `/lib64/ld-linux-x86-64.so.2 (0x7f…)` and `libfoo.so => not found`; the kernel's
/// `linux-vdso.so.1 (0x7f…)` is no file and is skipped.
fn parse_list(text: &str) -> Listed {
    let mut listed = Listed::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, rest) = match line.split_once(" => ") {
            Some((name, rest)) => (name.trim(), rest.trim()),
            None => ("", line),
        };
        if rest.starts_with("not found") {
            listed.missing.push(name.to_string());
            continue;
        }
        let path = rest.rsplit_once(" (0x").map_or(rest, |(path, _)| path).trim();
        if path.starts_with('/') {
            let path = PathBuf::from(path);
            if !listed.found.contains(&path) {
                listed.found.push(path);
            }
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glibc_answer_lists_files_and_skips_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd3a5f2000)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f2b1c000000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2b1be00000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f2b1c2b0000)\n";
        let listed = parse_list(text);
        assert_eq!(
            listed.found,
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
                .map(PathBuf::from)
        );
        assert!(listed.missing.is_empty());
    }

    #[test]
    fn missing_libraries_are_named() {
        let listed =
            parse_list("\tlibfoo.so.3 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n\tlibbar.so => not found\n");
        assert_eq!(listed.missing, ["libfoo.so.3", "libbar.so"]);
        assert_eq!(listed.found, [PathBuf::from("/lib/libc.so.6")]);
    }

    #[test]
    fn a_musl_answer_names_the_loader_once() {
        let text = "\t/lib/ld-musl-x86_64.so.1 (0x7f0000000000)\n\
                    \tlibc.musl-x86_64.so.1 => /lib/ld-musl-x86_64.so.1 (0x7f0000000000)\n";
        assert_eq!(parse_list(text).found, [PathBuf::from("/lib/ld-musl-x86_64.so.1")]);
    }

    #[test]
    fn this_test_binary_links_libc_and_a_script_is_not_elf() {
        let me = std::env::current_exe().unwrap();
        let linked = linked(&me, &std::fs::read(&me).unwrap()).unwrap();
        let interpreter = linked.interpreter.expect("the test binary is dynamically linked");
        assert!(interpreter.is_absolute(), "{}", interpreter.display());
        assert!(
            linked.libraries.iter().any(|l| l.file_name().unwrap().to_string_lossy().starts_with("libc.")),
            "{:?}",
            linked.libraries
        );
        assert!(linked.libraries.iter().all(|l| l.is_file()), "{:?}", linked.libraries);

        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        let e = super::linked(&script, &std::fs::read(&script).unwrap()).unwrap_err();
        assert!(e.contains("run.sh") && e.contains("not an ELF binary"), "{e}");
    }

    #[test]
    fn an_elf_file_without_an_interpreter_is_static() {
        // An ELF64 little-endian header of an executable with no program headers.
        let mut header = vec![0u8; 64];
        header[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
        header[16] = 2; // ET_EXEC
        header[18] = 0x3e; // x86-64
        header[20] = 1; // EV_CURRENT
        header[52] = 64; // e_ehsize
        assert_eq!(super::interpreter(&header).unwrap(), None);
        assert!(super::interpreter(&header[..10]).is_err(), "a truncated header is an error");
    }
}
