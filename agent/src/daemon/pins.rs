//! The start-up check of the ledger against the daemon's newest signed
//! checkpoint.
//!
//! Every checkpoint the daemon signs is also written to
//! `<state-dir>/checkpoint.last` and, with `--pin-checkpoints`, appended to
//! the pin file or written into the pin folder. At start the daemon reads
//! those notes and checks their signatures with its own key.
//!
//! The daemon rejects a ledger that does not extend the newest checkpoint.
//! Such a ledger has fewer records than the checkpoint covers (a cut tail,
//! a deleted store) or another root hash at that size (a rewritten
//! history). A pinned note signed by another key means that the state
//! folder, key included, was replaced, so the daemon rejects it as well.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use lupid_ledger::{Checkpoint, Ledger, VerifierKey, checkpoint::split_notes};

/// File in the state folder that contains the newest checkpoint note.
pub(crate) const LAST_CHECKPOINT_FILE: &str = "checkpoint.last";

/// A verified checkpoint and the file it was read from.
pub(crate) struct Pinned {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) source: PathBuf,
}

/// Checks that the daemon can write checkpoints to `sink`: an existing
/// folder or file it may write, or a new file in a folder it may write.
/// A missing folder (an off-host mount that is not mounted) would
/// otherwise show only as one error log line per checkpoint.
pub(crate) fn check_sink(sink: &Path) -> Result<()> {
    use nix::unistd::{AccessFlags, access};
    let target = if sink.exists() {
        sink
    } else {
        sink.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."))
    };
    if !target.exists() {
        bail!(
            "--pin-checkpoints {}: the folder {} does not exist; create it or mount the off-host storage there",
            sink.display(),
            target.display()
        );
    }
    access(target, AccessFlags::W_OK).map_err(|error| {
        anyhow::anyhow!(
            "--pin-checkpoints {}: {} is not writable ({error}); pass a writable file or folder",
            sink.display(),
            target.display()
        )
    })
}

/// Replaces `path` with `note` and makes the change durable.
pub(crate) fn save_last(path: &Path, note: &str) -> std::io::Result<()> {
    super::files::write_atomic(path, note.as_bytes())
}

/// Finds the checkpoint with the largest tree size among the notes in
/// `sources` (files of notes, or folders of note files). A missing source
/// contains no notes. Fails when a note does not verify with `key`.
pub(crate) fn newest(sources: &[&Path], key: &VerifierKey) -> Result<Option<Pinned>> {
    let mut newest: Option<Pinned> = None;
    for source in sources {
        for (file, note) in read_notes(source)? {
            let checkpoint = Checkpoint::open(&note, key).map_err(|e| {
                anyhow::anyhow!(
                    "{}: a checkpoint note does not verify with this daemon's key {} ({e}). The state folder, \
                     signing key included, was replaced, or the file belongs to another host. Check the old \
                     ledger with `lupid-ledger verify --ledger OLD_LEDGER --pinned {} --key OLD_KEY`, where \
                     OLD_KEY is the checkpoint.key.pub of the old state folder. To start a new ledger on \
                     purpose, move this file away first",
                    file.display(),
                    key.name(),
                    file.display()
                )
            })?;
            if newest.as_ref().is_none_or(|pinned| checkpoint.tree_size > pinned.checkpoint.tree_size) {
                newest = Some(Pinned { checkpoint, source: file });
            }
        }
    }
    Ok(newest)
}

/// Checks that `ledger` extends `pinned`: it has at least `tree_size`
/// records, and the first `tree_size` of them have the signed root hash.
pub(crate) fn check_extends(ledger: &Ledger, pinned: &Pinned) -> Result<()> {
    let Pinned { checkpoint, source } = pinned;
    let size = checkpoint.tree_size;
    // The daemon writes the verifier key beside its signing key, in the
    // state folder that contains the ledger.
    let verifier_file = ledger.path().parent().unwrap_or(ledger.path()).join("checkpoint.key.pub");
    let advice = format!(
        "the ledger was cut, deleted or replaced since that checkpoint was signed. Keep {} for the \
         investigation and run `lupid-ledger verify --ledger {} --pinned {} --key {}`. To start a new ledger \
         on purpose, move the old state folder and the pinned checkpoints away",
        ledger.path().display(),
        ledger.path().display(),
        source.display(),
        verifier_file.display()
    );
    if ledger.len() < size {
        bail!(
            "the ledger does not extend the signed checkpoint: it contains {} records, but the checkpoint in {} \
             covers {size}, so {advice}",
            ledger.len(),
            source.display()
        );
    }
    let root = ledger.root_at(size).context("failed to compute the ledger's root at the pinned size")?;
    if root != checkpoint.root_hash {
        bail!(
            "the ledger does not extend the signed checkpoint: its first {size} records do not have the root \
             hash that the checkpoint in {} signed, so {advice}",
            source.display()
        );
    }
    Ok(())
}

