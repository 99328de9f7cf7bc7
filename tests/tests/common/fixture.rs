//! Files, links and policies the VM tests act on.
//!
//! The paths are fixed because policy P0 names them. [`install`] creates
//! them once per test binary. It panics instead of overwriting a file or
//! link it did not create, so a run on the wrong machine fails instead of
//! damaging it.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::sync::Once;

use sha2::{Digest, Sha256};

/// A file that P0 denies to agents, readable by every user so that only
/// lupid, never file permissions, can deny it.
pub(crate) const SECRET: &str = "/srv/secrets/token";
/// A file that P0 allows agents to read.
pub(crate) const OK_FILE: &str = "/home/agent/work/ok.txt";
/// A copy of busybox that P0 denies to exec by its path.
pub(crate) const CURL: &str = "/usr/bin/curl";
/// A symlink to [`CURL`], for exec through a link.
pub(crate) const TOOL_LINK: &str = "/tmp/git";
/// A symlink to `/srv/secrets`, for open through a linked directory.
pub(crate) const SECRETS_LINK: &str = "/tmp/s";

const BUSYBOX: &str = "/bin/busybox";

/// Policy P0: deny the secrets and curl, allow every other file and exec,
/// allow one loopback port, and deny every other connect by default.
pub(crate) const POLICY_P0: &str = "\
lupid-policy 1
default deny
deny-secrets: deny  open    /srv/secrets/**  read,write
allow-open:   allow open    /**              read,write
deny-curl:    deny  exec    /usr/bin/curl
allow-exec:   allow exec    /**
allow-local:  allow connect 127.0.0.1/32:8080
";

/// Creates the files and links that P0 names, once per process.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        write_file(SECRET, b"secret");
        write_file(OK_FILE, b"OK");
        install_curl();
        replace_symlink(CURL, TOOL_LINK);
        replace_symlink("/srv/secrets", SECRETS_LINK);
    });
}

/// Writes `contents` to `path` with mode 0644, creating its parents. The
/// parent gets mode 0755 so that uid 1001 can reach the file.
fn write_file(path: &str, contents: &[u8]) {
    let path = Path::new(path);
    let parent = path.parent().expect("a fixture path has a parent");
    fs::create_dir_all(parent).unwrap_or_else(|error| panic!("failed to create {}: {error}", parent.display()));
    set_mode(parent, 0o755);
    fs::write(path, contents).unwrap_or_else(|error| panic!("failed to write {}: {error}", path.display()));
    set_mode(path, 0o644);
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|error| panic!("failed to chmod {mode:o} {}: {error}", path.display()));
}

/// Copies busybox to [`CURL`]. Panics instead of replacing a file there
/// that is not a copy of busybox.
fn install_curl() {
    let busybox = fs::read(BUSYBOX).unwrap_or_else(|error| panic!("failed to read {BUSYBOX}: {error}"));
    if let Ok(existing) = fs::read(CURL) {
        assert!(
            existing == busybox,
            "{CURL} exists and is not a copy of {BUSYBOX}; not replacing it (run these tests in the test VM)"
        );
        return;
    }
    fs::copy(BUSYBOX, CURL).unwrap_or_else(|error| panic!("failed to copy {BUSYBOX} to {CURL}: {error}"));
    set_mode(Path::new(CURL), 0o755);
}

/// Points the symlink `link` at `target`, replacing an older symlink.
/// Panics when something other than a symlink is there.
pub(crate) fn replace_symlink(target: &str, link: &str) {
    if let Ok(metadata) = fs::symlink_metadata(link) {
        assert!(metadata.file_type().is_symlink(), "{link} exists and is not a symlink; not replacing it");
        fs::remove_file(link).unwrap_or_else(|error| panic!("failed to remove {link}: {error}"));
    }
    symlink(target, link).unwrap_or_else(|error| panic!("failed to link {link} to {target}: {error}"));
}

/// Returns `bytes` as lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
    }
    hex
}

/// Returns the SHA-256 of `bytes` as lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Returns the SHA-256 of the file at `path` as lowercase hex.
pub(crate) fn sha256_file(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()));
    sha256_hex(&bytes)
}
