//! Rename and hard link: a second name for a file. Both names are built by
//! [`walk`](crate::walk) and kept in the record, the old one in `path`, the
//! new one in `new_path`.
//!
//! A rename is decided by the path rules at both names
//! (`decide::decide_rename`): what the new name allows, the old one must
//! already allow. An exchange (`RENAME_EXCHANGE`) and a hard link are
//! always denied to a labeled agent. An exchange would need that check
//! both ways, which passes the verifier's instruction limit, and after a
//! link both names stay, each under its own rules.
//!
//! Failure policy: a name that cannot be built denies, as
//! `PATH_UNRESOLVED`.

use aya_ebpf::{helpers::bpf_probe_read_kernel, programs::LsmContext};
use lupid_common::{
    Event, error, flags, hook, reason,
    decide::{Decision, NameSlots, decide_rename},
};

use crate::{
    gate::{self, DENIED, Entry},
    lease,
    maps::{count_error, kernel_offsets},
    path::{Matches, path_of, scan_rename},
    walk::{self, WalkError, read_pointer},
};

/// `RENAME_EXCHANGE` in the flags of `renameat2(2)`: the two names swap
/// files. Denied, with `reason::PROTECTED`.
const RENAME_EXCHANGE: u32 = 1 << 1;
/// `S_IFMT` and `S_IFDIR` of `inode::i_mode`.
const S_IFMT: u16 = 0o170_000;
const S_IFDIR: u16 = 0o040_000;

/// `path_rename(const struct path *old_dir, struct dentry *old_dentry,
/// const struct path *new_dir, struct dentry *new_dentry, unsigned int
/// flags)`.
pub(crate) fn check_rename(ctx: &LsmContext) -> i32 {
    let (mut event, agent) = match gate::enter(hook::RENAME) {
        Entry::Unlabeled => return 0,
        Entry::Refused => return DENIED,
        Entry::Labeled { event, agent } => (event, agent),
    };
    let old_dentry: *const u8 = ctx.arg(1);
    let new_dentry: *const u8 = ctx.arg(3);
    let rename_flags: u32 = ctx.arg(4);
    let out = event.as_mut_ptr();
    let decision = match write_names(out, (ctx.arg(0), old_dentry), (ctx.arg(2), new_dentry)) {
        Ok((old_len, new_len)) => {
            let mut old = Matches::default();
            let mut new = Matches::default();
            let scanned = scan_rename(path_of(out), agent.policy_id, old_len, &mut old)
                && scan_rename(new_path_of(out), agent.policy_id, new_len, &mut new);
            let mut decision = Decision::protected();
            if !scanned {
                count_error(error::READ_FAILED);
                decision = Decision::fail_closed(reason::READ_FAILED);
            } else if rename_flags & RENAME_EXCHANGE == 0 {
                decide(&old, &new, is_folder(old_dentry), agent.default_verdict, &mut decision);
            }
            decision
        }
        Err(denial) => denial,
    };
    gate::finish(event, &agent, decision)
}

/// `path_link(struct dentry *old_dentry, const struct path *new_dir,
/// struct dentry *new_dentry)`: denied, with both names in the record when
/// they can be built. A link never crosses a mount, so the old name is
/// seen through the new directory's mount.
pub(crate) fn check_link(ctx: &LsmContext) -> i32 {
    let (mut event, agent) = match gate::enter(hook::LINK) {
        Entry::Unlabeled => return 0,
        Entry::Refused => return DENIED,
        Entry::Labeled { event, agent } => (event, agent),
    };
    let new_dir: *const u8 = ctx.arg(1);
    // The record keeps what could be built; the link is denied either way.
    let _ = write_names(event.as_mut_ptr(), (new_dir, ctx.arg(0)), (new_dir, ctx.arg(2)));
    gate::finish(event, &agent, Decision::protected())
}

/// Decides a rename into `out`, in a frame of its own: the slots of both
/// names and the working space of the decision together would pass the
/// verifier's stack limit with a scan. Returns the verdict: a function
/// that returns a struct leaves a stale pointer in the return register,
/// which the verifier rejects.
#[inline(never)]
fn decide(old: &Matches, new: &Matches, folder: bool, default_verdict: u32, out: &mut Decision) -> u32 {
    let old = NameSlots { exec: old.exec, open: old.open, rules_below: old.rules_below };
    let new = NameSlots { exec: new.exec, open: new.open, rules_below: new.rules_below };
    let decision = decide_rename(&old, &new, folder, default_verdict, lease::settle);
    *out = decision;
    decision.verdict
}

/// Builds both names into the event: the old one (a directory `struct path
/// *` and a `struct dentry *` in it) into `path`, the new one into
/// `new_path`. Returns their lengths.
fn write_names(out: *mut Event, old: (*const u8, *const u8), new: (*const u8, *const u8)) -> Result<(usize, usize), Decision> {
    // SAFETY: `out` is the reserved event.
    unsafe { (&raw mut (*out).flags).write((*out).flags | flags::TWO_NAMES) };
    // SAFETY: `out` is the reserved event. `path` is followed by
    // `new_path_len` and `new_path`, and `new_path` by `slack`, each more
    // than `NAME_MAX + 1` bytes, as `name_of` requires.
    let old_len = unsafe { walk::name_of((&raw mut (*out).path).cast(), old.0, old.1) };
    let old_len = old_len.map_err(|failure| unresolved(out, failure))?;
    // SAFETY: as above.
    unsafe { (&raw mut (*out).path_len).write(old_len as u32) };
    // SAFETY: as above.
    let new_len = unsafe { walk::name_of((&raw mut (*out).new_path).cast(), new.0, new.1) };
    let new_len = new_len.map_err(|failure| unresolved(out, failure))?;
    // SAFETY: as above.
    unsafe { (&raw mut (*out).new_path_len).write(new_len as u32) };
    Ok((old_len, new_len))
}

/// Counts a name that could not be built and returns its denial.
fn unresolved(out: *mut Event, failure: WalkError) -> Decision {
    if let WalkError::TooLong = failure {
        // SAFETY: `out` is the reserved event.
        unsafe { (&raw mut (*out).flags).write((*out).flags | flags::PATH_TRUNCATED) };
    }
    count_error(error::PATH_UNRESOLVED);
    Decision::fail_closed(reason::PATH_UNRESOLVED)
}

/// Returns the event's `new_path` array.
fn new_path_of(out: *const Event) -> *const u8 {
    // SAFETY: `out` is a reserved event; this only takes a field address.
    unsafe { (&raw const (*out).new_path).cast::<u8>() }
}

/// Returns whether `dentry` is a directory. One whose mode cannot be read
/// counts as a directory, the stricter case.
fn is_folder(dentry: *const u8) -> bool {
    let offsets = kernel_offsets();
    let Ok(inode) = read_pointer(dentry, offsets.dentry_d_inode) else {
        return true;
    };
    // SAFETY: the helper checks the kernel address and faults safely; the
    // offset comes from the running kernel's BTF.
    match unsafe { bpf_probe_read_kernel::<u16>(inode.add(offsets.inode_i_mode as usize).cast()) } {
        Ok(mode) => mode & S_IFMT == S_IFDIR,
        Err(_) => true,
    }
}
