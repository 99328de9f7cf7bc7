//! Exec and open: name the file the kernel resolved, match it against the
//! agent's path rules, decide.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_d_path, bpf_ima_file_hash, bpf_loop, bpf_probe_read_kernel as bpf_probe_read_kernel_raw},
    programs::LsmContext,
};
use lupid_common::{
    AgentInfo, ContentKey, Event, HASH_ALGO_SHA256, PATH_MAX, PathKey, RULE_PATH_MAX, RuleSlot, SHA256_LEN, access,
    agent_flags, path_flags,
    decide::{Decision, OpenSlots, decide_exec, decide_open, fold_slot},
    error, flags, hook, reason,
};

use crate::{
    walk,
    gate::{self, DENIED, Entry},
    lease,
    protect, request,
    maps::{EXEC_CONTENT, PATH_RULES, count_error, kernel_offsets},
};

const ENAMETOOLONG: i64 = 36;
const FMODE_READ: u32 = 1;
const FMODE_WRITE: u32 = 2;
/// `FMODE_EXEC`: the kernel opened the file to execute it.
const FMODE_EXEC: u32 = 0x20;
/// `FMODE_CREATED`: the open created the file. A flag value, not a layout,
/// stable since Linux 4.19.
const FMODE_CREATED: u32 = 0x10_0000;
/// Masks an index into a `PATH_MAX` array, for the verifier.
const PATH_INDEX_MASK: usize = PATH_MAX - 1;

/// Which slots a [`scan`] folds: only those its hook decides by, so each
/// program carries, and the verifier walks, only the branches it needs.
pub(crate) mod slots {
    pub(crate) const EXEC: u8 = 0;
    pub(crate) const OPEN: u8 = 1;
    pub(crate) const UNIX: u8 = 2;
}

/// Best rule per kind of access found while scanning a path or a Unix
/// socket name.
#[derive(Default)]
pub(crate) struct Matches {
    pub(crate) exec: RuleSlot,
    pub(crate) open: OpenSlots,
    pub(crate) connect: RuleSlot,
    /// The entry of the whole path has `path_flags::RULES_BELOW`.
    pub(crate) rules_below: bool,
}

pub(crate) fn check_exec(ctx: &LsmContext) -> i32 {
    let (mut event, agent) = match gate::enter(hook::EXEC) {
        Entry::Unlabeled => return 0,
        Entry::Refused => return DENIED,
        Entry::Labeled { event, agent } => (event, agent),
    };
    let offsets = kernel_offsets();
    let bprm: *const u8 = ctx.arg(0);
    // SAFETY: `bprm` is the hook's BTF-typed argument and the offset of
    // `linux_binprm::file` comes from the running kernel's BTF; the
    // verifier checks the load against that BTF.
    let file = unsafe { core::ptr::read_volatile(bprm.add(offsets.binprm_file as usize).cast::<*const u8>()) };

    let out = event.as_mut_ptr();
    request::from_binprm(out, bprm);
    let hashed = match hash_binary(out, file, &agent) {
        Ok(hashed) => hashed,
        Err(denial) => return gate::finish(event, &agent, denial),
    };
    // Hashing reads the whole binary, and the daemon may have swapped the
    // policy meanwhile; decide with the one in force now.
    let agent = if hashed { gate::refresh(&mut event, agent) } else { agent };
    let decision = match resolve(out, file, offsets.file_f_path) {
        Ok(len) => {
            let content = if hashed { content_slot(out, agent.policy_id) } else { None };
            let found = scan::<{ slots::EXEC }>(path_of(out), agent.policy_id, len);
            decide_exec(content.as_ref(), &found.exec, agent.default_verdict, lease::settle)
        }
        Err(denial) => denial,
    };
    gate::finish(event, &agent, decision)
}

