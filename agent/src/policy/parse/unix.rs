//! Unix socket names of connect rules: `unix:/path`, `unix:/dir/**` and
//! `unix:@NAME`.
//!
//! The kernel keys a Unix connect by the name the peer socket is bound to.
//! A pathname socket's name is its absolute path, written like a rule path,
//! and a subtree rule covers every socket below a folder. An abstract
//! socket's name is `@` followed by its name; abstract names live in no
//! folder, so a rule names one of them exactly.

use super::{TokenError, path};
use crate::policy::PathPattern;

/// Text that starts a Unix socket name in a connect rule.
pub(super) const PREFIX: &str = "unix:";

/// Maximum length of a socket name, in bytes: `sun_path` has 108 bytes,
/// and a pathname ends with a NUL while an abstract name starts with one.
pub(crate) const UNIX_NAME_MAX: usize = 107;

const FORMS: &str = "write unix:/absolute/path, unix:/dir/** or unix:@abstract-name";

/// Parses a socket name, the text after `unix:`.
pub(super) fn parse_unix_name(name: &str) -> Result<PathPattern, TokenError> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        return parse_abstract(name, abstract_name);
    }
    if !name.starts_with('/') {
        return Err(TokenError::new(
            0,
            format!("invalid Unix socket name \"{name}\": a name is a path or starts with @, {FORMS}"),
        ));
    }
    let pattern = path::parse_path(name)?;
    if pattern.path.len() > UNIX_NAME_MAX {
        return Err(TokenError::new(
            0,
            format!(
                "socket path is {} bytes long, but a Unix socket address holds at most {UNIX_NAME_MAX} \
                 bytes of path, so no socket has this name; choose a shorter path",
                pattern.path.len()
            ),
        ));
    }
    Ok(pattern)
}

/// Parses `@NAME`; `abstract_name` is `name` without its `@`.
fn parse_abstract(name: &str, abstract_name: &str) -> Result<PathPattern, TokenError> {
    if abstract_name.is_empty() {
        return Err(TokenError::new(
            1,
            format!("missing abstract socket name after @: write unix:@ and 1 to {UNIX_NAME_MAX} characters"),
        ));
    }
    if let Some(base) = abstract_name.strip_suffix("/**") {
        return Err(TokenError::new(
            1 + base.len(),
            format!(
                "abstract socket names have no subtree: \"{name}\" can name one socket only, \
                 remove the /** and write the whole name"
            ),
        ));
    }
    if let Some((offset, bad)) = abstract_name.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(TokenError::new(
            1 + offset,
            format!(
                "invalid character '{bad}' in abstract socket name \"{name}\": a rule can name only \
                 abstract sockets whose names are printable ASCII without spaces"
            ),
        ));
    }
    if abstract_name.len() > UNIX_NAME_MAX {
        return Err(TokenError::new(
            0,
            format!(
                "abstract socket name is {} bytes long, but a socket address holds at most {UNIX_NAME_MAX} \
                 bytes of name, so no socket has this name",
                abstract_name.len()
            ),
        ));
    }
    Ok(PathPattern { path: name.to_owned(), subtree: false })
}
