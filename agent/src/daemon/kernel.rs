//! Loading, attaching and writing lupid's kernel programs and maps.
//!
//! The daemon is the only writer of the rule maps. This module owns the
//! loaded object and exposes the few operations the daemon needs, each
//! named after the map it changes.
//!
//! Links and maps are pinned on the BPF file system (see [`bpffs`]), so
//! the programs go on enforcing while the daemon is stopped, killed or
//! restarting. A daemon that finds pins of its own build takes them over
//! and loads nothing, so there is no moment without enforcement.

use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{Lsm, links::FdLink},
};
use lupid_common::{AgentInfo, ContentKey, LeaseState, NetKey, NetRule, PathKey, PathRule, RuleSlot, error};

use super::{bpffs, btf};

/// The kernel programs, built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lupid.bpf.o"));

/// The LSM hooks lupid attaches, as (program name, hook name).
pub(crate) const HOOKS: [(&str, &str); 37] = [
    ("bprm_check_security", "bprm_check_security"),
    ("file_open", "file_open"),
    ("socket_connect", "socket_connect"),
    ("socket_sendmsg", "socket_sendmsg"),
    ("unix_stream_connect", "unix_stream_connect"),
    ("unix_may_send", "unix_may_send"),
    ("task_alloc", "task_alloc"),
    ("task_free", "task_free"),
    ("userns_create", "userns_create"),
    ("sb_mount", "sb_mount"),
    ("move_mount", "move_mount"),
    ("sb_umount", "sb_umount"),
    ("task_kill", "task_kill"),
    ("ptrace_access_check", "ptrace_access_check"),
    ("bpf_syscall", "bpf"),
    ("socket_create", "socket_create"),
    ("path_link", "path_link"),
    ("path_rename", "path_rename"),
    ("path_chroot", "path_chroot"),
    ("sb_pivotroot", "sb_pivotroot"),
    ("inode_create", "inode_create"),
    ("inode_mkdir", "inode_mkdir"),
    ("inode_mknod", "inode_mknod"),
    ("inode_symlink", "inode_symlink"),
    ("inode_unlink", "inode_unlink"),
    ("inode_rmdir", "inode_rmdir"),
    ("inode_rename", "inode_rename"),
    ("inode_setattr", "inode_setattr"),
    ("inode_setxattr", "inode_setxattr"),
    ("inode_removexattr", "inode_removexattr"),
    ("path_truncate", "path_truncate"),
    ("task_setrlimit", "task_setrlimit"),
    ("task_setnice", "task_setnice"),
    ("task_setioprio", "task_setioprio"),
    ("task_setscheduler", "task_setscheduler"),
    ("file_send_sigiotask", "file_send_sigiotask"),
    ("socket_setsockopt", "socket_setsockopt"),
];

/// File in which the kernel lists its active LSMs.
const LSM_LIST: &str = "/sys/kernel/security/lsm";

