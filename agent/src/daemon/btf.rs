//! Field offsets from the running kernel's BTF.
//!
//! The kernel programs carry no CO-RE relocations, so they must not assume
//! one kernel's struct layout. The daemon reads the offsets it needs from
//! `/sys/kernel/btf/vmlinux` and writes them into the programs' read-only
//! globals before loading them. The BTF format is the kernel's UAPI
//! (`include/uapi/linux/btf.h`); this reader understands only what a
//! member lookup needs.

use std::{collections::HashMap, path::Path};

use lupid_common::KernelOffsets;

/// The kernel's own BTF.
pub(crate) const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub(crate) enum BtfError {
    #[error("failed to read BTF from {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid BTF: {0}")]
    Invalid(&'static str),
    #[error("struct {0} not found in the kernel's BTF")]
    StructMissing(String),
    #[error("struct {struct_name} has no member {member} in the kernel's BTF")]
    MemberMissing { struct_name: String, member: String },
    #[error("member {struct_name}.{member} is at byte {offset}, but the kernel programs need it at 0")]
    NotFirst { struct_name: String, member: String, offset: u32 },
    #[error("member {struct_name}.{member} is a bit field, so it has no byte offset")]
    BitField { struct_name: String, member: String },
}

#[derive(Clone, Copy)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

struct Composite {
    name_off: u32,
    members: Vec<Member>,
}

/// The struct and union types of one BTF blob, enough to find members.
pub(crate) struct Btf {
    strings: Vec<u8>,
    /// Type id to composite; other kinds are skipped.
    composites: HashMap<u32, Composite>,
    by_name: HashMap<Vec<u8>, u32>,
}

impl Btf {
    pub(crate) fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read { path: path.display().to_string(), source })?;
        Self::parse(&data)
    }

    pub(crate) fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let u16_at = |at: usize| data.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |at: usize| data.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if u16_at(0) != Some(MAGIC) {
            return Err(BtfError::Invalid("bad magic (or not little-endian)"));
        }
        let header = |at| u32_at(at).map(|v| v as usize).ok_or(BtfError::Invalid("truncated header"));
        let header_len = header(4)?;
        let (type_off, type_len, str_off, str_len) = (header(8)?, header(12)?, header(16)?, header(20)?);
        let types = data
            .get(header_len + type_off..header_len + type_off + type_len)
            .ok_or(BtfError::Invalid("type section out of bounds"))?;
        let strings = data
            .get(header_len + str_off..header_len + str_off + str_len)
            .ok_or(BtfError::Invalid("string section out of bounds"))?
            .to_vec();

        let mut btf = Self { strings, composites: HashMap::new(), by_name: HashMap::new() };
        btf.read_types(types)?;
        Ok(btf)
    }

    fn read_types(&mut self, types: &[u8]) -> Result<(), BtfError> {
        let word = |at: usize| {
            types
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(BtfError::Invalid("truncated type"))
        };
        let mut at = 0;
        let mut id = 1u32;
        while at < types.len() {
            let name_off = word(at)?;
            let info = word(at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,             // int, var, decl tag
                3 => 12,                      // array
                4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
                6 | 13 => 8 * vlen,           // enum, func proto
                2 | 7..=12 | 16 | 18 => 0,    // ptr, fwd, typedef, qualifiers, func, float, type tag
                _ => return Err(BtfError::Invalid("unknown type kind")),
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let base = at + 12 * m;
                    let raw_offset = word(base + 8)?;
                    // With kind_flag set, the top 8 bits hold a bit-field size.
                    let bit_offset = if kind_flag { raw_offset & 0x00ff_ffff } else { raw_offset };
                    members.push(Member { name_off: word(base)?, type_id: word(base + 4)?, bit_offset });
                }
                if kind == KIND_STRUCT && name_off != 0 {
                    self.by_name.entry(self.string(name_off).to_vec()).or_insert(id);
                }
                self.composites.insert(id, Composite { name_off, members });
            }
            at += extra;
            id += 1;
        }
        Ok(())
    }

    fn string(&self, offset: u32) -> &[u8] {
        let rest = self.strings.get(offset as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Returns the byte offset of `member` in `struct struct_name`, looking
    /// through anonymous struct and union members.
    pub(crate) fn member_offset(&self, struct_name: &str, member: &str) -> Result<u32, BtfError> {
        let id =
            *self.by_name.get(struct_name.as_bytes()).ok_or_else(|| BtfError::StructMissing(struct_name.to_owned()))?;
        let bits = self.find_member(id, member.as_bytes(), 0).ok_or_else(|| BtfError::MemberMissing {
            struct_name: struct_name.to_owned(),
            member: member.to_owned(),
        })?;
        if bits % 8 != 0 {
            return Err(BtfError::BitField { struct_name: struct_name.to_owned(), member: member.to_owned() });
        }
        Ok(bits / 8)
    }

    fn find_member(&self, id: u32, member: &[u8], depth: u32) -> Option<u32> {
        let composite = self.composites.get(&id)?;
        let _ = composite.name_off;
        for m in &composite.members {
            if self.string(m.name_off) == member {
                return Some(m.bit_offset);
            }
        }
        if depth > 8 {
            return None;
        }
        // Anonymous members: their fields belong to the enclosing struct.
        composite
            .members
            .iter()
            .filter(|m| m.name_off == 0)
            .find_map(|m| self.find_member(m.type_id, member, depth + 1).map(|inner| m.bit_offset + inner))
    }
}

/// Reads every offset the kernel programs need.
pub(crate) fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, BtfError> {
    Ok(KernelOffsets {
        binprm_file: btf.member_offset("linux_binprm", "file")?,
        file_f_path: btf.member_offset("file", "f_path")?,
        file_f_mode: btf.member_offset("file", "f_mode")?,
        msghdr_msg_name: btf.member_offset("msghdr", "msg_name")?,
        msghdr_msg_namelen: btf.member_offset("msghdr", "msg_namelen")?,
        file_f_inode: btf.member_offset("file", "f_inode")?,
        inode_i_sb: btf.member_offset("inode", "i_sb")?,
        super_block_s_magic: btf.member_offset("super_block", "s_magic")?,
        task_tgid: btf.member_offset("task_struct", "tgid")?,
        task_cgroups: btf.member_offset("task_struct", "cgroups")?,
        css_set_dfl_cgrp: btf.member_offset("css_set", "dfl_cgrp")?,
        cgroup_kn: btf.member_offset("cgroup", "kn")?,
        kernfs_node_id: btf.member_offset("kernfs_node", "id")?,
        socket_sk: btf.member_offset("socket", "sk")?,
        sock_sk_protocol: btf.member_offset("sock", "sk_protocol")?,
        sock_family: btf.member_offset("sock", "__sk_common")? + btf.member_offset("sock_common", "skc_family")?,
        unix_sock_addr: unix_sock_member(btf, "addr")?,
        unix_sock_peer: unix_sock_member(btf, "peer")?,
        unix_address_len: btf.member_offset("unix_address", "len")?,
        unix_address_name: btf.member_offset("unix_address", "name")?,
        task_flags: btf.member_offset("task_struct", "flags")?,
        pt_regs_orig_ax: btf.member_offset("pt_regs", "orig_ax")?,
        inode_i_ino: btf.member_offset("inode", "i_ino")?,
        super_block_s_dev: btf.member_offset("super_block", "s_dev")?,
        dentry_d_name: btf.member_offset("dentry", "d_name")?,
        qstr_name: btf.member_offset("qstr", "name")?,
        task_comm: btf.member_offset("task_struct", "comm")?,
        binprm_filename: btf.member_offset("linux_binprm", "filename")?,
        pt_regs_di: btf.member_offset("pt_regs", "di")?,
        pt_regs_si: btf.member_offset("pt_regs", "si")?,
        dentry_d_inode: btf.member_offset("dentry", "d_inode")?,
        dentry_d_parent: btf.member_offset("dentry", "d_parent")?,
        path_dentry: btf.member_offset("path", "dentry")?,
        path_mnt: btf.member_offset("path", "mnt")?,
        qstr_len: btf.member_offset("qstr", "len")?,
        mount_mnt: btf.member_offset("mount", "mnt")?,
        mount_mnt_parent: btf.member_offset("mount", "mnt_parent")?,
        mount_mnt_mountpoint: btf.member_offset("mount", "mnt_mountpoint")?,
        vfsmount_mnt_root: btf.member_offset("vfsmount", "mnt_root")?,
        task_fs: btf.member_offset("task_struct", "fs")?,
        fs_struct_root: btf.member_offset("fs_struct", "root")?,
        inode_i_mode: btf.member_offset("inode", "i_mode")?,
        msghdr_msg_control: btf.member_offset("msghdr", "msg_control")?,
        msghdr_msg_controllen: btf.member_offset("msghdr", "msg_controllen")?,
        mount_mnt_ns: btf.member_offset("mount", "mnt_ns")?,
        task_nsproxy: btf.member_offset("task_struct", "nsproxy")?,
        nsproxy_mnt_ns: btf.member_offset("nsproxy", "mnt_ns")?,
    })
}

/// Returns the offset of `member` in `struct unix_sock`. The hooks get a
/// `struct sock *` and read it as the `struct unix_sock` it opens, so
/// `unix_sock.sk` must be the first member.
fn unix_sock_member(btf: &Btf, member: &str) -> Result<u32, BtfError> {
    let sk = btf.member_offset("unix_sock", "sk")?;
    if sk != 0 {
        return Err(BtfError::NotFirst { struct_name: "unix_sock".to_owned(), member: "sk".to_owned(), offset: sk });
    }
    btf.member_offset("unix_sock", member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_from_running_kernel() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipped: {VMLINUX_BTF} is missing, so this kernel has no BTF to read");
            return;
        }
        let btf = Btf::from_file(path).expect("the running kernel's BTF parses");
        let offsets = kernel_offsets(&btf).expect("every needed member is present");
        // Neither `file` nor `f_path` opens its struct on any kernel with
        // BTF (a pointer, a lock or a union comes first), so a zero offset
        // means the lookup went wrong.
        assert_ne!(offsets.file_f_path, 0);
        assert_ne!(offsets.binprm_file, 0);
        assert_ne!(offsets.file_f_path, offsets.file_f_mode);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(Btf::parse(b"not btf at all").is_err());
    }

    #[test]
    fn truncated_header_is_rejected() {
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0]).is_err());
    }

    #[test]
    fn missing_struct_is_named() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipped: {VMLINUX_BTF} is missing");
            return;
        }
        let btf = Btf::from_file(path).expect("BTF parses");
        let error = btf.member_offset("no_such_struct_lupid", "x").unwrap_err();
        assert!(error.to_string().contains("no_such_struct_lupid"));
    }
}
