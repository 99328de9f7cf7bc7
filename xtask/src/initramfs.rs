//! Assembles the VM's initramfs: busybox, lupid's binaries with the shared
//! libraries they load, users, policies, kernel modules and a generated /init.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::setup::Kernel;
use crate::{Context, cmd, step};

const INIT_SCRIPT: &str = include_str!("init.sh");
pub(crate) const DEMO_SCRIPT: &str = include_str!("demo.sh");

/// Statically linked busybox from Debian's busybox-static.
const BUSYBOX: &str = "/bin/busybox";

/// Users of the VM. `agent` (uid 1001) is the unprivileged account that
/// tests run agents as.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nagent:x:1001:1001:agent:/home/agent:/bin/sh\n";
const GROUP: &str = "root:x:0:\nagent:x:1001:\n";

/// Kernel options the VM needs, each with the module that provides it.
/// Options without a module must be `=y`. The others may also be `=m`, and
/// then /init loads the named module.
const KERNEL_OPTIONS: &[(&str, Option<&str>)] = &[
    ("CONFIG_BLK_DEV_INITRD", None),
    ("CONFIG_RD_GZIP", None),
    ("CONFIG_BINFMT_SCRIPT", None),
    ("CONFIG_SERIAL_8250_CONSOLE", None),
    ("CONFIG_DEVTMPFS", None),
    ("CONFIG_TMPFS", None),
    ("CONFIG_CGROUPS", None),
    ("CONFIG_CGROUP_BPF", None),
    ("CONFIG_BPF_SYSCALL", None),
    ("CONFIG_BPF_LSM", None),
    ("CONFIG_SECURITYFS", None),
    ("CONFIG_DEBUG_INFO_BTF", None),
    ("CONFIG_INET", None),
    ("CONFIG_UNIX", Some("unix")),
    ("CONFIG_IPV6", Some("ipv6")),
];

/// Files that go into an initramfs besides busybox and /init.
pub(crate) struct Contents {
    /// Executables copied to /usr/local/bin under the given names.
    pub(crate) executables: Vec<(String, PathBuf)>,
    /// Shell command run in `lupid.mode=command`.
    pub(crate) command: Option<String>,
    /// Folder whose files go to /etc/lupid (the repository's policies/).
    pub(crate) policies: Option<PathBuf>,
}

/// Builds `<cache>/initramfs/<name>.cpio.gz` and returns its path, plus the
/// extra kernel command-line arguments that the kernel config calls for.
pub(crate) fn build(ctx: &Context, kernel: &Kernel, name: &str, contents: &Contents) -> Result<(PathBuf, Vec<String>)> {
    let folder = ctx.cache.join("initramfs");
    let root = folder.join(format!("{name}.root"));
    step!("assembling the initramfs in {}", root.display());
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
    }
    for dir in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "etc/lupid",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/lib",
        "root",
        "home/agent",
        "srv",
    ] {
        create_dir(&root.join(dir))?;
    }

    let mut libraries = BTreeSet::new();
    copy_executable(Path::new(BUSYBOX), &root.join("bin/busybox"))?;
    libraries.extend(shared_libraries(Path::new(BUSYBOX))?);
    for (name, source) in &contents.executables {
        copy_executable(source, &root.join("usr/local/bin").join(name))?;
        libraries.extend(shared_libraries(source)?);
        link_host_path(&root, source, name)?;
    }
    for library in &libraries {
        copy_library(&root, library)?;
    }

    write_file(&root.join("etc/passwd"), PASSWD, 0o644)?;
    write_file(&root.join("etc/group"), GROUP, 0o644)?;
    write_file(&root.join("init"), INIT_SCRIPT, 0o755)?;
    write_file(&root.join("usr/local/bin/lupid-demo"), DEMO_SCRIPT, 0o755)?;
    if let Some(command) = &contents.command {
        write_file(&root.join("etc/lupid/init-command"), &format!("{command}\n"), 0o644)?;
    }
    if let Some(policies) = &contents.policies {
        copy_policies(policies, &root.join("etc/lupid"))?;
    }

    let config = read_kernel_config(kernel)?;
    let modules = required_modules(&config)?;
    let load_order = copy_modules(kernel, &root, &modules)?;
    write_file(&root.join("etc/lupid/modules"), &load_order, 0o644)?;

    let archive = folder.join(format!("{name}.cpio.gz"));
    pack(&root, &archive)?;
    Ok((archive, extra_kernel_arguments(&config)))
}