#[derive(Debug, thiserror::Error)]
pub(crate) enum KernelError {
    #[error(
        "this lupid-agent was built without its kernel programs (LUPID_SKIP_EBPF=1); rebuild it without that variable, after `cargo xtask setup`"
    )]
    NotBuilt,
    #[error(
        "this kernel does not run BPF LSM programs: {reason}. lupid needs a kernel built with CONFIG_BPF_LSM=y and booted with `bpf` in its LSM list (for example `lsm=landlock,lockdown,yama,apparmor,bpf`); Debian 12's linux-image-cloud-amd64 has both. On this host, `cargo xtask demo` runs lupid in such a kernel under qemu"
    )]
    NoBpfLsm { reason: String },
    #[error("failed to read the kernel's BTF: {0}")]
    Btf(#[from] btf::BtfError),
    #[error("failed to load the kernel programs: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("the kernel refused program {program} for LSM hook {hook}: {source}{hint}")]
    Attach { program: &'static str, hook: &'static str, source: Box<aya::programs::ProgramError>, hint: &'static str },
    #[error("map {0} is missing from the kernel object")]
    MapMissing(&'static str),
    #[error("map {map} has an unexpected type: {source}")]
    MapType { map: &'static str, source: Box<aya::maps::MapError> },
    #[error(transparent)]
    Pins(#[from] bpffs::PinError),
    #[error("failed to open the pinned map {path}: {source}")]
    Pinned { path: std::path::PathBuf, source: aya::maps::MapError },
    #[error("failed to pin {path}: {source}")]
    Pin { path: std::path::PathBuf, source: aya::pin::PinError },
    #[error("failed to remove the pin {path}: {source}")]
    Unpin { path: std::path::PathBuf, source: std::io::Error },
    #[error(
        "the pinned map {map} differs from this build's (pinned type, key, value, entries, flags: {pinned}; this build: {wanted}); the pinned programs go on enforcing. Stop the agents, then run `lupid-agent unload` and start again"
    )]
    Incompatible { map: String, pinned: String, wanted: String },
    #[error("failed to read the kernel's description of this build's map {map}: {source}")]
    Describe { map: String, source: aya::maps::MapError },
    #[error("failed to update map {map}: {source}")]
    Update { map: &'static str, source: Box<aya::maps::MapError> },
}

/// Removes every pin, which detaches the programs and frees the maps.
/// Returns the number of pins removed. Labeled agents still running are no
/// longer mediated afterwards.
pub(crate) fn unload() -> Result<usize, KernelError> {
    Ok(bpffs::remove_all()?)
}

/// Checks that the running kernel can run BPF LSM programs at all, so
/// `start` can report a missing feature before it loads anything.
pub(crate) fn check_bpf_lsm() -> Result<(), KernelError> {
    match std::fs::read_to_string(LSM_LIST) {
        Ok(list) if list.split(',').any(|lsm| lsm.trim() == "bpf") => Ok(()),
        Ok(list) => Err(KernelError::NoBpfLsm {
            reason: format!("`bpf` is missing from {LSM_LIST} (active LSMs: {})", list.trim()),
        }),
        Err(e) => Err(KernelError::NoBpfLsm {
            reason: format!(
                "{LSM_LIST} cannot be read ({e}); securityfs may not be mounted, or the kernel has no LSM support"
            ),
        }),
    }
}

/// Maps the daemon reads or writes, each pinned under `maps/`.
const MAPS: [&str; 8] = ["AGENTS", "PATH_RULES", "NET_RULES", "EXEC_CONTENT", "LEASES", "EVENTS", "SEQUENCE", "ERRORS"];

/// Origin of the programs that enforce after a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Takeover {
    /// No pinned maps existed, so the programs and maps are new.
    Fresh,
    /// The programs of this build stayed attached through their pinned
    /// links, and the daemon took their pinned maps.
    Kept,
    /// Pinned programs of another build, or an incomplete set, were
    /// replaced by this build's programs on the same pinned maps.
    Replaced,
}

impl Takeover {
    /// Returns the name written into the `daemon_gap` record.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Kept => "kept",
            Self::Replaced => "replaced",
        }
    }
}

/// The loaded kernel programs and the maps the daemon writes.
pub(crate) struct Kernel {
    /// The object this daemon loaded, `None` when it kept pinned programs.
    /// The links are pinned, so dropping it detaches nothing.
    _ebpf: Option<Ebpf>,
    agents: HashMap<MapData, u64, AgentInfo>,
    path_rules: HashMap<MapData, PathKey, PathRule>,
    net_rules: LpmTrie<MapData, NetKey, NetRule>,
    exec_content: HashMap<MapData, ContentKey, RuleSlot>,
    leases: Array<MapData, LeaseState>,
    pub(crate) errors: PerCpuArray<MapData, u64>,
    pub(crate) sequence: Array<MapData, u64>,
}

impl Kernel {
    /// Takes over the pinned programs and maps when an earlier daemon of
    /// this build left them, and otherwise loads the programs with the
    /// running kernel's struct offsets, attaches and pins every hook and
    /// removes the links of other builds. Returns the maps with the ring
    /// buffer and how the programs came about.
    pub(crate) fn load() -> Result<(Self, RingBuf<MapData>, Takeover), KernelError> {
        if OBJECT.is_empty() {
            return Err(KernelError::NotBuilt);
        }
        check_bpf_lsm()?;
        let build = bpffs::build_id(OBJECT);
        bpffs::prepare(&build)?;
        let pinned_maps = bpffs::pinned_maps()?;
        let linked = bpffs::names_in(&bpffs::links_dir(&build))?;
        let complete = HOOKS.iter().all(|(program, _)| linked.iter().any(|name| name == program))
            && MAPS.iter().all(|map| pinned_maps.iter().any(|name| name == map));
        if complete {
            let (kernel, events) = Self::from_maps(None, |name| {
                let path = bpffs::maps_dir().join(name);
                let data = MapData::from_pin(&path).map_err(|source| KernelError::Pinned { path, source })?;
                aya::maps::Map::from_map_data(data)
                    .map_err(|source| KernelError::MapType { map: name, source: Box::new(source) })
            })?;
            tracing::info!(build, "took over the pinned programs and maps of this build");
            return Ok((kernel, events, Takeover::Kept));
        }
        let takeover = if pinned_maps.is_empty() { Takeover::Fresh } else { Takeover::Replaced };
        let ebpf = load_and_attach(&build, &pinned_maps)?;
        let (kernel, events) = Self::from_maps(Some(ebpf), |_| unreachable!("taken from the loaded object"))?;
        tracing::info!(build, takeover = takeover.name(), "kernel programs attached and pinned");
        Ok((kernel, events, takeover))
    }

