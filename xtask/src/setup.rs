//! `cargo xtask setup`: installs what a fresh Debian 12 machine lacks.
//!
//! Each item is checked first, so a second run only checks and returns within
//! a few seconds. Installing needs root because it calls apt-get.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{Context, cmd, step};

/// Debian packages that the build and the VM tests need. vagrant is left out
/// on purpose: it is large and only `vagrant-check` uses it.
const APT_PACKAGES: &[&str] = &[
    // Boots the test kernel.
    "qemu-system-x86",
    // The only userland inside the initramfs.
    "busybox-static",
    // Packs the initramfs.
    "cpio",
    // bindgen in librocksdb-sys needs libclang.
    "libclang-dev",
];

/// bpf-linker release that the eBPF crate is built with.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The extracted Debian kernel package that the VM boots.
pub(crate) struct Kernel {
    /// Kernel release, e.g. `6.1.0-57-cloud-amd64`.
    pub(crate) release: String,
    /// Root of the extracted package (contains boot/ and lib/modules/).
    pub(crate) root: PathBuf,
}

impl Kernel {
    pub(crate) fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.release))
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.root.join(format!("boot/config-{}", self.release))
    }

    /// Folder holding the kernel's modules; Debian 12 ships them under
    /// /lib/modules, later releases under /usr/lib/modules.
    pub(crate) fn modules(&self) -> PathBuf {
        let usr = self.root.join("usr/lib/modules").join(&self.release);
        if usr.is_dir() { usr } else { self.root.join("lib/modules").join(&self.release) }
    }
}

pub(crate) fn run(ctx: &Context) -> Result<Kernel> {
    create_cache(&ctx.cache)?;
    install_apt_packages(APT_PACKAGES)?;
    install_rust_src()?;
    install_bpf_linker(&ctx.cache)?;
    let kernel = install_kernel(&ctx.cache)?;
    step!("setup complete; VM kernel {} in {}", kernel.release, kernel.root.display());
    Ok(kernel)
}

fn create_cache(cache: &Path) -> Result<()> {
    fs::create_dir_all(cache).with_context(|| {
        format!(
            "cannot create the cache folder {}; run as root or set LUPID_CACHE to a writable folder",
            cache.display()
        )
    })?;
    // Backup tools skip folders tagged this way (https://bford.info/cachedir/).
    let tag = cache.join("CACHEDIR.TAG");
    if !tag.exists() {
        fs::write(
            &tag,
            "Signature: 8a477f597d28d172789f06886806bc55\n# lupid's xtask cache: kernels, initramfs, LLVM links\n",
        )
        .with_context(|| format!("cannot write {}", tag.display()))?;
    }
    Ok(())
}

pub(crate) fn is_root() -> bool {
    // The effective uid is the second number on the Uid: line.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn is_apt_package_installed(package: &str) -> bool {
    cmd::probe(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", package]))
        .is_some_and(|status| status.starts_with("ii"))
}

/// Installs the Debian packages that are not installed yet.
pub(crate) fn install_apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|package| !is_apt_package_installed(package)).collect();
    if missing.is_empty() {
        step!("apt packages present: {}", packages.join(", "));
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}; run `cargo xtask setup` as root or `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    step!("installing apt packages: {}", missing.join(", "));
    apt_update()?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
        "check the apt sources (Debian 12 bookworm main) and the network",
    )
}

fn apt_update() -> Result<()> {
    step!("refreshing apt package lists");
    cmd::run(Command::new("apt-get").args(["update", "-q"]), "check /etc/apt/sources.list* and the network")
}

fn install_rust_src() -> Result<()> {
    let installed =
        cmd::probe(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]));
    match installed {
        Some(list) if list.lines().any(|line| line.trim() == "rust-src") => {
            step!("nightly toolchain with rust-src present");
            Ok(())
        }
        Some(_) => {
            step!("adding rust-src to the nightly toolchain (builds core for the BPF target)");
            cmd::run(
                Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
                "check that rustup can reach its distribution server",
            )
        }
        None => {
            step!("installing the nightly toolchain with rust-src (the eBPF crate needs it)");
            cmd::run(
                Command::new("rustup").args([
                    "toolchain",
                    "install",
                    "nightly",
                    "--profile",
                    "minimal",
                    "--component",
                    "rust-src",
                ]),
                "install rustup (https://rustup.rs) and check that it can reach its distribution server",
            )
        }
    }
}

/// Returns the major version of the LLVM that the nightly rustc ships.
fn nightly_llvm_major() -> Result<String> {
    let version = cmd::output(
        Command::new("rustc").args(["+nightly", "-vV"]),
        "install the nightly toolchain with `rustup toolchain install nightly`",
    )?;
    let llvm = version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` printed no `LLVM version:` line")?;
    let major = llvm.split('.').next().unwrap_or(llvm).trim();
    Ok(major.to_owned())
}

