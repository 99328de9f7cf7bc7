//! Loading, attaching and writing lupid's kernel programs and maps.
//!
//! The daemon is the only writer of the rule maps. This module owns the
//! loaded object and exposes the few operations the daemon needs, each
//! named after the map it changes.

use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::Lsm,
};
use lupid_common::{AgentInfo, ContentKey, LeaseState, NetKey, NetRule, PathKey, PathRule, RuleSlot, error};

use super::btf;

/// The kernel programs, built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lupid.bpf.o"));

/// The LSM hooks lupid attaches, as (program name, hook name).
pub(crate) const HOOKS: [(&str, &str); 4] = [
    ("bprm_check_security", "bprm_check_security"),
    ("file_open", "file_open"),
    ("socket_connect", "socket_connect"),
    ("socket_sendmsg", "socket_sendmsg"),
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
    #[error("failed to update map {map}: {source}")]
    Update { map: &'static str, source: Box<aya::maps::MapError> },
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

/// The loaded kernel programs and the maps the daemon writes.
pub(crate) struct Kernel {
    /// Keeps programs and links alive; dropping it detaches every hook.
    _ebpf: Ebpf,
    agents: HashMap<MapData, u64, AgentInfo>,
    path_rules: HashMap<MapData, PathKey, PathRule>,
    net_rules: LpmTrie<MapData, NetKey, NetRule>,
    exec_content: HashMap<MapData, ContentKey, RuleSlot>,
    leases: Array<MapData, LeaseState>,
    pub(crate) errors: PerCpuArray<MapData, u64>,
    pub(crate) sequence: Array<MapData, u64>,
}

impl Kernel {
    /// Loads the programs with the running kernel's struct offsets,
    /// attaches every hook and returns the maps with the ring buffer.
    pub(crate) fn load() -> Result<(Self, RingBuf<MapData>), KernelError> {
        if OBJECT.is_empty() {
            return Err(KernelError::NotBuilt);
        }
        check_bpf_lsm()?;
        let offsets = btf::kernel_offsets(&btf::Btf::from_file(Path::new(btf::VMLINUX_BTF))?)?;
        let mut ebpf = EbpfLoader::new()
            .override_global("KERNEL_OFFSETS", &offsets, true)
            .load(OBJECT)
            .map_err(|e| KernelError::Load(Box::new(e)))?;

        let vmlinux = Btf::from_sys_fs().map_err(|e| {
            KernelError::Btf(btf::BtfError::Read { path: btf::VMLINUX_BTF.into(), source: std::io::Error::other(e) })
        })?;
        for (program, hook) in HOOKS {
            attach(&mut ebpf, &vmlinux, program, hook)?;
        }

        let events = RingBuf::try_from(take(&mut ebpf, "EVENTS")?)
            .map_err(|source| KernelError::MapType { source: Box::new(source), map: "EVENTS" })?;
        let kernel = Self {
            agents: HashMap::try_from(take(&mut ebpf, "AGENTS")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "AGENTS" })?,
            path_rules: HashMap::try_from(take(&mut ebpf, "PATH_RULES")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "PATH_RULES" })?,
            net_rules: LpmTrie::try_from(take(&mut ebpf, "NET_RULES")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "NET_RULES" })?,
            exec_content: HashMap::try_from(take(&mut ebpf, "EXEC_CONTENT")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "EXEC_CONTENT" })?,
            leases: Array::try_from(take(&mut ebpf, "LEASES")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "LEASES" })?,
            errors: PerCpuArray::try_from(take(&mut ebpf, "ERRORS")?)
                .map_err(|source| KernelError::MapType { source: Box::new(source), map: "ERRORS" })?,
            sequence: Array::try_from(take(&mut ebpf, "SEQUENCE")?)
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

    pub(crate) fn insert_content_rule(&mut self, key: &ContentKey, rule: &RuleSlot) -> Result<(), KernelError> {
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

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, KernelError> {
    ebpf.take_map(name).ok_or(KernelError::MapMissing(name))
}

fn attach(ebpf: &mut Ebpf, vmlinux: &Btf, program: &'static str, hook: &'static str) -> Result<(), KernelError> {
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
    lsm.attach().map_err(refused)?;
    Ok(())
}
