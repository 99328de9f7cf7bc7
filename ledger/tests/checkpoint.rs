//! Signed notes, checkpoint text and key files.
//!
//! The interoperability vector is the example of Go's
//! `golang.org/x/mod/sumdb/note` package documentation: its signing key,
//! text and signature by `PeterNeumann`. Ed25519 signatures are
//! deterministic, so signing the same text must give the same signature.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use lupid_ledger::{
    Checkpoint, CheckpointError, KeyError, NoteError, SigningKey, VerifierKey,
    checkpoint::split_notes,
    keys::{self, key_id},
    note,
};
use tempfile::TempDir;

const GO_SIGNING_KEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIGNATURE: &str =
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

fn write_key_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("key");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn test_key(name: &str, seed: u8) -> SigningKey {
    SigningKey::from_seed(name, &[seed; 32]).unwrap()
}

#[test]
fn go_note_vector_signs_identically() {
    let dir = TempDir::new().unwrap();
    let key = keys::load(&write_key_file(dir.path(), GO_SIGNING_KEY)).unwrap();
    assert_eq!(key.verifier().to_string(), GO_VERIFIER_KEY);
    let signed = note::sign(GO_TEXT, &key);
    assert_eq!(signed, format!("{GO_TEXT}\n\u{2014} PeterNeumann {GO_SIGNATURE}\n"));
}

#[test]
fn go_note_vector_verifies() {
    let verifier = VerifierKey::parse(GO_VERIFIER_KEY).unwrap();
    assert_eq!(verifier.id(), 0xc74f_20a3);
    let signed = format!("{GO_TEXT}\n\u{2014} PeterNeumann {GO_SIGNATURE}\n");
    assert_eq!(note::open(&signed, &verifier), Ok(GO_TEXT));
}

#[test]
fn key_id_follows_signed_note() {
    let key = test_key("lupid.local/host", 1);
    assert_eq!(key.id(), key_id("lupid.local/host", &public_key(&key.verifier().to_string())));
    assert_eq!(key_id("PeterNeumann", &public_key(GO_VERIFIER_KEY)), 0xc74f_20a3);
}

/// Returns the 32-byte public key inside a verifier key's text.
fn public_key(text: &str) -> [u8; 32] {
    use base64::Engine as _;
    let encoded = text.splitn(3, '+').nth(2).unwrap();
    let payload = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    assert_eq!(payload[0], 0x01);
    payload[1..].try_into().unwrap()
}

#[test]
fn verifier_key_rejects_manglings() {
    let wrong_id = GO_VERIFIER_KEY.replace("c74f20a3", "c74f20a4");
    assert!(matches!(VerifierKey::parse(&wrong_id), Err(KeyError::IdMismatch { .. })));
    let wrong_name = GO_VERIFIER_KEY.replace("PeterNeumann", "PeterNeuman");
    assert!(matches!(VerifierKey::parse(&wrong_name), Err(KeyError::IdMismatch { .. })));
    for text in [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a+ARpc",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(VerifierKey::parse(text).is_err(), "{text:?}");
    }
}

#[test]
fn note_from_other_key_rejected() {
    let signed = note::sign("hello\n", &test_key("lupid.local/a", 1));
    let other = test_key("lupid.local/b", 2).verifier();
    let error = note::open(&signed, &other).unwrap_err();
    assert!(
        matches!(&error, NoteError::UnknownKey { signers, .. } if signers.starts_with("lupid.local/a+")),
        "{error}"
    );

    // Same name, other key: the id differs, so the signature is skipped.
    let same_name = test_key("lupid.local/a", 3).verifier();
    assert!(matches!(note::open(&signed, &same_name), Err(NoteError::UnknownKey { .. })));
}

#[test]
fn look_alike_signer_name_escaped() {
    // A Cyrillic `о` in place of the `o` of the expected name.
    let signed = note::sign("hello\n", &test_key("lupid.l\u{43e}cal/a", 1));
    let error = note::open(&signed, &test_key("lupid.local/a", 1).verifier()).unwrap_err().to_string();
    assert!(error.contains("it is signed by lupid.l\\u{43e}cal/a+"), "{error}");
}

#[test]
fn note_with_changed_text_rejected() {
    let key = test_key("lupid.local/a", 1);
    let signed = note::sign("hello\n", &key).replace("hello", "hullo");
    let error = note::open(&signed, &key.verifier()).unwrap_err();
    assert!(matches!(error, NoteError::BadSignature { .. }), "{error}");
}

#[test]
fn note_malformed_rejected() {
    let key = test_key("lupid.local/a", 1);
    let signed = note::sign("hello\n", &key);
    let cases = [
        signed.trim_end().to_owned(),
        signed.replace("\n\n", "\n"),
        signed.replace('\u{2014}', "-"),
        signed.replace("hello", "hel\x07lo"),
    ];
    for case in cases {
        let result = note::open(&case, &key.verifier());
        assert!(
            matches!(result, Err(NoteError::Malformed(_) | NoteError::InvalidSignatureLine { .. })),
            "{case:?}: {result:?}"
        );
    }
}

