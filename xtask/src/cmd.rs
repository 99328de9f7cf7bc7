//! Running external commands with errors that name the command and the fix.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// Renders a command line for messages, e.g. `apt-get install -y cpio`.
pub(crate) fn display(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(quote));
    parts.join(" ")
}

fn quote(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
        format!("'{}'", text.replace('\'', r"'\''"))
    } else {
        text.into_owned()
    }
}

/// Runs `command` with inherited stdio and fails unless it exits 0.
/// `fix` is the next step that the error message gives the user.
pub(crate) fn run(command: &mut Command, fix: &str) -> Result<()> {
    let command_line = display(command);
    let status = command.status().with_context(|| format!("could not start `{command_line}`; {fix}"))?;
    if !status.success() {
        bail!("`{command_line}` failed ({status}); {fix}");
    }
    Ok(())
}

/// Runs `command`, captures its stdout as UTF-8 and fails unless it exits 0.
/// Its stderr goes to the terminal.
pub(crate) fn output(command: &mut Command, fix: &str) -> Result<String> {
    let command_line = display(command);
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{command_line}`; {fix}"))?;
    if !output.status.success() {
        bail!("`{command_line}` failed ({}); {fix}", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{command_line}` printed invalid UTF-8"))
}

/// Runs `command` quietly and returns its stdout when it starts and exits 0,
/// or `None` otherwise. Used for probes such as `bpf-linker --version`, where
/// failure only means "not installed".
pub(crate) fn probe(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}
