//! Checkpoints: signed statements of the tree size and root hash (C2SP
//! `tlog-checkpoint`).
//!
//! The note text is exactly three lines, each ending in a newline: the
//! origin (the signing key's name, `lupid.local/<hostname>` by default), the
//! tree size in decimal without leading zeros, and the standard base64 of
//! the RFC 6962 root hash. The note is signed with the ledger's Ed25519 key
//! ([`crate::note`]).
//!
//! A checkpoint of size `n` covers records `0..n`. The ledger writes it as
//! record `n` ([`crate::RecordBody::Checkpoint`]) and stores the note in the
//! `checkpoints` column family under `n`, in the same write. Files of pinned
//! checkpoints hold one or more notes one after another, optionally
//! separated by empty lines ([`split_notes`]).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};

use crate::{
    keys::{SigningKey, VerifierKey},
    note::{self, NoteError},
    record::Hash,
};

/// A checkpoint note that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint text is invalid: {0}")]
    InvalidText(&'static str),
    #[error("checkpoint origin {origin:?} differs from the key name {key_name:?}")]
    OriginMismatch { origin: String, key_name: String },
}

/// A signed checkpoint and the note it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    /// Number of records the checkpoint covers.
    pub tree_size: u64,
    pub root_hash: Hash,
    /// The signed note, as stored and as printed.
    pub note: String,
}

impl Checkpoint {
    /// Signs a checkpoint of a tree with `key`, whose name is the origin.
    pub fn sign(key: &SigningKey, tree_size: u64, root_hash: &Hash) -> Self {
        let text = body(key.name(), tree_size, root_hash);
        let note = note::sign(&text, key);
        Self { origin: key.name().into(), tree_size, root_hash: *root_hash, note }
    }

    /// Checks the note's signature by `key` and parses it. The origin must
    /// equal the key name.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Self, CheckpointError> {
        let text = note::open(note, key)?;
        let checkpoint = parse_text(text, note)?;
        if checkpoint.origin != key.name() {
            return Err(CheckpointError::OriginMismatch { origin: checkpoint.origin, key_name: key.name().into() });
        }
        Ok(checkpoint)
    }

    /// Parses a note without checking any signature, for reading a ledger's
    /// own checkpoints when no verifier key is at hand.
    pub fn parse_unverified(note: &str) -> Result<Self, CheckpointError> {
        let (text, _) = note::split(note)?;
        parse_text(text, note)
    }
}

/// Formats the checkpoint note text.
pub fn body(origin: &str, tree_size: u64, root_hash: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{}\n", BASE64.encode(root_hash))
}

fn parse_text(text: &str, note: &str) -> Result<Checkpoint, CheckpointError> {
    let mut lines = text.strip_suffix('\n').unwrap_or(text).split('\n');
    let origin =
        lines.next().filter(|line| !line.is_empty()).ok_or(CheckpointError::InvalidText("origin line is empty"))?;
    // The origin is a key name, and messages print it.
    if origin.chars().any(|c| c.is_whitespace() || c.is_control() || note::is_hidden_character(c)) {
        return Err(CheckpointError::InvalidText(
            "origin contains white space, a control character or a character that hides or reorders text",
        ));
    }
    let size = lines.next().ok_or(CheckpointError::InvalidText("tree size line is missing"))?;
    let root = lines.next().ok_or(CheckpointError::InvalidText("root hash line is missing"))?;
    if lines.next().is_some() {
        return Err(CheckpointError::InvalidText("has extension lines, which lupid does not write"));
    }

    let leading_zero = size.len() > 1 && size.starts_with('0');
    if leading_zero || size.is_empty() || !size.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(CheckpointError::InvalidText("tree size is not a decimal number without leading zeros"));
    }
    let tree_size = size.parse().map_err(|_| CheckpointError::InvalidText("tree size does not fit 64 bits"))?;
    let root_hash = BASE64
        .decode(root)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or(CheckpointError::InvalidText("root hash is not the base64 of 32 bytes"))?;
    Ok(Checkpoint { origin: origin.into(), tree_size, root_hash, note: note.into() })
}

/// Splits text holding one or more checkpoint notes, one after another,
/// into the notes. Empty lines between notes are dropped. A checkpoint's
/// text has no empty line, so each note is its text lines, one empty line,
/// and the signature lines that follow.
pub fn split_notes(text: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let mut current = String::new();
    let mut in_signatures = false;
    for line in text.split_inclusive('\n') {
        let is_signature = line.starts_with('\u{2014}');
        if in_signatures && !is_signature {
            notes.push(std::mem::take(&mut current));
            in_signatures = false;
        }
        if line.trim_end_matches('\n').is_empty() {
            if current.is_empty() {
                continue;
            }
            // The empty line that ends the text starts the signatures.
            in_signatures = true;
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        notes.push(current);
    }
    notes
}
