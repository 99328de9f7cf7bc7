//! Labeled cgroups: where they live, how they are made and removed.
//!
//! Every agent run gets its own cgroup v2 directory under
//! `<cgroup2 mount>/lupid.slice/`. The kernel programs recognise a labeled
//! process by the cgroup id, which on cgroup v2 is the inode number of the
//! cgroup's directory.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Parent of every agent cgroup, below the cgroup v2 mount.
pub(crate) const SLICE: &str = "lupid.slice";

#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error("failed to read /proc/mounts: {0}")]
    Mounts(std::io::Error),
    #[error(
        "no cgroup v2 file system is mounted (no `cgroup2` line in /proc/mounts); mount one with `mount -t cgroup2 none /sys/fs/cgroup`"
    )]
    NoCgroup2,
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { action, path, source }
}

/// Returns the mount point of the cgroup v2 hierarchy.
pub(crate) fn cgroup2_root() -> Result<PathBuf, CgroupError> {
    let mounts = fs::read_to_string("/proc/mounts").map_err(CgroupError::Mounts)?;
    parse_cgroup2_root(&mounts).ok_or(CgroupError::NoCgroup2)
}

fn parse_cgroup2_root(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_source, target, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount_path(target)))
    })
}

/// /proc/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> String {
    raw.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// One agent's cgroup.
#[derive(Clone, Debug)]
pub(crate) struct AgentCgroup {
    pub(crate) path: PathBuf,
    pub(crate) id: u64,
}

/// Creates `<root>/lupid.slice/<name>` and returns it with its id. A
/// leftover directory of that name is an error, never reused, because it
/// may hold processes that were never registered.
pub(crate) fn create(root: &Path, name: &str) -> Result<AgentCgroup, CgroupError> {
    let slice = root.join(SLICE);
    if !slice.exists() {
        fs::create_dir(&slice)
            .or_else(|e| if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(e) })
            .map_err(io("create", &slice))?;
    }
    // A cgroup left by an earlier daemon can have this name. An empty one is
    // removed. One with processes in it is kept and the new run gets another
    // name, so no run shares a cgroup with a process of another run.
    let mut path = slice.join(name);
    for attempt in 1..=MAX_NAME_ATTEMPTS {
        match fs::create_dir(&path) {
            Ok(()) => {
                let id = fs::metadata(&path).map_err(io("stat", &path))?.ino();
                return Ok(AgentCgroup { path, id });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if fs::remove_dir(&path).is_err() {
                    path = slice.join(format!("{name}.{attempt}"));
                }
            }
            Err(e) => return Err(io("create", &path)(e)),
        }
    }
    Err(io("create", &path)(std::io::Error::from(std::io::ErrorKind::AlreadyExists)))
}

/// Names tried for one agent cgroup before giving up.
const MAX_NAME_ATTEMPTS: u32 = 16;

/// Returns true while any process is in the cgroup.
pub(crate) fn is_populated(cgroup: &Path) -> Result<bool, CgroupError> {
    let events_path = cgroup.join("cgroup.events");
    let events = fs::read_to_string(&events_path).map_err(io("read", &events_path))?;
    Ok(events.lines().any(|line| line.trim() == "populated 1"))
}

/// Removes an empty agent cgroup.
pub(crate) fn remove(cgroup: &Path) -> Result<(), CgroupError> {
    fs::remove_dir(cgroup).map_err(io("remove", cgroup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup2_found_in_hybrid_layout() {
        let mounts = "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(parse_cgroup2_root(mounts), Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn cgroup2_found_in_unified_layout() {
        let mounts = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
        assert_eq!(parse_cgroup2_root(mounts), Some(PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn cgroup2_missing() {
        assert_eq!(parse_cgroup2_root("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"), None);
    }

    #[test]
    fn mount_path_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
    }
}