    /// Builds the daemon's view of the maps, taking each from `ebpf` when
    /// given, else from `open`.
    fn from_maps(
        mut ebpf: Option<Ebpf>,
        mut open: impl FnMut(&'static str) -> Result<aya::maps::Map, KernelError>,
    ) -> Result<(Self, RingBuf<MapData>), KernelError> {
        let mut next_map = |name: &'static str| match ebpf.as_mut() {
            Some(ebpf) => take(ebpf, name),
            None => open(name),
        };
        let events = RingBuf::try_from(next_map("EVENTS")?)
            .map_err(|source| KernelError::MapType { source: Box::new(source), map: "EVENTS" })?;
        let kernel = Self {
            agents: HashMap::try_from(next_map("AGENTS")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "AGENTS" })?,
            path_rules: HashMap::try_from(next_map("PATH_RULES")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "PATH_RULES" })?,
            net_rules: LpmTrie::try_from(next_map("NET_RULES")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "NET_RULES" })?,
            exec_content: HashMap::try_from(next_map("EXEC_CONTENT")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "EXEC_CONTENT" })?,
            leases: Array::try_from(next_map("LEASES")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "LEASES" })?,
            errors: PerCpuArray::try_from(next_map("ERRORS")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "ERRORS" })?,
            sequence: Array::try_from(next_map("SEQUENCE")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "SEQUENCE" })?,
            _ebpf: ebpf,
        };
        Ok((kernel, events))
    }

    pub(crate) fn insert_path_rule(&mut self, key: &PathKey, rule: &PathRule) -> Result<(), KernelError> {
        self.path_rules
            .insert(key, rule, 0)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "PATH_RULES" })
    }

    pub(crate) fn remove_path_rule(&mut self, key: &PathKey) -> Result<(), KernelError> {
        self.path_rules
            .remove(key)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "PATH_RULES" })
    }

    pub(crate) fn insert_net_rule(&mut self, prefix_len: u32, key: NetKey, rule: &NetRule) -> Result<(), KernelError> {
        self.net_rules
            .insert(&Key::new(prefix_len, key), rule, 0)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "NET_RULES" })
    }

    pub(crate) fn remove_net_rule(&mut self, prefix_len: u32, key: NetKey) -> Result<(), KernelError> {
        self.net_rules
            .remove(&Key::new(prefix_len, key))
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "NET_RULES" })
    }

    pub(crate) fn insert_content_rule(&mut self, key: &ContentKey, rule: RuleSlot) -> Result<(), KernelError> {
        self.exec_content
            .insert(key, rule, 0)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "EXEC_CONTENT" })
    }

    pub(crate) fn remove_content_rule(&mut self, key: &ContentKey) -> Result<(), KernelError> {
        self.exec_content
            .remove(key)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "EXEC_CONTENT" })
    }

    /// Writes one `LEASES` slot. Writing a state with `expires_boot_ns` 0
    /// ends the lease at once.
    pub(crate) fn set_lease(&mut self, slot: u32, state: &LeaseState) -> Result<(), KernelError> {
        self.leases
            .set(slot, state, 0)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "LEASES" })
    }

    /// Reads one `LEASES` slot back from the kernel.
    pub(crate) fn lease(&self, slot: u32) -> Option<LeaseState> {
        self.leases.get(&slot, 0).ok()
    }

    pub(crate) fn insert_agent(&mut self, cgroup_id: u64, agent: &AgentInfo) -> Result<(), KernelError> {
        self.agents
            .insert(cgroup_id, agent, 0)
            .map_err(|source| KernelError::Update { source: Box::new(source), map: "AGENTS" })
    }

    pub(crate) fn remove_agent(&mut self, cgroup_id: u64) -> Result<(), KernelError> {
        self.agents.remove(&cgroup_id).map_err(|source| KernelError::Update { source: Box::new(source), map: "AGENTS" })
    }

    /// Labeled cgroups the kernel map contains now, read back from the kernel.
    pub(crate) fn agents_in_kernel(&self) -> Vec<(u64, AgentInfo)> {
        self.agents.iter().filter_map(Result::ok).collect()
    }

    /// Number of path rule entries the kernel map contains now.
    pub(crate) fn path_rules_in_kernel(&self) -> usize {
        self.path_rules.keys().filter_map(Result::ok).count()
    }

    /// Path rule keys the kernel map contains now.
    pub(crate) fn path_keys(&self) -> Vec<PathKey> {
        self.path_rules.keys().filter_map(Result::ok).collect()
    }

    /// Network rule keys the kernel map contains now, as (prefix length, key).
    pub(crate) fn net_keys(&self) -> Vec<(u32, NetKey)> {
        self.net_rules.keys().filter_map(Result::ok).map(|key| (key.prefix_len(), key.data())).collect()
    }

    /// Content rule keys the kernel map contains now.
    pub(crate) fn content_keys(&self) -> Vec<ContentKey> {
        self.exec_content.keys().filter_map(Result::ok).collect()
    }

    /// Number of `LEASES` slots that contain a lease now.
    pub(crate) fn leases_in_kernel(&self) -> usize {
        self.leases.iter().filter_map(Result::ok).filter(|state| state.expires_boot_ns != 0).count()
    }

    /// Sum over CPUs of one `ERRORS` slot.
    pub(crate) fn error_count(&self, slot: u32) -> u64 {
        self.errors.get(&slot, 0).map_or(0, |values| values.iter().sum())
    }

    /// Returns the next kernel sequence number.
    pub(crate) fn next_sequence(&self) -> u64 {
        self.sequence.get(&0, 0).unwrap_or(0)
    }

    /// Dropped events counted by the kernel so far.
    pub(crate) fn dropped_events(&self) -> u64 {
        self.error_count(error::RINGBUF_FULL)
    }
}

