//! File operations shared by the daemon's state files and hashes.

use std::{
    ffi::OsString,
    fs::{self, File, OpenOptions},
    io::{self, Read, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

/// Replaces `path` with `bytes` durably: writes `<path>.new`, syncs it,
/// renames it over `path` and syncs the folder, so a crash leaves either
/// the old or the new contents.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut staging = OsString::from(path.as_os_str());
    staging.push(".new");
    let staging = PathBuf::from(staging);
    let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(&staging)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&staging, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Returns the SHA-256 digest of everything `reader` yields.
pub(crate) fn sha256(mut reader: impl Read) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..read]);
    }
}

/// Hashes a regular file that is not a symbolic link, or returns `None`
/// when `path` is anything else or cannot be read. The file is opened
/// with `O_NOFOLLOW` and checked through its descriptor, so a link swapped
/// in after a check by name cannot send the hash to another file.
pub(crate) fn sha256_regular_file(path: &Path) -> Option<[u8; 32]> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    sha256(file).ok()
}

#[cfg(test)]
mod tests {
    use super::{sha256, sha256_regular_file, write_atomic};

    #[test]
    fn write_atomic_replaces_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!dir.path().join("state.json.new").exists(), "the staging file is renamed away");
    }

    #[test]
    fn regular_file_hash_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        std::fs::write(&file, b"").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(sha256_regular_file(&file).is_some(), "a regular file is hashed");
        assert_eq!(sha256_regular_file(&link), None, "a symbolic link is not followed");
        assert_eq!(sha256_regular_file(dir.path()), None, "a folder is not hashed");
    }

    #[test]
    fn sha256_of_empty_input() {
        let digest = sha256(&b""[..]).unwrap();
        assert_eq!(hex::encode(digest), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
