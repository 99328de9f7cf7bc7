//! The daemon's own folders, which no agent may open or connect into.
//!
//! The daemon adds two rules per folder to every policy it compiles, with
//! the verdict [`Verdict::Protected`]: the kernel denies every open below
//! the folder, and every connect to a Unix socket bound below it (the
//! daemon's socket), with `reason::PROTECTED`, in monitor mode too. A
//! policy rule on a path or socket name in such a folder is rejected, so no
//! rule can be more specific there and win over the protection.

use std::path::{Component, Path, PathBuf};

use lupid_common::RULE_PATH_MAX;

use super::{Access, PathPattern, Policy, PolicyError, Position, Rule, Target, Verdict};

/// Folder of the daemon's pinned BPF objects.
pub(crate) const BPFFS_FOLDER: &str = "/sys/fs/bpf/lupid";

/// One folder and the name of the rule that protects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProtectedFolder {
    pub(crate) rule: &'static str,
    /// Absolute, without symlinks where the folder or an ancestor exists,
    /// and without a trailing slash: the form `bpf_d_path` reports.
    pub(crate) path: String,
}

/// Returns the folders of a daemon with this `--state-dir` and `--socket`:
/// the state folder, the socket's folder and [`BPFFS_FOLDER`]. A folder
/// whose path is not UTF-8 or longer than `RULE_PATH_MAX` bytes is an
/// error, because no rule could protect it.
pub(crate) fn folders(state_dir: &Path, socket: &Path) -> Result<Vec<ProtectedFolder>, String> {
    let socket_dir = socket.parent().unwrap_or(Path::new("/"));
    let named = [
        ("lupid-protected-state", state_dir),
        ("lupid-protected-socket", socket_dir),
        ("lupid-protected-bpf", Path::new(BPFFS_FOLDER)),
    ];
    named
        .into_iter()
        .map(|(rule, folder)| {
            let resolved = resolve(folder);
            let path = resolved
                .to_str()
                .filter(|path| path.len() <= RULE_PATH_MAX)
                .ok_or_else(|| {
                    format!(
                        "cannot protect {}: a protected folder must be valid UTF-8 and at most {RULE_PATH_MAX} bytes long; choose a shorter path",
                        resolved.display()
                    )
                })?
                .to_owned();
            Ok(ProtectedFolder { rule, path })
        })
        .collect()
}

/// Makes `path` absolute and resolves the symlinks of its longest existing
/// ancestor, so that it names the folder as the kernel reports it.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            return rest.iter().rev().fold(canonical, |path, part| path.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return normal(&absolute),
        }
    }
}

/// Drops `.` and resolves `..` lexically.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Returns the deny rules for `folders`, two per folder, both named after
/// the folder: one on reads, writes and creates in the whole subtree, one
/// on connects to Unix sockets bound in it. An exec opens the file for
/// reading first, so it is denied too.
pub(crate) fn rules(folders: &[ProtectedFolder]) -> Vec<Rule> {
    let at = Position { line: 0, column: 0 };
    let all = Access { read: true, write: true, create: true };
    folders
        .iter()
        .flat_map(|folder| {
            let subtree = PathPattern { path: folder.path.clone(), subtree: true };
            [Target::Open(subtree.clone(), all), Target::ConnectUnix(subtree)].map(|target| Rule {
                id: folder.rule.to_owned(),
                verdict: Verdict::Protected,
                target,
                at,
                object_at: at,
            })
        })
        .collect()
}