/// Installs bpf-linker linked against the LLVM shared library inside the
/// nightly toolchain, so that the bitcode rustc emits and the linker reading
/// it come from the same LLVM.
fn install_bpf_linker(cache: &Path) -> Result<()> {
    // `--version` also fails when the LLVM library it was linked to is gone,
    // which is a reason to rebuild it.
    if let Some(version) = cmd::probe(Command::new("bpf-linker").arg("--version"))
        && version.contains(&format!(" {}", minor_prefix(BPF_LINKER_VERSION)))
    {
        step!("{} present", version.trim());
        return Ok(());
    }

    let major = nightly_llvm_major()?;
    let sysroot = cmd::output(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
        "install the nightly toolchain with `rustup toolchain install nightly`",
    )?;
    let toolchain_lib = Path::new(sysroot.trim()).join("lib");
    let library = find_llvm_library(&toolchain_lib)?;
    let soname = library.file_name().context("the LLVM library path has no file name")?.to_owned();

    // bpf-linker's build looks for lib/libLLVM.so under LLVM_PREFIX and
    // records lib/ as the binary's runpath, so this folder must outlive the
    // install: it lives in the cache, not in /tmp.
    let prefix = cache.join("llvm-nightly");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname.as_os_str()] {
        let link = lib.join(name);
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&library, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), library.display()))?;
    }

    step!("installing bpf-linker {} against nightly LLVM {} (about 90 s)", minor_prefix(BPF_LINKER_VERSION), major);
    cmd::run(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", &format!("llvm-{major}")]),
        &format!(
            "bpf-linker {BPF_LINKER_VERSION} may not support LLVM {major} (feature llvm-{major}); \
             check `cargo info bpf-linker@{BPF_LINKER_VERSION}` for its llvm-* features"
        ),
    )
}

/// Returns "0.13" for "0.13.0".
fn minor_prefix(version: &str) -> &str {
    version.rfind('.').map_or(version, |dot| &version[..dot])
}

/// Finds the real LLVM shared library (`libLLVM.so.<version>-rust-…`) in the
/// toolchain's lib folder.
fn find_llvm_library(toolchain_lib: &Path) -> Result<PathBuf> {
    let entries = fs::read_dir(toolchain_lib).with_context(|| format!("cannot list {}", toolchain_lib.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", toolchain_lib.display()))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("libLLVM.so.") {
            return fs::canonicalize(entry.path())
                .with_context(|| format!("cannot resolve {}", entry.path().display()));
        }
    }
    bail!(
        "no libLLVM.so.* in {}; reinstall the nightly toolchain with `rustup toolchain install nightly --force`",
        toolchain_lib.display()
    )
}

