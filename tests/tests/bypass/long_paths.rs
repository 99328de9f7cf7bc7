//! Long paths and deep trees. The kernel builds the whole resolved path
//! (up to `PATH_MAX`, 4096 bytes) and the rules match its first 256
//! bytes, so a long name meets the rule of its folder and the ledger keeps
//! the whole name. A path the kernel cannot build is denied and recorded
//! as truncated, with no shortened name.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::common::ledger::wait_decision;
use crate::common::{Daemon, require_bpf_lsm};

use super::{POLICY_ALLOWLIST, USERS, agent_name, assert_denied, copy_busybox, make_dir, probe, probe_str};

/// Bytes of the long components of the near-`PATH_MAX` cases.
const COMPONENT: usize = 200;

/// Creates `path` below `/`, one folder at a time relative to the last, so
/// a path longer than `PATH_MAX` can be made. Each folder gets mode 0755.
fn make_dir_walk(path: &[u8]) {
    let mut dirfd = open_dir(c"/".as_ptr(), libc::AT_FDCWD);
    for component in path.split(|&byte| byte == b'/').filter(|c| !c.is_empty()) {
        let name = CString::new(component).expect("a path component has no NUL byte");
        // SAFETY: `name` outlives the call.
        let made = unsafe { libc::mkdirat(dirfd, name.as_ptr(), 0o755) };
        let error = std::io::Error::last_os_error();
        assert!(made == 0 || error.raw_os_error() == Some(libc::EEXIST), "mkdirat {component:?} failed: {error}");
        let next = open_dir(name.as_ptr(), dirfd);
        // SAFETY: `dirfd` is a descriptor this function opened.
        unsafe { libc::close(dirfd) };
        dirfd = next;
    }
    // SAFETY: as above.
    unsafe { libc::close(dirfd) };
}