pub(crate) fn check_open(ctx: &LsmContext) -> i32 {
    let (mut event, agent) = match gate::enter(hook::OPEN) {
        Entry::Unlabeled => return 0,
        Entry::Refused => return DENIED,
        Entry::Labeled { event, agent } => (event, agent),
    };
    let offsets = kernel_offsets();
    let file: *const u8 = ctx.arg(0);
    // SAFETY: as for `linux_binprm::file` in `check_exec`.
    let mode = unsafe { core::ptr::read_volatile(file.add(offsets.file_f_mode as usize).cast::<u32>()) };
    let mut wanted = 0;
    if mode & FMODE_READ != 0 {
        wanted |= access::READ;
    }
    if mode & FMODE_WRITE != 0 {
        wanted |= access::WRITE;
    }
    if mode & FMODE_CREATED != 0 {
        wanted |= access::CREATE;
    }

    let out = event.as_mut_ptr();
    // SAFETY: `out` is the reserved event, see `gate::enter`.
    unsafe { (&raw mut (*out).access).write(wanted) };
    // The opens an exec makes (the binary, its interpreter) run inside the
    // `execve` call, whose argument names the program, not this file.
    if mode & FMODE_EXEC == 0 {
        request::from_syscall(out);
    }
    // SAFETY: `out` is the reserved event; `path` lies inside it.
    let path = unsafe { (&raw const (*out).path).cast::<u8>() };
    let decision = match resolve(out, file, offsets.file_f_path) {
        // A write to a cgroup control file is denied before the policy is
        // consulted: it would move the agent out of its labeled cgroup.
        Ok(len)
            if wanted & access::WRITE != 0
                && protect::is_cgroup_control(file, path, len, &offsets) =>
        {
            Decision::protected()
        }
        Ok(len) => {
            let found = scan::<{ slots::OPEN }>(path, agent.policy_id, len);
            decide_open_slots(wanted, &found.open, agent.default_verdict)
        }
        Err(denial) => denial,
    };
    gate::finish(event, &agent, decision)
}

/// Decides an open from the slots a scan found, in a frame of its own. The
/// working space of `decide_open` and the key of the scan together would
/// pass the 512 bytes of stack the verifier allows one chain of calls.
#[inline(never)]
fn decide_open_slots(requested: u32, found: &OpenSlots, default_verdict: u32) -> Decision {
    decide_open(requested, found, default_verdict, lease::settle)
}

/// Writes the SHA-256 digest of the binary `file` into the event's scratch
/// space when the agent's policy has content rules, and returns whether it
/// did. The digest comes from IMA (`bpf_ima_file_hash`), which reads the
/// file the kernel is about to run, so a renamed, copied or linked binary
/// has the same digest. A binary that cannot be hashed is a denial.
fn hash_binary(out: *mut Event, file: *const u8, agent: &AgentInfo) -> Result<bool, Decision> {
    if agent.flags & agent_flags::EXEC_CONTENT == 0 {
        return Ok(false);
    }
    // SAFETY: `file` is the BTF-typed `struct file *` of the binary, and the
    // destination is the start of the reserved event's scratch path, which
    // is longer than `SHA256_LEN` bytes.
    let algo = unsafe {
        let digest = (&raw mut (*out).scratch.path).cast::<core::ffi::c_void>();
        bpf_ima_file_hash(file.cast_mut().cast(), digest, SHA256_LEN as u32)
    };
    if algo != HASH_ALGO_SHA256 {
        count_error(error::HASH_FAILED);
        return Err(Decision::fail_closed(reason::HASH_FAILED));
    }
    Ok(true)
}

/// Looks up the content rule for the digest that [`hash_binary`] wrote.
/// The key lives in this function's own frame, so it does not add to the
/// stack of the path scan, which runs after it.
#[inline(never)]
fn content_slot(out: *const Event, policy_id: u32) -> Option<RuleSlot> {
    let mut key = ContentKey { policy_id, sha256: [0; SHA256_LEN] };
    // SAFETY: `out` is the reserved event; the digest lies in its scratch
    // path, which is longer than `SHA256_LEN` bytes.
    unsafe { core::ptr::copy_nonoverlapping((&raw const (*out).scratch.path).cast::<u8>(), key.sha256.as_mut_ptr(), SHA256_LEN) };
    // SAFETY: the value is copied out before the program can sleep.
    unsafe { EXEC_CONTENT.get(&key) }.copied()
}

