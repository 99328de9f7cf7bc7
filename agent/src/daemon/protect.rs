//! Telling the kernel programs which process is the daemon, so the
//! `task_kill` and `ptrace_access_check` protections keep agents away from
//! it, and which folders are lupid's own, so no agent adds, removes or
//! renames a name in them.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;
use aya::maps::{Array, HashMap, Map, MapData};
use lupid_common::{InodeKey, PROTECTED_DIRS_CAPACITY, ProtectedDir, RULE_PATH_MAX};

use super::{bpffs, kernel::KernelError};

/// Name of the map whose slot 0 contains the daemon's thread group id.
const DAEMON_MAP: &str = "DAEMON";

/// Writes this process's id into the pinned `DAEMON` map. Called after
/// [`super::kernel::Kernel::load`], which pins every map, on a fresh start
/// as well as on a takeover of pinned programs, whose map still names the
/// previous daemon.
///
/// NOTE: the id is the one of the daemon's pid namespace, and the kernel
/// compares it with `task_struct::tgid`, the id in the initial namespace,
/// so a daemon in another pid namespace is not protected.
pub(crate) fn register_daemon() -> Result<(), KernelError> {
    let path = bpffs::maps_dir().join(DAEMON_MAP);
    let data = MapData::from_pin(&path).map_err(|source| KernelError::Pinned { path, source })?;
    let map = Map::from_map_data(data)
        .map_err(|source| KernelError::MapType { map: DAEMON_MAP, source: Box::new(source) })?;
    let mut daemon: Array<MapData, u32> =
        Array::try_from(map).map_err(|source| KernelError::MapType { map: DAEMON_MAP, source: Box::new(source) })?;
    daemon
        .set(0, std::process::id(), 0)
        .map_err(|source| KernelError::Update { map: DAEMON_MAP, source: Box::new(source) })
}

/// Name of the map of lupid's own folders, by directory inode.
const PROTECTED_DIRS_MAP: &str = "PROTECTED_DIRS";
/// Deepest folder level below a protected folder that is registered.
const MAX_DEPTH: usize = 8;

/// Writes every folder in `folders`, and every folder below them, into the
/// pinned `PROTECTED_DIRS` map, then removes the entries of folders that
/// are gone, so a takeover never leaves the map empty. The kernel then
/// denies labeled agents every new, removed or renamed name in them.
/// Returns how many folders are protected.
///
/// NOTE: a folder created below a protected one after the start is not
/// registered until the next start. A folder more than [`MAX_DEPTH`] levels
/// below a protected one is never registered.
pub(crate) fn register_folders(folders: &[&Path]) -> anyhow::Result<usize> {
    let mut entries = BTreeMap::new();
    for folder in folders {
        collect_folders(folder, 0, &mut entries)?;
    }
    if entries.len() > PROTECTED_DIRS_CAPACITY as usize {
        anyhow::bail!(
            "lupid's folders contain {} folders, but the kernel map has room for {PROTECTED_DIRS_CAPACITY}: \
             remove folders from the state folder",
            entries.len()
        );
    }
    let path = bpffs::maps_dir().join(PROTECTED_DIRS_MAP);
    let data = MapData::from_pin(&path).map_err(|source| KernelError::Pinned { path, source })?;
    let map = Map::from_map_data(data)
        .map_err(|source| KernelError::MapType { map: PROTECTED_DIRS_MAP, source: Box::new(source) })?;
    let mut dirs: HashMap<MapData, InodeKey, ProtectedDir> = HashMap::try_from(map)
        .map_err(|source| KernelError::MapType { map: PROTECTED_DIRS_MAP, source: Box::new(source) })?;
    for (key, value) in &entries {
        dirs.insert(key, value, 0)
            .map_err(|source| KernelError::Update { map: PROTECTED_DIRS_MAP, source: Box::new(source) })?;
    }
    let stale: Vec<InodeKey> = dirs.keys().filter_map(Result::ok).filter(|key| !entries.contains_key(key)).collect();
    for key in stale {
        dirs.remove(&key).map_err(|source| KernelError::Update { map: PROTECTED_DIRS_MAP, source: Box::new(source) })?;
    }
    Ok(entries.len())
}

/// Adds `folder` and the folders below it, without following symbolic
/// links. A folder that does not exist is skipped.
fn collect_folders(folder: &Path, depth: usize, entries: &mut BTreeMap<InodeKey, ProtectedDir>) -> anyhow::Result<()> {
    let metadata = match std::fs::symlink_metadata(folder) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("failed to read {}", folder.display())),
    };
    if !metadata.is_dir() {
        return Ok(());
    }
    entries.insert(inode_key(&metadata), protected_dir(folder));
    if depth == MAX_DEPTH {
        return Ok(());
    }
    let children = std::fs::read_dir(folder).with_context(|| format!("failed to list {}", folder.display()))?;
    for child in children {
        let child = child.with_context(|| format!("failed to list {}", folder.display()))?;
        // A child whose type cannot be read fails the start, because a
        // skipped folder would be left unprotected.
        let kind = child.file_type().with_context(|| format!("failed to read the type of {}", child.path().display()))?;
        if kind.is_dir() {
            collect_folders(&child.path(), depth + 1, entries)?;
        }
    }
    Ok(())
}

/// Returns the kernel's key for the inode `metadata` describes: `stat`
/// reports the device in the user-space encoding, and the kernel keeps
/// major and minor as `major << 20 | minor`.
fn inode_key(metadata: &std::fs::Metadata) -> InodeKey {
    let dev = metadata.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    InodeKey { ino: metadata.ino(), dev: (major << 20) | (minor & 0xf_ffff), padding: 0 }
}

/// Returns the record text of `folder`: its path, or nothing when the path
/// is longer than the kernel keeps, so no record shows a shortened path.
fn protected_dir(folder: &Path) -> ProtectedDir {
    let mut value = ProtectedDir { len: 0, path: [0; RULE_PATH_MAX] };
    let bytes = folder.as_os_str().as_bytes();
    if let (true, Ok(len)) = (bytes.len() <= RULE_PATH_MAX, u32::try_from(bytes.len())) {
        value.path[..bytes.len()].copy_from_slice(bytes);
        value.len = len;
    }
    value
}