/// Downloads and extracts the newest `linux-image-6.1.0-N-cloud-amd64`
/// package, unless the cache already has it.
fn install_kernel(cache: &Path) -> Result<Kernel> {
    let kernels = cache.join("kernel");
    fs::create_dir_all(&kernels).with_context(|| format!("cannot create {}", kernels.display()))?;

    let mut newest = newest_kernel_package()?;
    if newest.is_none() && is_root() {
        // A fresh machine may have no package lists yet.
        apt_update()?;
        newest = newest_kernel_package()?;
    }
    let Some((package, abi)) = newest else {
        if let Some(kernel) = newest_cached_kernel(&kernels)? {
            step!("apt offers no linux-image-6.1.0-*-cloud-amd64; using the cached {}", kernel.release);
            return Ok(kernel);
        }
        bail!(
            "apt offers no linux-image-6.1.0-*-cloud-amd64 package; add Debian 12 (bookworm) \
             main and bookworm-security to the apt sources and run `apt-get update` as root"
        );
    };

    let release = format!("6.1.0-{abi}-cloud-amd64");
    let folder = kernels.join(&package);
    let root = folder.join("root");
    let done = folder.join(".extracted");
    let kernel = Kernel { release, root };
    if done.exists() {
        step!("VM kernel {package} present");
        return Ok(kernel);
    }

    step!("downloading {package} (the VM test kernel)");
    if folder.exists() {
        fs::remove_dir_all(&folder).with_context(|| format!("cannot remove {}", folder.display()))?;
    }
    fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    cmd::run(
        Command::new("apt-get")
            // The _apt sandbox user cannot write into the root-owned cache.
            .args(["-o", "APT::Sandbox::User=root", "download", "-q", &package])
            .current_dir(&folder),
        "run `apt-get update` as root and check the network",
    )?;
    let deb = find_deb(&folder, &package)?;
    step!("extracting {}", deb.display());
    cmd::run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&kernel.root),
        "check free disk space in the cache folder",
    )?;
    if !kernel.vmlinuz().is_file() {
        bail!("{package} has no {}; the package layout changed", kernel.vmlinuz().display());
    }
    fs::write(&done, "").with_context(|| format!("cannot write {}", done.display()))?;
    Ok(kernel)
}

/// Returns the package name and ABI number of the newest 6.1 cloud kernel
/// that apt knows, or `None` when apt lists none.
fn newest_kernel_package() -> Result<Option<(String, u32)>> {
    let listing = cmd::output(
        Command::new("apt-cache").args(["search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64$"]),
        "xtask needs Debian's apt (Debian 12 bookworm)",
    )?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|package| parse_kernel_abi(package).map(|abi| (package.to_owned(), abi)))
        .max_by_key(|(_, abi)| *abi))
}

/// Returns N for `linux-image-6.1.0-N-cloud-amd64`.
fn parse_kernel_abi(package: &str) -> Option<u32> {
    package.strip_prefix("linux-image-6.1.0-")?.strip_suffix("-cloud-amd64")?.parse().ok()
}

fn newest_cached_kernel(kernels: &Path) -> Result<Option<Kernel>> {
    let mut newest: Option<(u32, String)> = None;
    let entries = fs::read_dir(kernels).with_context(|| format!("cannot list {}", kernels.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", kernels.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(abi) = parse_kernel_abi(&name)
            && entry.path().join(".extracted").exists()
            && newest.as_ref().is_none_or(|(best, _)| abi > *best)
        {
            newest = Some((abi, name));
        }
    }
    Ok(newest.map(|(abi, name)| Kernel {
        release: format!("6.1.0-{abi}-cloud-amd64"),
        root: kernels.join(name).join("root"),
    }))
}

fn find_deb(folder: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    let entries = fs::read_dir(folder).with_context(|| format!("cannot list {}", folder.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", folder.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && Path::new(&name).extension().is_some_and(|ext| ext == "deb") {
            return Ok(entry.path());
        }
    }
    bail!("`apt-get download {package}` left no {prefix}*.deb in {}", folder.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_abi_parses_cloud_packages() {
        assert_eq!(parse_kernel_abi("linux-image-6.1.0-57-cloud-amd64"), Some(57));
        assert_eq!(parse_kernel_abi("linux-image-6.1.0-9-cloud-amd64"), Some(9));
    }

    #[test]
    fn kernel_abi_rejects_other_flavours() {
        assert_eq!(parse_kernel_abi("linux-image-6.1.0-57-amd64"), None);
        assert_eq!(parse_kernel_abi("linux-image-6.1.0-57-cloud-amd64-dbg"), None);
        assert_eq!(parse_kernel_abi("linux-image-6.1.0-rt-cloud-amd64"), None);
    }

    #[test]
    fn minor_prefix_drops_patch() {
        assert_eq!(minor_prefix("0.13.0"), "0.13");
    }
}
