//! Mounts: `mount(2)`, `move_mount(2)` and `umount(2)`.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::protected_denial;
use crate::common::Daemon;

/// Returns whether `/proc/self/mounts` lists a mount on `target`.
fn is_mounted(target: &Path) -> bool {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("failed to read /proc/self/mounts");
    let target = target.to_str().expect("the mount point is UTF-8");
    mounts.lines().any(|line| line.split(' ').nth(1) == Some(target))
}

/// A tmpfs the test mounts itself, unmounted on drop.
struct TestMount {
    dir: tempfile::TempDir,
}

impl TestMount {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("failed to create a mount point");
        let status = Command::new("/bin/mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("failed to run mount");
        assert!(status.success(), "mounting a tmpfs on {} failed: {status}", dir.path().display());
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let _ = Command::new("/bin/umount").arg(self.dir.path()).status();
    }
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn mount_syscall_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let target = tempfile::tempdir().expect("failed to create a mount point");
    let path = target.path().to_str().expect("UTF-8");

    let outcome = daemon.run_probe("mount", &policy, &["mount", path]);

    assert_eq!(outcome.code, 1, "mount(2) must be denied to an agent; {outcome}");
    assert!(outcome.has_line(&format!("mount {path}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    assert!(!is_mounted(target.path()), "nothing may be mounted on {path}");
    protected_denial(&daemon, "mount", "mount");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn umount_syscall_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let mount = TestMount::new();
    let path = mount.path().to_str().expect("UTF-8");

    let outcome = daemon.run_probe("umount", &policy, &["umount", path]);

    assert_eq!(outcome.code, 1, "umount(2) must be denied to an agent; {outcome}");
    assert!(outcome.has_line(&format!("umount {path}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    assert!(is_mounted(mount.path()), "the tmpfs on {path} must still be mounted");
    protected_denial(&daemon, "umount", "umount");
}

#[test]
#[ignore = "needs root and a kernel running BPF LSM; run with `cargo xtask vm-test`"]
fn move_mount_denied() {
    let daemon = Daemon::start();
    let policy = daemon.policy_p0();
    let source = TestMount::new();
    let target = tempfile::tempdir().expect("failed to create a mount point");
    let (source_path, target_path) = (source.path().to_str().expect("UTF-8"), target.path().to_str().expect("UTF-8"));

    let outcome = daemon.run_probe("move-mount", &policy, &["move-mount", source_path, target_path]);

    assert_eq!(outcome.code, 1, "move_mount(2) must be denied to an agent; {outcome}");
    assert!(outcome.has_line(&format!("move_mount {target_path}: EPERM (errno 1)")), "expected EPERM; {outcome}");
    assert!(!is_mounted(target.path()), "nothing may be mounted on {target_path}");
    protected_denial(&daemon, "move-mount", "move_mount");
}
