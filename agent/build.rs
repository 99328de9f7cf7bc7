//! Builds the kernel programs (`ebpf/lupid-ebpf`) with the nightly
//! toolchain and bpf-linker, and leaves the object in `OUT_DIR/lupid.bpf.o`
//! for `include_bytes!`.
//!
//! This does what `aya-build` does, plus `-C target-cpu=v3`: the programs
//! need the fetching atomic add of BPF ISA v3 for their sequence numbers,
//! and aya-build 0.2 offers no way to pass that flag.
//!
//! Set `LUPID_SKIP_EBPF=1` to build without the kernel programs (for
//! unit tests on a machine without the nightly toolchain); `lupid-agent
//! start` then stops with an error that names the variable.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const TOOLCHAIN: &str = "nightly";
const TARGET: &str = "bpfel-unknown-none";
const OBJECT: &str = "lupid.bpf.o";

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let ebpf_dir = manifest_dir.join("../ebpf");
    println!("cargo:rerun-if-env-changed=LUPID_SKIP_EBPF");
    println!("cargo:rerun-if-changed={}", ebpf_dir.display());

    let object = out_dir.join(OBJECT);
    if env::var_os("LUPID_SKIP_EBPF").is_some_and(|v| v == "1") {
        println!("cargo:warning=LUPID_SKIP_EBPF=1: building lupid-agent without its kernel programs");
        std::fs::write(&object, b"").expect("write empty placeholder object");
        return;
    }
    if let Err(message) = build(&ebpf_dir, &out_dir, &object) {
        panic!("{message}");
    }
}

fn build(ebpf_dir: &Path, out_dir: &Path, object: &Path) -> Result<(), String> {
    let target_dir = out_dir.join("ebpf-target");
    let rustflags =
        ["--cfg=bpf_target_arch=\"x86_64\"", "-Cdebuginfo=2", "-Clink-arg=--btf", "-Ctarget-cpu=v3"].join("\x1f");
    let mut command = Command::new("rustup");
    command
        .args(["run", TOOLCHAIN, "cargo", "build", "--package", "lupid-ebpf", "--bins", "--release"])
        .args(["--target", TARGET, "-Z", "build-std=core", "--target-dir"])
        .arg(&target_dir)
        .current_dir(ebpf_dir.join("lupid-ebpf"))
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    for inherited in ["RUSTC", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET"] {
        command.env_remove(inherited);
    }
    let status = command.status().map_err(|e| {
        format!("failed to run `rustup run {TOOLCHAIN} cargo` to build the kernel programs: {e}; install rustup with the {TOOLCHAIN} toolchain (`cargo xtask setup` does)")
    })?;
    if !status.success() {
        return Err(format!(
            "building the kernel programs failed ({status}); they need the {TOOLCHAIN} toolchain with rust-src and bpf-linker 0.13 on PATH: run `cargo xtask setup`"
        ));
    }
    let built = target_dir.join(TARGET).join("release").join("lupid");
    std::fs::copy(&built, object)
        .map_err(|e| format!("failed to copy {} to {}: {e}", built.display(), object.display()))?;
    Ok(())
}