fn create_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

fn copy_executable(source: &Path, destination: &Path) -> Result<()> {
    if !source.is_file() {
        bail!(
            "{} not found; run `cargo xtask setup` (busybox) or `cargo xtask build` (lupid binaries)",
            source.display()
        );
    }
    // The release profile keeps line tables, and RocksDB's C++ brings full
    // debug information: lupid-agent is over 400 MiB with it and about
    // 16 MiB without. The VM needs none of it, and its memory holds the
    // whole initramfs.
    crate::cmd::run(
        std::process::Command::new("objcopy").arg("--strip-debug").arg(source).arg(destination),
        "install binutils (`apt-get install binutils`), which provides objcopy",
    )?;
    fs::set_permissions(destination, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot set the mode of {}", destination.display()))
}

/// Links the executable's host path to its copy in /usr/local/bin, because
/// integration tests find binaries through `CARGO_BIN_EXE_<name>`, an absolute
/// path on the build host that is compiled into the test executable.
fn link_host_path(root: &Path, source: &Path, name: &str) -> Result<()> {
    let Ok(relative) = source.strip_prefix("/") else {
        return Ok(());
    };
    let link = root.join(relative);
    if link.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(parent) = link.parent() {
        create_dir(parent)?;
    }
    symlink(Path::new("/usr/local/bin").join(name), &link)
        .with_context(|| format!("cannot create the link {}", link.display()))
}

/// Returns the absolute paths of the shared libraries and the dynamic loader
/// that `ldd` lists for `executable`; none for a static executable.
fn shared_libraries(executable: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(executable)
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("could not start `ldd {}`; install libc-bin", executable.display()))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // ldd exits 1 and prints "not a dynamic executable" for static files.
        if listing.contains("not a dynamic executable") || listing.trim().is_empty() {
            return Ok(Vec::new());
        }
        bail!("`ldd {}` failed ({})", executable.display(), output.status);
    }
    parse_ldd(&listing).with_context(|| format!("in the output of `ldd {}`", executable.display()))
}

/// Parses ldd lines such as `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
/// (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`.
fn parse_ldd(listing: &str) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in listing.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if line.contains("not found") {
            bail!("a shared library is missing on this machine: {line}");
        }
        if line.contains("statically linked") {
            continue;
        }
        let path = match line.split_once(" => ") {
            Some((_, resolved)) => resolved.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        // The vDSO (linux-vdso.so.1) has no file and no absolute path.
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// Copies a library to the same path inside the initramfs, following
/// symlinks, so that the loader finds it where the host's loader did.
fn copy_library(root: &Path, library: &Path) -> Result<()> {
    let relative =
        library.strip_prefix("/").with_context(|| format!("library path {} is not absolute", library.display()))?;
    let destination = root.join(relative);
    if let Some(parent) = destination.parent() {
        create_dir(parent)?;
    }
    fs::copy(library, &destination)
        .with_context(|| format!("cannot copy {} to {}", library.display(), destination.display()))?;
    Ok(())
}

fn copy_policies(source: &Path, destination: &Path) -> Result<()> {
    if !source.is_dir() {
        step!("no {} yet; the VM gets no policies", source.display());
        return Ok(());
    }
    let entries = fs::read_dir(source).with_context(|| format!("cannot list {}", source.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", source.display()))?;
        let target = destination.join(entry.file_name());
        let kind = entry.file_type().with_context(|| format!("cannot stat {}", entry.path().display()))?;
        if kind.is_dir() {
            create_dir(&target)?;
            copy_policies(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {} to {}", entry.path().display(), target.display()))?;
        }
    }
    Ok(())
}

fn read_kernel_config(kernel: &Kernel) -> Result<String> {
    let path = kernel.config();
    fs::read_to_string(&path)
        .with_context(|| format!("cannot read the kernel config {}; rerun `cargo xtask setup`", path.display()))
}

/// Returns the value of `option` in a kernel .config: `y`, `m`, a quoted
/// string, or `None` when it is not set.
fn config_value<'a>(config: &'a str, option: &str) -> Option<&'a str> {
    config.lines().find_map(|line| line.strip_prefix(option).and_then(|rest| rest.strip_prefix('=')))
}

/// Checks [`KERNEL_OPTIONS`] and returns the modules to load.
fn required_modules(config: &str) -> Result<Vec<&'static str>> {
    let mut modules = Vec::new();
    for &(option, module) in KERNEL_OPTIONS {
        match (config_value(config, option), module) {
            (Some("y"), _) => {}
            (Some("m"), Some(module)) => {
                step!("{option}=m: adding module {module} to the initramfs");
                modules.push(module);
            }
            (value, _) => bail!(
                "the VM kernel has {option}={}, but lupid's VM needs it built in; \
                 pick another kernel package",
                value.unwrap_or("(not set)")
            ),
        }
    }
    Ok(modules)
}