#[test]
fn note_trailing_line_rejected() {
    let key = test_key("lupid.local/a", 1);
    let signed = note::sign("hello\n", &key);
    let forged = format!("{signed}NOTE: tree size 999999 root AAAA verified by auditor\u{9b}2J\n");
    let error = note::open(&forged, &key.verifier()).unwrap_err();
    // Line 1 is the text, line 2 the empty line, line 3 the signature.
    assert!(matches!(error, NoteError::InvalidSignatureLine { line: 4, .. }), "{error:?}");
    assert!(error.to_string().contains("line 4 is not a signature line"), "{error}");
    assert!(!error.to_string().contains('\u{9b}'), "{error}");
    assert!(note::split(&forged).is_err());

    let unterminated = format!("{signed}NOTE: verified");
    assert!(note::open(&unterminated, &key.verifier()).is_err());
}

#[test]
fn checkpoint_trailing_line_rejected() {
    let key = test_key("lupid.local/a", 1);
    let checkpoint = Checkpoint::sign(&key, 11, &[0xab; 32]);
    let forged = format!("{}NOTE: tree size 999999 verified by auditor\n", checkpoint.note);
    let opened = Checkpoint::open(&forged, &key.verifier());
    assert!(
        matches!(opened, Err(CheckpointError::Note(NoteError::InvalidSignatureLine { line: 6, .. }))),
        "{opened:?}"
    );
    assert!(Checkpoint::parse_unverified(&forged).is_err());
}

#[test]
fn signer_name_hidden_characters_rejected() {
    let key = test_key("lupid.local/a", 1);
    let signed = note::sign("hello\n", &key);
    let hidden = [
        '\u{85}', '\u{9b}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}',
        '\u{200f}', '\u{feff}',
    ];
    for character in hidden {
        let forged = signed.replace("\u{2014} lupid.local/a ", &format!("\u{2014} lupid.local/a{character} "));
        let error = note::open(&forged, &key.verifier()).unwrap_err();
        assert!(matches!(error, NoteError::InvalidSignatureLine { line: 3, .. }), "{character:?}: {error:?}");
        assert!(!error.to_string().contains(character), "{character:?}: {error}");
    }
}

#[test]
fn checkpoint_origin_hidden_characters_rejected() {
    let key = test_key("lupid.local/a", 1);
    let text = lupid_ledger::checkpoint::body("lupid.local/\u{202e}a", 5, &[0xab; 32]);
    let forged = note::sign(&text, &key);
    let parsed = Checkpoint::parse_unverified(&forged);
    assert!(matches!(parsed, Err(CheckpointError::InvalidText(_))), "{parsed:?}");
}

#[test]
fn checkpoint_text_format() {
    let key = test_key("lupid.local/host", 1);
    let checkpoint = Checkpoint::sign(&key, 20_852_163, &[0xab; 32]);
    let (text, _) = note::split(&checkpoint.note).unwrap();
    assert_eq!(text, "lupid.local/host\n20852163\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n");
    assert_eq!(Checkpoint::open(&checkpoint.note, &key.verifier()), Ok(checkpoint));
}

#[test]
fn checkpoint_origin_must_match_key() {
    // A note whose text names another origin than its signing key.
    let key = test_key("lupid.local/host", 1);
    let signed = note::sign("lupid.local/other\n5\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n", &key);
    let error = Checkpoint::open(&signed, &key.verifier()).unwrap_err();
    assert!(matches!(error, CheckpointError::OriginMismatch { .. }), "{error}");
}

#[test]
fn checkpoint_bad_text_rejected() {
    let key = test_key("lupid.local/host", 1);
    let root = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
    let texts = [
        format!("lupid.local/host\n05\n{root}\n"),
        format!("lupid.local/host\n-5\n{root}\n"),
        "lupid.local/host\n5\nq6ur\n".to_owned(),
        "lupid.local/host\n5\n".to_owned(),
        format!("lupid.local/host\n5\n{root}\nextension\n"),
    ];
    for text in texts {
        let signed = note::sign(&text, &key);
        let result = Checkpoint::open(&signed, &key.verifier());
        assert!(matches!(result, Err(CheckpointError::InvalidText(_))), "{text:?}: {result:?}");
    }
}

#[test]
fn split_notes_one_after_another() {
    let key = test_key("lupid.local/host", 1);
    let first = Checkpoint::sign(&key, 1, &[1; 32]).note;
    let second = Checkpoint::sign(&key, 2, &[2; 32]).note;
    assert_eq!(split_notes(&format!("{first}{second}")), [first.clone(), second.clone()]);
    assert_eq!(split_notes(&format!("\n{first}\n\n{second}\n")), [first, second]);
}

#[test]
fn key_file_created_owner_only() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("keys").join("ledger.key");
    let key = keys::load_or_create_named(&path, "lupid.local/test").unwrap();
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);

    let public = fs::read_to_string(dir.path().join("keys").join("ledger.key.pub")).unwrap();
    assert_eq!(public.trim_end(), key.verifier().to_string());

    let again = keys::load_or_create(&path).unwrap();
    assert_eq!(again.verifier(), key.verifier());
    assert_eq!(again.name(), "lupid.local/test");
}

#[test]
fn key_file_loose_mode_rejected() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("ledger.key");
    drop(keys::load_or_create(&path).unwrap());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let error = keys::load_or_create(&path).unwrap_err();
    assert!(matches!(error, KeyError::LoosePermissions { mode: 0o640, .. }), "{error}");
    assert!(error.to_string().contains("chmod 600"), "{error}");
}

#[test]
fn default_origin_names_host() {
    let origin = keys::default_origin();
    assert!(origin.starts_with("lupid.local/"), "{origin}");
    assert!(keys::check_name(&origin).is_ok(), "{origin}");
}
