//! Signed notes (C2SP `signed-note`): text followed by Ed25519 signature
//! lines.
//!
//! A note is UTF-8 text ending in a newline, then one empty line, then one or
//! more lines `— <key name> <base64(key id || signature)>`, each ending in a
//! newline. The key id is 4 bytes, big-endian. No ASCII control character
//! other than newline may appear. The text may contain empty lines itself:
//! the last empty line separates it from the signatures.
//!
//! [`open`] accepts a note only when a signature with the verifier key's
//! name and id verifies. Signatures from other keys are skipped, as the
//! format requires, but a note with none from the expected key is rejected.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use ed25519_dalek::{Signature, Signer, Verifier};

use crate::keys::{SigningKey, VerifierKey};

/// The signature line prefix: an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Maximum number of signature lines read from one note. The format asks
/// verifiers to accept at least 16.
const MAX_SIGNATURES: usize = 64;

/// A note that is malformed or not signed by the expected key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note is malformed: {0}")]
    Malformed(&'static str),
    #[error("note has no signature from key {name}+{id:08x} (it is signed by {signers})")]
    UnknownKey { name: String, id: u32, signers: String },
    #[error("note signature by key {name}+{id:08x} is invalid")]
    BadSignature { name: String, id: u32 },
}

/// Signs `text` with `key` and returns the signed note. `text` must end
/// in a newline and contain no control characters other than newlines.
pub fn sign(text: &str, key: &SigningKey) -> String {
    debug_assert!(check_text(text).is_ok(), "note text must be valid");
    let signature = key.ed25519().sign(text.as_bytes());
    let mut payload = Vec::with_capacity(4 + 64);
    payload.extend_from_slice(&key.id().to_be_bytes());
    payload.extend_from_slice(&signature.to_bytes());
    format!("{text}\n{SIGNATURE_PREFIX}{} {}\n", key.name(), BASE64.encode(payload))
}

/// Checks the signature of `key` on `note` and returns the note text,
/// including its final newline.
pub fn open<'a>(note: &'a str, key: &VerifierKey) -> Result<&'a str, NoteError> {
    let (text, signatures) = split(note)?;
    let mut signers = Vec::new();
    for line in signatures.lines().take(MAX_SIGNATURES) {
        let (name, id, signature) = parse_signature_line(line)?;
        if name != key.name() || id != key.id() {
            signers.push(format!("{name}+{id:08x}"));
            continue;
        }
        let signature =
            Signature::from_slice(&signature).map_err(|_| NoteError::BadSignature { name: name.into(), id })?;
        key.ed25519()
            .verify(text.as_bytes(), &signature)
            .map_err(|_| NoteError::BadSignature { name: name.into(), id })?;
        return Ok(text);
    }
    Err(NoteError::UnknownKey { name: key.name().into(), id: key.id(), signers: signers.join(", ") })
}

/// Splits a note into its text (with the final newline) and its signature
/// lines, and checks the characters.
pub fn split(note: &str) -> Result<(&str, &str), NoteError> {
    if note.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(NoteError::Malformed("contains a control character other than newline"));
    }
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed("does not end in a newline"));
    }
    let separator = note.rfind("\n\n").ok_or(NoteError::Malformed("has no empty line before the signatures"))?;
    let (text, signatures) = (&note[..=separator], &note[separator + 2..]);
    if signatures.is_empty() {
        return Err(NoteError::Malformed("has no signature lines"));
    }
    Ok((text, signatures))
}

/// Checks that `text` can be the text of a note.
pub fn check_text(text: &str) -> Result<(), NoteError> {
    if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
        return Err(NoteError::Malformed("text contains a control character other than newline"));
    }
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("text does not end in a newline"));
    }
    Ok(())
}

/// Parses `— <name> <base64>` into the key name, key id and signature.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(NoteError::Malformed("signature line does not start with an em dash"))?;
    let (name, encoded) =
        rest.split_once(' ').ok_or(NoteError::Malformed("signature line has no space after the key name"))?;
    if name.is_empty() || encoded.contains(' ') {
        return Err(NoteError::Malformed("signature line is not `— <key name> <signature>`"));
    }
    let payload = BASE64.decode(encoded).map_err(|_| NoteError::Malformed("signature is not valid base64"))?;
    if payload.len() < 5 {
        return Err(NoteError::Malformed("signature is shorter than a key id and one byte"));
    }
    let id = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
    Ok((name, id, payload[4..].to_vec()))
}