fn open_dir(name: *const libc::c_char, at: libc::c_int) -> libc::c_int {
    // SAFETY: `name` is a C string the caller keeps alive for the call.
    let fd = unsafe { libc::openat(at, name, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "openat of a folder failed: {}", std::io::Error::last_os_error());
    fd
}

/// Writes `contents` to `path`, which may be longer than `PATH_MAX`, with
/// mode 0644.
fn write_file_walk(path: &[u8], contents: &[u8]) {
    let (folder, name) = path.split_at(path.iter().rposition(|&byte| byte == b'/').expect("an absolute path"));
    make_dir_walk(folder);
    let mut dirfd = open_dir(c"/".as_ptr(), libc::AT_FDCWD);
    for component in folder.split(|&byte| byte == b'/').filter(|c| !c.is_empty()) {
        let name = CString::new(component).expect("a path component has no NUL byte");
        let next = open_dir(name.as_ptr(), dirfd);
        // SAFETY: `dirfd` is a descriptor this function opened.
        unsafe { libc::close(dirfd) };
        dirfd = next;
    }
    let name = CString::new(&name[1..]).expect("a file name has no NUL byte");
    // SAFETY: `name` outlives the call.
    let fd = unsafe {
        libc::openat(dirfd, name.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644)
    };
    assert!(fd >= 0, "creating the file failed: {}", std::io::Error::last_os_error());
    // SAFETY: `contents` outlives the call; `fd` and `dirfd` are ours.
    unsafe {
        let written = libc::write(fd, contents.as_ptr().cast(), contents.len());
        assert_eq!(
            usize::try_from(written).ok(),
            Some(contents.len()),
            "write failed: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
        libc::close(dirfd);
    }
}

/// Returns `base` followed by `count` components of [`COMPONENT`] bytes.
fn long_folder(base: &str, count: usize) -> String {
    let mut path = base.to_owned();
    for index in 0..count {
        path.push('/');
        path.push_str(&format!("{index:03}").repeat(COMPONENT / 3));
        path.push_str(&"x".repeat(COMPONENT % 3));
    }
    path
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_long_exec_path_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("allowlist", POLICY_ALLOWLIST);
    let ledger = daemon.ledger();
    let folder = format!("/home/agent/work/{}/{}", "a".repeat(250), "b".repeat(250));
    make_dir(Path::new(&folder));
    let binary = format!("{folder}/x");
    copy_busybox(Path::new(&binary));
    assert!(binary.len() > 256, "the path must be longer than the 256 bytes a rule can name");

    for user in USERS {
        let agent = agent_name("long-exec", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["exec", &binary, "id"]);
        assert_denied(&outcome, "exec /home/agent/work/aaa", "no exec rule covers /home/agent/work");
        let (denial, _) = wait_decision(&ledger, &agent, "exec", "deny");
        assert_eq!(denial["path"], binary.as_str(), "the ledger keeps the whole path: {denial}");
        assert_eq!(denial["path_truncated"], false, "{denial}");
        assert_eq!(denial["reason"], "default", "{denial}");

        let agent = agent_name("long-exec-control", user);
        let outcome = probe_str(&daemon, &agent, &policy, user, &["exec", "/usr/bin/id"]);
        assert_eq!(outcome.code, 0, "/usr/bin/id is busybox in /bin, which exec-bin allows; {outcome}");
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_deep_trees_denied() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("allowlist", POLICY_ALLOWLIST);
    let ledger = daemon.ledger();

    let numbered: Vec<String> = (1..=40).map(|n| n.to_string()).collect();
    let deep = format!("/home/agent/work/deep/{}/f", numbered.join("/"));
    let near_max = format!("{}/f", long_folder("/home/agent/work/deep", 19));
    assert_eq!(deep.split('/').filter(|c| !c.is_empty()).count(), 45, "{deep}");
    assert!(near_max.len() > 3800, "{} bytes", near_max.len());
    assert!(near_max.len() < 4096, "{} bytes", near_max.len());
    for path in [&deep, &near_max] {
        make_dir(Path::new(path).parent().expect("a file path has a folder"));
        fs::write(path, b"s").unwrap_or_else(|error| panic!("failed to write {path}: {error}"));
    }

    for user in USERS {
        for (step, path) in [("components", &deep), ("near-max", &near_max)] {
            let agent = agent_name(&format!("deep-{step}"), user);
            let outcome = probe_str(&daemon, &agent, &policy, user, &["open", path, "read"]);
            assert_denied(&outcome, "open /home/agent/work/deep/", "deny-deep covers the whole subtree");
            let (denial, _) = wait_decision(&ledger, &agent, "open", "deny");
            assert_eq!(denial["path"], path.as_str(), "the ledger keeps the whole path: {denial}");
            assert_eq!(denial["rule"], "deny-deep", "{denial}");
            assert_eq!(denial["path_truncated"], false, "{denial}");
        }
    }
}

/// Opens a file whose path is longer than `PATH_MAX`, in a folder every
/// rule allows. The kernel cannot name it, so the open is denied, and the
/// record marks the path as truncated instead of naming part of it.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_path_beyond_max_fails_closed() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("allowlist", POLICY_ALLOWLIST);
    let ledger = daemon.ledger();
    let path = format!("{}/f", long_folder("/home/agent/work/long", 21));
    assert!(path.len() > 4096, "{} bytes", path.len());
    write_file_walk(path.as_bytes(), b"s");

    for user in USERS {
        let agent = agent_name("beyond-max", user);
        let outcome =
            probe(&daemon, &agent, &policy, user, &[OsStr::new("open-walk"), OsStr::from_bytes(path.as_bytes())]);
        assert_denied(&outcome, "open /home/agent/work/long/", "a path the kernel cannot build is denied");
        let (denial, _) = wait_decision(&ledger, &agent, "open", "deny");
        assert_eq!(denial["reason"], "path_unresolved", "{denial}");
        assert_eq!(denial["path_truncated"], true, "the record marks the truncation: {denial}");
        assert_eq!(denial["path"], "", "the record must not contain a shortened path: {denial}");
    }
}

/// Renames a file whose path is longer than `PATH_MAX`, in a folder every
/// rule allows. The kernel program cannot build the name, so the rename
/// is denied and recorded as truncated, with no shortened name.
#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn bypass_rename_beyond_max_fails_closed() {
    require_bpf_lsm();
    let daemon = Daemon::start();
    let policy = daemon.write_policy("allowlist", POLICY_ALLOWLIST);
    let ledger = daemon.ledger();
    let path = format!("{}/r", long_folder("/home/agent/work/long-rename", 21));
    assert!(path.len() > 4096, "{} bytes", path.len());
    write_file_walk(path.as_bytes(), b"s");

    let args = [OsStr::new("rename-walk"), OsStr::from_bytes(path.as_bytes()), OsStr::new("renamed")];
    let outcome = probe(&daemon, "rename-beyond-max", &policy, None, &args);
    assert_denied(&outcome, "rename /home/agent/work/long-rename/", "a name the walk cannot build is denied");
    let (denial, _) = wait_decision(&ledger, "rename-beyond-max", "rename", "deny");
    assert_eq!(denial["reason"], "path_unresolved", "{denial}");
    assert_eq!(denial["path_truncated"], true, "the record marks the truncation: {denial}");
    assert_eq!(denial["old_path"], "", "the record must not contain a shortened name: {denial}");
}
