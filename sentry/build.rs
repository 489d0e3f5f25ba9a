//! Builds the vDSO (sentry/vdso/) the sentry maps into every process: a small
//! position-independent shared object compiled freestanding (no headers or libraries
//! of the build host) with the C compiler Rust already links with.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("vdso.so");
    let src = dir.join("vdso/vdso.c");
    let lds = dir.join("vdso/vdso.lds");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", lds.display());
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-O2",
            "-fPIC",
            "-shared",
            "-nostdlib",
            "-nostdinc",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-fcf-protection=none",
            "-mgeneral-regs-only",
            "-fasynchronous-unwind-tables",
            // The same bytes from any checkout path.
            "-ffile-prefix-map=/=/",
            "-g0",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg(format!("-Wl,-T,{}", lds.display()))
        .args([
            "-Wl,--hash-style=both",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--build-id=none",
            "-Wl,--eh-frame-hdr",
            "-Wl,-z,max-page-size=4096",
            "-Wl,-z,noexecstack",
            "-Wl,--no-undefined",
            "-Wl,--strip-all",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("vDSO: cannot run the C compiler {cc:?}: {e}"));
    assert!(status.success(), "vDSO: {cc} failed ({status})");
}