/// Reads every note in a file, or in each `checkpoint-*` file of a folder,
/// with the file it came from.
fn read_notes(source: &Path) -> Result<Vec<(PathBuf, String)>> {
    let read = |path: &Path| {
        fs::read_to_string(path).with_context(|| format!("failed to read checkpoint notes from {}", path.display()))
    };
    if !source.exists() {
        return Ok(Vec::new());
    }
    if !source.is_dir() {
        return Ok(split_notes(&read(source)?).into_iter().map(|note| (source.to_owned(), note)).collect());
    }
    let mut notes = Vec::new();
    let entries = fs::read_dir(source).with_context(|| format!("failed to list {}", source.display()))?;
    for entry in entries {
        let path = entry.with_context(|| format!("failed to list {}", source.display()))?.path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("checkpoint-")) {
            notes.extend(split_notes(&read(&path)?).into_iter().map(|note| (path.clone(), note)));
        }
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use lupid_ledger::{DaemonStop, Ledger, RecordBody, SigningKey};

    use super::{LAST_CHECKPOINT_FILE, check_extends, check_sink, newest, save_last};

    fn stop() -> RecordBody {
        RecordBody::DaemonStop(DaemonStop { reason: "test".into() })
    }

    #[test]
    fn check_extends_rejects_cut_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed("lupid.test/host", &[7; 32]).unwrap();
        let last = dir.path().join(LAST_CHECKPOINT_FILE);
        {
            let mut ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
            ledger.append_batch((0..5).map(|i| (i, stop())).collect()).unwrap();
            save_last(&last, &ledger.checkpoint(&key).unwrap().note).unwrap();
        }
        let pinned = newest(&[last.as_path()], &key.verifier()).unwrap().expect("a pinned checkpoint");
        assert_eq!(pinned.checkpoint.tree_size, 5);

        let ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        check_extends(&ledger, &pinned).expect("the ledger that signed the checkpoint extends it");

        let fresh = Ledger::open(&dir.path().join("replaced")).unwrap();
        let error = check_extends(&fresh, &pinned).unwrap_err().to_string();
        assert!(error.contains("contains 0 records"), "{error}");
        assert!(error.contains("covers 5"), "{error}");
        // The advice is a command that runs as printed, key included.
        let verifier_file = dir.path().join("checkpoint.key.pub");
        assert!(error.contains(&format!("--key {}`", verifier_file.display())), "{error}");

        let mut rewritten = Ledger::open(&dir.path().join("rewritten")).unwrap();
        rewritten.append_batch((0..7).map(|i| (i + 100, stop())).collect()).unwrap();
        let error = check_extends(&rewritten, &pinned).unwrap_err().to_string();
        assert!(error.contains("do not have the root hash"), "{error}");
    }

    #[test]
    fn newest_rejects_note_from_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let old_key = SigningKey::from_seed("lupid.test/host", &[1; 32]).unwrap();
        let new_key = SigningKey::from_seed("lupid.test/host", &[2; 32]).unwrap();
        let last = dir.path().join(LAST_CHECKPOINT_FILE);
        let mut ledger = Ledger::open(&dir.path().join("ledger")).unwrap();
        ledger.append(1, stop()).unwrap();
        save_last(&last, &ledger.checkpoint(&old_key).unwrap().note).unwrap();

        let error = newest(&[last.as_path()], &new_key.verifier()).err().expect("an error").to_string();
        assert!(error.contains("does not verify with this daemon's key"), "{error}");
        assert!(error.contains("--key OLD_KEY"), "{error}");
    }

    #[test]
    fn sink_must_be_writable() {
        let dir = tempfile::tempdir().unwrap();
        check_sink(dir.path()).expect("an existing folder");
        check_sink(&dir.path().join("notes")).expect("a new file in an existing folder");
        let missing = dir.path().join("offhost").join("lupid");
        let error = check_sink(&missing).unwrap_err().to_string();
        assert!(error.contains("does not exist; create it or mount"), "{error}");
    }

    #[test]
    fn newest_of_missing_source_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed("lupid.test/host", &[3; 32]).unwrap();
        let missing = dir.path().join("nothing-here");
        assert!(newest(&[missing.as_path()], &key.verifier()).unwrap().is_none());
    }
}