/// Loads the object on the pinned maps (pinning the maps it adds), attaches
/// every hook, pins the links under this build's folder, and only then
/// removes the links of other builds.
///
/// The replacement window: from the first new attach until the old links
/// are removed, a labeled action runs both the old and the new program on
/// the same maps. Both decide it and both record it, so its decision can be
/// in the ledger twice, and it is denied when either denies. At no point is
/// a hook without a program, so no labeled action goes unmediated.
fn load_and_attach(build: &str, pinned_maps: &[String]) -> Result<Ebpf, KernelError> {
    let offsets = btf::kernel_offsets(&btf::Btf::from_file(Path::new(btf::VMLINUX_BTF))?)?;
    check_compatible(&offsets, pinned_maps)?;
    let maps_dir = bpffs::maps_dir();
    let mut loader = EbpfLoader::new();
    loader.override_global("KERNEL_OFFSETS", &offsets, true);
    for name in pinned_maps {
        loader.map_pin_path(name.as_str(), maps_dir.join(name));
    }
    let mut ebpf = loader.load(OBJECT).map_err(|e| KernelError::Load(Box::new(e)))?;
    for (name, map) in ebpf.maps() {
        if name.starts_with('.') || pinned_maps.iter().any(|pinned| pinned == name) {
            continue;
        }
        let path = maps_dir.join(name);
        map.pin(&path).map_err(|source| KernelError::Pin { path, source })?;
    }

    let vmlinux = Btf::from_sys_fs().map_err(|e| {
        KernelError::Btf(btf::BtfError::Read { path: btf::VMLINUX_BTF.into(), source: std::io::Error::other(e) })
    })?;
    let mut links = Vec::new();
    for (program, hook) in HOOKS {
        links.push((program, attach(&mut ebpf, &vmlinux, program, hook)?));
    }
    let links_dir = bpffs::links_dir(build);
    for (program, link) in links {
        let path = links_dir.join(program);
        // A pin of this build left by an incomplete start is replaced; the
        // new link is attached already, so the hook is never without one.
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::warn!(path = %path.display(), "replaced a stale link pin"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(KernelError::Unpin { path, source }),
        }
        link.pin(&path).map_err(|source| KernelError::Pin { path, source })?;
    }
    for old in bpffs::pinned_builds()?.into_iter().filter(|old| old != build) {
        bpffs::remove_build(&old)?;
        tracing::info!(old_build = old, build, "detached the programs of another build");
    }
    Ok(ebpf)
}