/// Rejects every rule of `policy` and `extra` on a path or a pathname
/// socket inside a protected folder, the folder itself included.
pub(crate) fn check(policy: &Policy, extra: &[Rule], folders: &[ProtectedFolder]) -> Result<(), Vec<PolicyError>> {
    let mut errors = Vec::new();
    for rule in policy.rules().iter().chain(extra) {
        let (pattern, prefix) = match &rule.target {
            Target::Exec(pattern) | Target::Open(pattern, _) => (pattern, ""),
            // An abstract socket name (`@NAME`) lies in no folder.
            Target::ConnectUnix(pattern) if pattern.path.starts_with('/') => (pattern, "unix:"),
            Target::ConnectUnix(_) | Target::ExecContent(_) | Target::Connect(_) => continue,
        };
        for folder in folders.iter().filter(|folder| is_inside(&pattern.path, &folder.path)) {
            let message = format!(
                "rule {} names {prefix}{pattern}, inside {}, which lupid protects for the daemon ({}): no rule may decide there; remove the rule",
                rule.id, folder.path, folder.rule
            );
            errors.push(PolicyError::new(policy.name(), rule.object_at, message));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Returns whether `path` is `folder` or lies below it.
fn is_inside(path: &str, folder: &str) -> bool {
    if folder == "/" {
        return true;
    }
    path.strip_prefix(folder).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &str) -> ProtectedFolder {
        ProtectedFolder { rule: "lupid-protected-state", path: path.to_owned() }
    }

    fn policy(rules: &str) -> Policy {
        Policy::parse("test.lp", format!("lupid-policy 1\ndefault deny\n{rules}").as_bytes()).expect("valid policy")
    }

    #[test]
    fn inside_matches_folder_and_below() {
        assert!(is_inside("/var/lib/lupid", "/var/lib/lupid"));
        assert!(is_inside("/var/lib/lupid/ledger/x", "/var/lib/lupid"));
        assert!(!is_inside("/var/lib/lupid2", "/var/lib/lupid"));
        assert!(!is_inside("/var/lib", "/var/lib/lupid"));
    }

    #[test]
    fn rule_inside_folder_rejected() {
        let policy = policy("read-ledger: allow open /var/lib/lupid/** read\n");
        let errors = check(&policy, &[], &[folder("/var/lib/lupid")]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("read-ledger"), "{}", errors[0]);
        assert!(errors[0].message.contains("/var/lib/lupid"), "{}", errors[0]);
        assert_eq!(errors[0].at.line, 3);
    }

    #[test]
    fn exec_rule_inside_folder_rejected() {
        let policy = policy("run: allow exec /var/lib/lupid/tool\n");
        assert!(check(&policy, &[], &[folder("/var/lib/lupid")]).is_err());
    }

    #[test]
    fn enclosing_rule_accepted() {
        let policy = policy("all: allow open /** read,write\nvar: allow open /var/lib/** read\n");
        assert!(check(&policy, &[], &[folder("/var/lib/lupid")]).is_ok());
    }

    #[test]
    fn unix_rule_inside_folder_rejected() {
        let policy = policy("daemon: allow connect unix:/run/lupid/agent.sock\n");
        let errors = check(&policy, &[], &[folder("/run/lupid")]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("names unix:/run/lupid/agent.sock, inside /run/lupid"), "{}", errors[0]);
    }

    #[test]
    fn abstract_unix_rule_accepted() {
        let policy = policy("bus: allow connect unix:@lupid\n");
        assert!(check(&policy, &[], &[folder("/")]).is_ok());
    }

    #[test]
    fn rules_deny_subtree() {
        let rules = rules(&[folder("/var/lib/lupid")]);
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|rule| rule.id == "lupid-protected-state"));
        assert!(rules.iter().all(|rule| rule.verdict == Verdict::Protected));
        let Target::Open(pattern, access) = &rules[0].target else { panic!("an open rule") };
        assert_eq!(pattern.path, "/var/lib/lupid");
        assert!(pattern.subtree);
        assert_eq!(*access, Access { read: true, write: true, create: true });
        assert_eq!(rules[1].target, Target::ConnectUnix(pattern.clone()));
    }

    #[test]
    fn folders_of_missing_paths_resolved() {
        let folders = folders(Path::new("/nonexistent-lupid/state/"), Path::new("/nonexistent-lupid/run/a.sock"))
            .expect("short paths");
        let paths: Vec<&str> = folders.iter().map(|folder| folder.path.as_str()).collect();
        assert_eq!(paths, ["/nonexistent-lupid/state", "/nonexistent-lupid/run", BPFFS_FOLDER]);
    }

    #[test]
    fn long_folder_rejected() {
        let long = format!("/{}", "x".repeat(RULE_PATH_MAX));
        assert!(folders(Path::new(&long), Path::new("/run/lupid/agent.sock")).is_err());
    }
}
