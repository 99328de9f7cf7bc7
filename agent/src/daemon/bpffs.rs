//! lupid's pins on the BPF file system, which keep the programs attached
//! and the maps alive while no daemon runs.
//!
//! Layout below [`PIN_DIR`]:
//!
//! - `maps/NAME`: every map of the object except the `.rodata` globals,
//!   shared by every build that takes them over;
//! - `links/BUILD/PROGRAM`: the LSM link of each program in `HOOKS`, where
//!   `BUILD` names the object that contains the programs ([`build_id`]).
//!
//! bpffs contains only BPF objects and folders, so the build id is a folder
//! name rather than a file. The pins last until they are removed or the
//! host reboots.

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

/// Mount point of the BPF file system.
pub(crate) const BPFFS: &str = "/sys/fs/bpf";
/// Folder of lupid's pins.
pub(crate) const PIN_DIR: &str = "/sys/fs/bpf/lupid";

#[derive(Debug, thiserror::Error)]
pub(crate) enum PinError {
    #[error("failed to mount the BPF file system on {BPFFS}: {0}; mount it with `mount -t bpf bpf {BPFFS}`")]
    Mount(nix::Error),
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
}

/// Returns the folder of pinned maps.
pub(crate) fn maps_dir() -> PathBuf {
    Path::new(PIN_DIR).join("maps")
}

/// Returns the folder of the links pinned by build `build`.
pub(crate) fn links_dir(build: &str) -> PathBuf {
    Path::new(PIN_DIR).join("links").join(build)
}

/// Returns the build id of a kernel object: the first 16 hex digits of its
/// SHA-256.
pub(crate) fn build_id(object: &[u8]) -> String {
    hex::encode(&Sha256::digest(object)[..8])
}

/// Mounts bpffs on [`BPFFS`] unless a BPF file system is there already, and
/// creates the pin folders.
pub(crate) fn prepare(build: &str) -> Result<(), PinError> {
    let mounted = nix::sys::statfs::statfs(BPFFS).is_ok_and(|stat| stat.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC);
    if !mounted {
        nix::mount::mount(Some("bpf"), BPFFS, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
            .map_err(PinError::Mount)?;
        tracing::info!(path = BPFFS, "mounted the BPF file system");
    }
    for dir in [maps_dir(), links_dir(build)] {
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    }
    Ok(())
}

/// Returns the names of the pinned maps.
pub(crate) fn pinned_maps() -> Result<Vec<String>, PinError> {
    names_in(&maps_dir())
}

/// Returns the builds that have a links folder, the empty ones included.
pub(crate) fn pinned_builds() -> Result<Vec<String>, PinError> {
    names_in(&Path::new(PIN_DIR).join("links"))
}

/// Returns the names of the entries of `dir`, or none when it is missing.
pub(crate) fn names_in(dir: &Path) -> Result<Vec<String>, PinError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io("list", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Removes the links folder of `build`. Removing a link's last pin detaches
/// its program, unless a process still has the link open.
pub(crate) fn remove_build(build: &str) -> Result<(), PinError> {
    let dir = links_dir(build);
    for name in names_in(&dir)? {
        let path = dir.join(name);
        fs::remove_file(&path).map_err(io("unpin", &path))?;
    }
    fs::remove_dir(&dir).map_err(io("remove", &dir))
}

/// Removes every pin and folder below [`PIN_DIR`]: the programs detach and
/// the maps go away once no process has them open. Returns the number of pins
/// removed.
pub(crate) fn remove_all() -> Result<usize, PinError> {
    let mut removed = 0;
    for build in pinned_builds()? {
        removed += names_in(&links_dir(&build))?.len();
        remove_build(&build)?;
    }
    for name in pinned_maps()? {
        let path = maps_dir().join(name);
        fs::remove_file(&path).map_err(io("unpin", &path))?;
        removed += 1;
    }
    for dir in [Path::new(PIN_DIR).join("links"), maps_dir(), PathBuf::from(PIN_DIR)] {
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &dir)(e)),
        }
    }
    Ok(removed)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PinError {
    let path = path.to_path_buf();
    move |source| PinError::Io { action, path, source }
}

#[cfg(test)]
mod tests {
    use super::build_id;

    #[test]
    fn build_id_is_16_hex_digits() {
        let id = build_id(b"object");
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, build_id(b"other object"));
    }
}