/// Copies each module and its dependencies from the kernel package into
/// /lib/modules and returns the insmod order, one path a line.
fn copy_modules(kernel: &Kernel, root: &Path, modules: &[&str]) -> Result<String> {
    if modules.is_empty() {
        return Ok(String::new());
    }
    let modules_dir = kernel.modules();
    let dep_file = modules_dir.join("modules.dep");
    if !dep_file.is_file() {
        // Debian's package leaves modules.dep to be made by depmod at install.
        step!("generating {}", dep_file.display());
        cmd::run(
            Command::new("depmod").arg("-b").arg(&kernel.root).arg(&kernel.release),
            "install kmod (`apt-get install kmod`)",
        )?;
    }
    let dependencies = fs::read_to_string(&dep_file).with_context(|| format!("cannot read {}", dep_file.display()))?;

    let mut order: Vec<String> = Vec::new();
    for module in modules {
        for file in module_load_order(&dependencies, module)
            .with_context(|| format!("module {module} is not in {}", dep_file.display()))?
        {
            if order.contains(&file) {
                continue;
            }
            // NOTE: busybox insmod reads plain .ko files only; Debian 12
            // kernels ship them uncompressed (CONFIG_MODULE_COMPRESS_NONE).
            if Path::new(&file).extension().is_none_or(|ext| ext != "ko") {
                bail!("module {file} is compressed, which busybox insmod cannot load");
            }
            let destination = root.join("lib/modules").join(&file);
            if let Some(parent) = destination.parent() {
                create_dir(parent)?;
            }
            fs::copy(modules_dir.join(&file), &destination).with_context(|| format!("cannot copy module {file}"))?;
            order.push(file);
        }
    }
    let mut list = String::new();
    for file in &order {
        list.push_str("/lib/modules/");
        list.push_str(file);
        list.push('\n');
    }
    Ok(list)
}

/// Returns the files to insmod for `module`, dependencies first, from the
/// text of modules.dep (`kernel/a/b.ko: kernel/c.ko kernel/d.ko`, where
/// modprobe loads the listed dependencies from last to first).
fn module_load_order(dependencies: &str, module: &str) -> Option<Vec<String>> {
    let suffix = format!("/{module}.ko");
    dependencies.lines().find_map(|line| {
        let (file, needs) = line.split_once(':')?;
        let stem = file.strip_suffix(".xz").or_else(|| file.strip_suffix(".zst")).unwrap_or(file);
        if !stem.ends_with(&suffix) {
            return None;
        }
        let mut order: Vec<String> = needs.split_whitespace().rev().map(str::to_owned).collect();
        order.push(file.to_owned());
        Some(order)
    })
}

