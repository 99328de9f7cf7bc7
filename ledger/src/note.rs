//! Signed notes (C2SP `signed-note`): text followed by Ed25519 signature
//! lines.
//!
//! A note is UTF-8 text ending in a newline, then one empty line, then one or
//! more lines `— <key name> <base64(key id || signature)>`, each ending in a
//! newline. The key id is 4 bytes, big-endian. No ASCII control character
//! other than newline may appear. The text may contain empty lines itself:
//! the last empty line separates it from the signatures, and every line after
//! it must be a signature line. Key names must not contain white space or
//! the characters that can hide or reorder text on a terminal
//! ([`is_hidden_character`]), because messages print them.
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
    /// A line after the empty line that is not a valid signature line.
    /// Lines are numbered from 1, the first text line.
    #[error(
        "note is malformed: line {line} is not a signature line `\u{2014} <key name> <base64 signature>`: {reason}"
    )]
    InvalidSignatureLine { line: usize, reason: &'static str },
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
    for line in signatures.lines() {
        let (name, id, signature) = parse_signature_line(line).map_err(NoteError::Malformed)?;
        if name != key.name() || id != key.id() {
            // Escaped, so that a look-alike character (a Cyrillic `о` for an
            // `o`) shows in the message instead of reading as the key's name.
            signers.push(format!("{}+{id:08x}", name.escape_default()));
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
/// lines, and checks the characters and the form of every signature line.
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
    // The text lines, then the empty line, come before the first signature.
    let first_signature_line = text.lines().count() + 2;
    for (position, line) in signatures.lines().enumerate() {
        if position == MAX_SIGNATURES {
            return Err(NoteError::Malformed("has more than 64 signature lines"));
        }
        parse_signature_line(line)
            .map_err(|reason| NoteError::InvalidSignatureLine { line: first_signature_line + position, reason })?;
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

/// Returns whether a character may not appear in a key name although it
/// is not an ASCII control character: C1 controls (U+0080 to U+009F), the
/// line and paragraph separators, zero-width characters and marks,
/// bidirectional embeddings, overrides and isolates, and the byte order
/// mark. Each can hide or reorder text where a message prints the name.
pub fn is_hidden_character(character: char) -> bool {
    matches!(
        character,
        '\u{80}'..='\u{9f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Parses `— <name> <base64>` into the key name, key id and signature, or
/// returns why the line is not one.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), &'static str> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or("it does not start with an em dash and a space")?;
    let (name, encoded) = rest.split_once(' ').ok_or("it has no space after the key name")?;
    if name.is_empty() || encoded.contains(' ') {
        return Err("it does not have exactly one space between the key name and the signature");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control() || is_hidden_character(c)) {
        return Err(
            "the key name contains white space, a control character or a character that hides or reorders text",
        );
    }
    let payload = BASE64.decode(encoded).map_err(|_| "the signature is not valid base64")?;
    if payload.len() < 5 {
        return Err("the signature is shorter than a key id and one byte");
    }
    let id = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
    Ok((name, id, payload[4..].to_vec()))
}