/// Writes the full path of `file` into the event and returns its length
/// without the NUL. A path that does not fit in `PATH_MAX` bytes, or that
/// the kernel cannot build, is a denial: a shortened name must never be
/// matched as if it were the whole one.
fn resolve(out: *mut Event, file: *const u8, f_path_offset: u32) -> Result<usize, Decision> {
    // SAFETY: `file` is a BTF-typed `struct file *` and the offset of
    // `f_path` comes from the kernel's BTF; the destination is the event's
    // `path` array of exactly `PATH_MAX` bytes.
    let written = unsafe {
        let path = file.add(f_path_offset as usize).cast_mut().cast();
        bpf_d_path(path, (&raw mut (*out).path).cast(), PATH_MAX as u32)
    };
    if written <= 0 || written > PATH_MAX as i64 {
        if written == -ENAMETOOLONG {
            // SAFETY: `out` is the reserved event.
            unsafe { (&raw mut (*out).flags).write((*out).flags | flags::PATH_TRUNCATED) };
        }
        count_error(error::PATH_UNRESOLVED);
        return Err(Decision::fail_closed(reason::PATH_UNRESOLVED));
    }
    let len = (written - 1) as usize;
    // SAFETY: `out` is the reserved event.
    unsafe { (&raw mut (*out).path_len).write(len as u32) };
    // `bpf_d_path` names a file in another mount namespace, or in a
    // detached copy of a tree (`open_tree`), from that tree's root: the
    // record keeps that name, but no rule may match it.
    // SAFETY: as above; the helper faults safely.
    let mount = unsafe {
        aya_ebpf::helpers::bpf_probe_read_kernel::<*const u8>(
            file.add((f_path_offset + kernel_offsets().path_mnt) as usize).cast(),
        )
    };
    if !mount.is_ok_and(walk::in_caller_namespace) {
        count_error(error::PATH_UNRESOLVED);
        return Err(Decision::fail_closed(reason::PATH_UNRESOLVED));
    }
    Ok(len)
}

/// Returns the event's `path` array.
pub(crate) fn path_of(out: *const Event) -> *const u8 {
    // SAFETY: `out` is a reserved event; this only takes a field address.
    unsafe { (&raw const (*out).path).cast::<u8>() }
}

/// Scans `path` (a path or Unix socket name of `len` bytes in an event's
/// `PATH_MAX` array) from the root and folds in the rule at every directory
/// boundary and at the end, within the first `RULE_PATH_MAX` bytes (no rule
/// can name a longer path). The lookup key is built on the stack, which is
/// private to this task even when a sleepable program is preempted: after
/// the byte at index `i` is copied, the key contains exactly the prefix
/// `path[..i]`, zero-padded. The kernel (6.1) accepts only stack and map
/// memory as a map key, not ring buffer memory.
#[inline(never)]
pub(crate) fn scan<const SLOTS: u8>(path: *const u8, policy_id: u32, len: usize) -> Matches {
    let mut found = Matches::default();
    let mut key = PathKey { policy_id, path: [0; RULE_PATH_MAX] };
    // `path` is an array of `PATH_MAX` bytes in the reserved event; every
    // index below is bounded by `RULE_PATH_MAX < PATH_MAX`.

    let mut i = 0;
    while i <= RULE_PATH_MAX {
        if i > len {
            break;
        }
        let at_end = i == len;
        // SAFETY: see above.
        let byte = if at_end { 0 } else { unsafe { path.add(i).read() } };
        if i == 0 && byte == b'/' {
            // The root is stored as "/", not as an empty string.
            key.path[0] = b'/';
        }
        if at_end || byte == b'/' {
            // SAFETY: the value is copied out before the program can sleep.
            if let Some(rule) = unsafe { PATH_RULES.get(&key) } {
                match SLOTS {
                    slots::EXEC => fold_slot(&mut found.exec, &rule.exec, at_end),
                    slots::OPEN => {
                        fold_slot(&mut found.open.read, &rule.read, at_end);
                        fold_slot(&mut found.open.write, &rule.write, at_end);
                        fold_slot(&mut found.open.create, &rule.create, at_end);
                    }
                    _ => fold_slot(&mut found.connect, &rule.connect, at_end),
                }
            }
        }
        if at_end {
            break;
        }
        if i < RULE_PATH_MAX {
            key.path[i] = byte;
        }
        i += 1;
    }
    found
}