/// Kernel arguments that the config requires: `lsm=…,bpf` when the built-in
/// LSM order lacks bpf, because BPF LSM programs only run when bpf is active.
fn extra_kernel_arguments(config: &str) -> Vec<String> {
    let lsm = config_value(config, "CONFIG_LSM").map(|value| value.trim_matches('"'));
    match lsm {
        Some(list) if !list.split(',').any(|name| name == "bpf") => {
            vec![format!("lsm={list},bpf")]
        }
        _ => Vec::new(),
    }
}

/// Packs `root` into a gzip-compressed newc cpio archive, the format the
/// kernel unpacks into its initial root filesystem.
fn pack(root: &Path, archive: &Path) -> Result<()> {
    let listing =
        cmd::output(Command::new("find").args([".", "-mindepth", "1"]).current_dir(root), "check the staging folder")?;
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort_unstable();
    let list = files.join("\n") + "\n";

    let cpio_path = archive.with_extension("");
    let cpio_file = fs::File::create(&cpio_path).with_context(|| format!("cannot create {}", cpio_path.display()))?;
    let mut cpio = Command::new("cpio");
    // Every file belongs to root in the VM, and /init chowns /home/agent to agent.
    cpio.args(["--create", "--format=newc", "--owner=0:0", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(cpio_file);
    let command_line = cmd::display(&cpio);
    let mut child = cpio
        .spawn()
        .with_context(|| format!("could not start `{command_line}`; run `cargo xtask setup` to install cpio"))?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("cpio has no stdin pipe")?;
        stdin.write_all(list.as_bytes()).with_context(|| format!("cannot send the file list to `{command_line}`"))?;
    }
    let status = child.wait().with_context(|| format!("`{command_line}` did not finish"))?;
    if !status.success() {
        bail!("`{command_line}` failed ({status}) in {}", root.display());
    }

    cmd::run(Command::new("gzip").args(["--force", "-6"]).arg(&cpio_path), "install gzip")?;
    let size = fs::metadata(archive).with_context(|| format!("gzip wrote no {}", archive.display()))?.len();
    step!("initramfs {} ({} KiB)", archive.display(), size / 1024);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lists_libraries_and_loader() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f01)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        let paths = parse_ldd(listing).expect("valid listing");
        assert_eq!(
            paths,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn ldd_missing_library_is_error() {
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn module_order_puts_dependencies_first() {
        let dep = "kernel/net/ipv6/ipv6.ko: kernel/lib/b.ko kernel/lib/a.ko\nkernel/lib/a.ko:\n";
        let order = module_load_order(dep, "ipv6").expect("ipv6 listed");
        assert_eq!(order, ["kernel/lib/a.ko", "kernel/lib/b.ko", "kernel/net/ipv6/ipv6.ko"]);
        assert_eq!(module_load_order(dep, "unix"), None);
    }

    /// Builds a .config that sets every option in [`KERNEL_OPTIONS`] to `value(option)`.
    fn config_with(value: impl Fn(&str) -> &'static str) -> String {
        let mut config = String::new();
        for (option, _) in KERNEL_OPTIONS {
            config.push_str(option);
            config.push('=');
            config.push_str(value(option));
            config.push('\n');
        }
        config
    }

    #[test]
    fn builtin_options_need_no_modules() {
        let config = config_with(|_| "y");
        assert!(required_modules(&config).expect("all built in").is_empty());
    }

    #[test]
    fn tristate_module_is_loaded() {
        let config = config_with(|option| if option == "CONFIG_IPV6" { "m" } else { "y" });
        assert_eq!(required_modules(&config).expect("ipv6 as module"), ["ipv6"]);
    }

    #[test]
    fn missing_bpf_lsm_is_error() {
        let config = "CONFIG_BLK_DEV_INITRD=y\n# CONFIG_BPF_LSM is not set\n";
        assert!(required_modules(config).is_err());
    }

    #[test]
    fn lsm_argument_added_without_bpf() {
        let config = "CONFIG_LSM=\"landlock,lockdown,yama,apparmor\"\n";
        assert_eq!(extra_kernel_arguments(config), ["lsm=landlock,lockdown,yama,apparmor,bpf"]);
        let config = "CONFIG_LSM=\"landlock,yama,bpf\"\n";
        assert!(extra_kernel_arguments(config).is_empty());
    }
}
