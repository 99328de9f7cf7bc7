//! Rule paths: `/exact/file` or `/subtree/**`.
//!
//! A rule path must be spelled the way the kernel's `d_path` reports a
//! resolved path, because the kernel compares bytes and never normalises:
//! absolute, no empty, `.` or `..` components, no trailing slash except the
//! root. Globs are not supported, since the kernel only looks up the path
//! prefixes that end at a `/`.

use lupid_common::RULE_PATH_MAX;

use super::TokenError;
use crate::policy::PathPattern;

/// Parses one rule path token.
pub(super) fn parse_path(token: &str) -> Result<PathPattern, TokenError> {
    if !token.starts_with('/') {
        return Err(TokenError::new(
            0,
            format!("invalid path \"{token}\": a rule path must be absolute, starting with /"),
        ));
    }

    let (path, subtree) = match token.strip_suffix("/**") {
        Some("") => ("/", true),
        Some(base) => (base, true),
        None => (token, false),
    };
    if let Some(offset) = path.find(['*', '?']) {
        return Err(TokenError::new(
            offset,
            format!(
                "unsupported glob in \"{token}\": a rule names one file (/dir/file) \
                 or a whole subtree (/dir/**), and `**` may only end the path"
            ),
        ));
    }
    check_normalised(token, path)?;

    if path.len() > RULE_PATH_MAX {
        return Err(TokenError::new(
            0,
            format!(
                "rule path is {} bytes long, but the kernel compares at most the first \
                 {RULE_PATH_MAX} bytes of a path, so a rule path may be at most {RULE_PATH_MAX} bytes",
                path.len()
            ),
        ));
    }
    Ok(PathPattern { path: path.to_owned(), subtree })
}

/// Rejects empty, `.` and `..` components and a trailing slash in `path`,
/// which is `token` without its `/**`.
fn check_normalised(token: &str, path: &str) -> Result<(), TokenError> {
    if path == "/" {
        return Ok(());
    }
    let mut offset = 1;
    for component in path[1..].split('/') {
        let message = match component {
            "" if offset == path.len() => format!(
                "trailing / in \"{token}\": write {} for that path itself or {}/** for everything below it",
                &path[..offset - 1],
                &path[..offset - 1]
            ),
            "" => format!("empty path component (//) in \"{token}\": write a single /"),
            "." | ".." => {
                format!("\"{component}\" component in \"{token}\": write the normalised path, as the kernel reports it")
            }
            _ => {
                offset += component.len() + 1;
                continue;
            }
        };
        // Point at the slash before an empty component.
        let at = if component.is_empty() { offset - 1 } else { offset };
        return Err(TokenError::new(at, message));
    }
    Ok(())
}