/// The context of [`scan_rename`], shared with [`scan_rename_step`]
/// through `bpf_loop`.
#[repr(C)]
struct RenameScan {
    key: PathKey,
    len: u32,
    /// Set to 1 once the step at the last byte the scan looks at (the end,
    /// or byte `RULE_PATH_MAX` of a longer path) has folded its rule in.
    /// The fields are ordered to leave no padding, because the stack of
    /// the rename program is near the verifier's 512-byte limit.
    complete: u32,
    found: *mut Matches,
    path: *const u8,
}

/// Scans `path` for the exec, read, write and create slots and the
/// `RULES_BELOW` mark, as [`scan`] does for its slots, into `found`, but
/// with `bpf_loop`: the verifier checks one step instead of every byte,
/// and a rename scans two names, which unrolled would pass the verifier's
/// instruction limit. Returns whether the scan reached its last byte: a
/// scan cut short by a failed copy must deny, because a deeper rule it
/// did not reach could deny.
#[inline(never)]
pub(crate) fn scan_rename(path: *const u8, policy_id: u32, len: usize, found: &mut Matches) -> bool {
    let mut scan =
        RenameScan { key: PathKey { policy_id, path: [0; RULE_PATH_MAX] }, len: len as u32, complete: 0, found, path };
    // The root is stored as "/", not as an empty string.
    scan.key.path[0] = b'/';
    // SAFETY: `scan_rename_step` has the callback signature `bpf_loop`
    // expects, and `scan` outlives the call.
    let steps = unsafe { bpf_loop(len.min(RULE_PATH_MAX) as u32 + 1, scan_rename_step as *mut c_void, (&raw mut scan).cast(), 0) };
    walk::forget_known_values(found);
    walk::forget_known_values(&mut scan.complete);
    steps >= 0 && scan.complete == 1
}

/// Looks up the prefix of the path that ends before byte `index` when that
/// byte is a `/` or the end, and folds its rule into the matches. The key
/// gets the prefix with one copy: the scan moves forward, so the bytes
/// past it are still zero.
extern "C" fn scan_rename_step(index: u64, context: *mut c_void) -> i64 {
    // SAFETY: `scan_rename` passes its `RenameScan`, alive and not
    // otherwise borrowed.
    let scan = unsafe { &mut *context.cast::<RenameScan>() };
    let index = index as usize;
    let len = scan.len as usize;
    if index > RULE_PATH_MAX || index > len {
        return 1;
    }
    let at_end = index == len;
    let last = index == len.min(RULE_PATH_MAX);
    // SAFETY: `index` is at most `RULE_PATH_MAX`, inside the `PATH_MAX`
    // array that `path` points at.
    let byte = if at_end { 0 } else { unsafe { scan.path.add(index & PATH_INDEX_MASK).read() } };
    if !(at_end || byte == b'/') {
        scan.complete = u32::from(last);
        return 0;
    }
    if index > 0 {
        // The compiler has the bound already and would drop a second
        // check, but the verifier needs it on the value passed as the size.
        // SAFETY: `index` is a local, valid for a read.
        let size = unsafe { core::ptr::read_volatile(&index) };
        if size > RULE_PATH_MAX {
            return 1;
        }
        // SAFETY: at most `RULE_PATH_MAX` bytes go into the key's array of
        // that size. The helper faults safely on the source.
        let copied =
            unsafe { bpf_probe_read_kernel_raw((&raw mut scan.key.path).cast(), size as u32, scan.path.cast()) };
        if copied != 0 {
            return 1;
        }
    }
    // SAFETY: `found` points at the caller's matches, and the rule is
    // copied out before the program can sleep.
    unsafe {
        if let Some(rule) = PATH_RULES.get(&scan.key) {
            let found = &mut *scan.found;
            fold_slot(&mut found.exec, &rule.exec, at_end);
            fold_slot(&mut found.open.read, &rule.read, at_end);
            fold_slot(&mut found.open.write, &rule.write, at_end);
            fold_slot(&mut found.open.create, &rule.create, at_end);
            if at_end {
                found.rules_below = rule.flags & path_flags::RULES_BELOW != 0;
            }
        }
    }
    scan.complete = u32::from(last);
    i64::from(at_end)
}