/// Checks that every pinned map has the type, sizes and flags the object
/// defines for it. A map that changed cannot be reused, and replacing it
/// would drop the labels and rules of running agents, so the start fails
/// and the pinned programs go on enforcing.
fn check_compatible(offsets: &lupid_common::KernelOffsets, pinned_maps: &[String]) -> Result<(), KernelError> {
    if pinned_maps.is_empty() {
        return Ok(());
    }
    // Loading creates the maps but loads no program.
    let probe = EbpfLoader::new()
        .override_global("KERNEL_OFFSETS", offsets, true)
        .load(OBJECT)
        .map_err(|e| KernelError::Load(Box::new(e)))?;
    for (name, map) in probe.maps() {
        if !pinned_maps.iter().any(|pinned| pinned == name) {
            continue;
        }
        let path = bpffs::maps_dir().join(name);
        let pinned = aya::maps::MapInfo::from_pin(&path).map_err(|source| KernelError::Pinned { path, source })?;
        // A map this build cannot describe cannot be compared, so the start
        // fails rather than reuse a pinned map that may differ.
        let wanted = map_info(map).map_err(|source| KernelError::Describe { map: name.to_owned(), source })?;
        let shape = |info: &aya::maps::MapInfo| {
            (info.map_type().ok(), info.key_size(), info.value_size(), info.max_entries(), info.map_flags())
        };
        if shape(&pinned) != shape(&wanted) {
            return Err(KernelError::Incompatible {
                map: name.to_owned(),
                pinned: format!("{:?}", shape(&pinned)),
                wanted: format!("{:?}", shape(&wanted)),
            });
        }
    }
    Ok(())
}

/// Returns the kernel's description of a map of a loaded object.
fn map_info(map: &aya::maps::Map) -> Result<aya::maps::MapInfo, aya::maps::MapError> {
    use aya::maps::Map;
    let data = match map {
        Map::Array(data)
        | Map::ArrayOfMaps(data)
        | Map::BloomFilter(data)
        | Map::CgroupArray(data)
        | Map::CgroupStorage(data)
        | Map::CgrpStorage(data)
        | Map::CpuMap(data)
        | Map::DevMap(data)
        | Map::DevMapHash(data)
        | Map::HashMap(data)
        | Map::HashOfMaps(data)
        | Map::InodeStorage(data)
        | Map::LpmTrie(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuCgroupStorage(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuLruHashMap(data)
        | Map::PerfEventArray(data)
        | Map::ProgramArray(data)
        | Map::Queue(data)
        | Map::ReusePortSockArray(data)
        | Map::RingBuf(data)
        | Map::SockHash(data)
        | Map::SockMap(data)
        | Map::SkStorage(data)
        | Map::Stack(data)
        | Map::StackTraceMap(data)
        | Map::Unsupported(data)
        | Map::XskMap(data) => data,
    };
    data.info()
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, KernelError> {
    ebpf.take_map(name).ok_or(KernelError::MapMissing(name))
}

/// Loads and attaches one program and returns its link, which detaches
/// when dropped unless it was pinned.
fn attach(ebpf: &mut Ebpf, vmlinux: &Btf, program: &'static str, hook: &'static str) -> Result<FdLink, KernelError> {
    let refused = |source: aya::programs::ProgramError| {
        let hint = if source.to_string().contains("Operation not permitted") || format!("{source:?}").contains("EPERM")
        {
            " (EPERM: run as root; if you are root, the kernel forbids BPF LSM programs, for example under lockdown or without `bpf` in lsm=)"
        } else {
            ""
        };
        KernelError::Attach { program, hook, source: Box::new(source), hint }
    };
    let lsm: &mut Lsm =
        ebpf.program_mut(program).ok_or(KernelError::MapMissing(program))?.try_into().map_err(refused)?;
    lsm.load(hook, vmlinux).map_err(refused)?;
    let link = lsm.attach().map_err(refused)?;
    Ok(FdLink::from(lsm.take_link(link).map_err(refused)?))
}
