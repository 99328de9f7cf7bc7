//! The ledger's Ed25519 checkpoint key and its text forms.
//!
//! A key has a name, which is also the checkpoint origin, and a 4-byte id,
//! the first bytes of `SHA-256(name || 0x0A || 0x01 || public key)` as the
//! C2SP `signed-note` format defines for Ed25519 (type byte `0x01`).
//!
//! Text forms, in the encoding that Go's `golang.org/x/mod/sumdb/note` and
//! other C2SP tools read:
//!
//! - verifier key: `<name>+<id as 8 hex digits>+<base64(0x01 || public key)>`;
//! - signing key (the key file): `PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`.
//!
//! [`load_or_create`] keeps the signing key in a file that only its owner can
//! read or write (mode 0600) and rejects a file that others can access.

use std::{
    fmt,
    fs::{self, DirBuilder, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 in signed notes.
const ED25519_TYPE: u8 = 0x01;

const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// A key, key text or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key name {name:?}: it must be non-empty and contain no spaces or `+`")]
    InvalidName { name: String },
    #[error("invalid verifier key {text:?}: expected `<name>+<8 hex digits>+<base64 key>`")]
    InvalidVerifierKey { text: String },
    #[error("invalid signing key in {}: expected `PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>`", .path.display())]
    InvalidSigningKey { path: PathBuf },
    #[error("key {name}: id {stated:08x} does not match the key, which has id {computed:08x}")]
    IdMismatch { name: String, stated: u32, computed: u32 },
    #[error("key file {} has mode {mode:04o}: it must be readable by its owner only (run `chmod 600 {}`)", .path.display(), .path.display())]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("key file {} is owned by uid {owner}, not by this process's uid {uid}", .path.display())]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
    #[error("failed to read key file {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to create key file {}", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate a key: the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Computes the signed-note key id of an Ed25519 public key under `name`.
///
/// # Panics
///
/// Never: a SHA-256 digest always has the 4 bytes the id takes.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_TYPE]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"))
}

/// Checks a key name: non-empty, without Unicode white space or `+`.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(KeyError::InvalidName { name: name.into() });
    }
    Ok(())
}

/// Returns the default key name and checkpoint origin,
/// `lupid.local/<hostname>`, with characters a name may not contain
/// replaced by `-`.
pub fn default_origin() -> String {
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let hostname: String = hostname
        .trim()
        .chars()
        .map(|c| if c.is_whitespace() || c == '+' || c.is_control() { '-' } else { c })
        .collect();
    let hostname = if hostname.is_empty() { "localhost".to_owned() } else { hostname };
    format!("lupid.local/{hostname}")
}

/// A named Ed25519 key that signs checkpoints.
pub struct SigningKey {
    name: String,
    id: u32,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// Builds a signing key from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self { name: name.into(), id, key })
    }

    /// Generates a new key from the system random number generator.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut seed = [0; 32];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        Self::from_seed(name, &seed)
    }

    /// Returns the key name, which is also the checkpoint origin.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Returns the public half, to give to verifiers.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    pub(crate) fn ed25519(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }

    /// Encodes the key in the key file form.
    fn to_private_text(&self) -> String {
        let mut payload = vec![ED25519_TYPE];
        payload.extend_from_slice(self.key.as_bytes());
        format!("{PRIVATE_PREFIX}{}+{:08x}+{}\n", self.name, self.id, BASE64.encode(payload))
    }

    /// Parses the key file form.
    fn from_private_text(text: &str, path: &Path) -> Result<Self, KeyError> {
        let invalid = || KeyError::InvalidSigningKey { path: path.to_owned() };
        let rest = text.trim_end().strip_prefix(PRIVATE_PREFIX).ok_or_else(invalid)?;
        let (name, id, key) = split_key_text(rest).ok_or_else(invalid)?;
        let key = Self::from_seed(name, &key)?;
        if key.id != id {
            return Err(KeyError::IdMismatch { name: name.into(), stated: id, computed: key.id });
        }
        Ok(key)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed stays out of debug output.
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

/// A named Ed25519 public key that checks checkpoint signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<8 hex digits>+<base64(0x01 || public key)>` and checks
    /// that the id matches the key.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let invalid = || KeyError::InvalidVerifierKey { text: text.into() };
        let (name, id, public_key) = split_key_text(text).ok_or_else(invalid)?;
        check_name(name)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public_key).map_err(|_| invalid())?;
        let computed = key_id(name, &public_key);
        if computed != id {
            return Err(KeyError::IdMismatch { name: name.into(), stated: id, computed });
        }
        Ok(Self { name: name.into(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn ed25519(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = vec![ED25519_TYPE];
        payload.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, BASE64.encode(payload))
    }
}

/// Splits `<name>+<8 hex digits>+<base64(0x01 || 32 bytes)>`. A key name
/// contains no `+`, but the base64 text may.
fn split_key_text(text: &str) -> Option<(&str, u32, [u8; 32])> {
    let mut parts = text.splitn(3, '+');
    let (name, id, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    if id.len() != 8 {
        return None;
    }
    let id = u32::from_str_radix(id, 16).ok()?;
    let payload = BASE64.decode(encoded).ok()?;
    let (&key_type, key) = payload.split_first()?;
    if key_type != ED25519_TYPE {
        return None;
    }
    Some((name, id, key.try_into().ok()?))
}

/// Loads the signing key from `path`, or creates one named
/// [`default_origin()`] there when the file does not exist.
///
/// A new key file is created with mode 0600 (its parent folder, if missing,
/// with mode 0700), and its verifier key is written beside it to
/// `<path>.pub`, for the operator to copy off the host. An existing file
/// must be owned by the current user and not accessible to group or others.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
    load_or_create_named(path, &default_origin())
}

/// Loads the signing key from `path`, or creates one named `name` there.
/// An existing key keeps the name stored with it.
pub fn load_or_create_named(path: &Path, name: &str) -> Result<SigningKey, KeyError> {
    match fs::symlink_metadata(path) {
        Ok(_) => load(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(path, name),
        Err(source) => Err(KeyError::Read { path: path.to_owned(), source }),
    }
}

/// Loads an existing key file after checking its owner and mode.
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let read_error = |source| KeyError::Read { path: path.to_owned(), source };
    let metadata = fs::metadata(path).map_err(read_error)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::LoosePermissions { path: path.to_owned(), mode });
    }
    let uid = current_uid();
    if metadata.uid() != uid {
        return Err(KeyError::WrongOwner { path: path.to_owned(), owner: metadata.uid(), uid });
    }
    let text = fs::read_to_string(path).map_err(read_error)?;
    SigningKey::from_private_text(&text, path)
}

fn create(path: &Path, name: &str) -> Result<SigningKey, KeyError> {
    let create_error = |source| KeyError::Create { path: path.to_owned(), source };
    let key = SigningKey::generate(name)?;
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(create_error)?;
    }

    // `create_new` fails if another process created the file meanwhile, so
    // a key is never overwritten.
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(create_error)?;
    file.write_all(key.to_private_text().as_bytes()).map_err(create_error)?;
    file.sync_all().map_err(create_error)?;

    let mut public_path = path.as_os_str().to_owned();
    public_path.push(".pub");
    fs::write(&public_path, format!("{}\n", key.verifier())).map_err(create_error)?;
    Ok(key)
}

/// Returns the effective uid, the owner of files this process creates.
fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
