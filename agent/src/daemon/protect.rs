//! Telling the kernel programs which process is the daemon, so the
//! `task_kill` and `ptrace_access_check` protections keep agents away from
//! it.

use aya::maps::{Array, Map, MapData};

use super::{bpffs, kernel::KernelError};

/// Name of the map whose slot 0 contains the daemon's thread group id.
const DAEMON_MAP: &str = "DAEMON";

/// Writes this process's id into the pinned `DAEMON` map. Called after
/// [`super::kernel::Kernel::load`], which pins every map, on a fresh start
/// as well as on a takeover of pinned programs, whose map still names the
/// previous daemon.
///
/// NOTE: the id is the one of the daemon's pid namespace, and the kernel
/// compares it with `task_struct::tgid`, the id in the initial namespace,
/// so a daemon in another pid namespace is not protected.
pub(crate) fn register_daemon() -> Result<(), KernelError> {
    let path = bpffs::maps_dir().join(DAEMON_MAP);
    let data = MapData::from_pin(&path).map_err(|source| KernelError::Pinned { path, source })?;
    let map = Map::from_map_data(data)
        .map_err(|source| KernelError::MapType { map: DAEMON_MAP, source: Box::new(source) })?;
    let mut daemon: Array<MapData, u32> =
        Array::try_from(map).map_err(|source| KernelError::MapType { map: DAEMON_MAP, source: Box::new(source) })?;
    daemon
        .set(0, std::process::id(), 0)
        .map_err(|source| KernelError::Update { map: DAEMON_MAP, source: Box::new(source) })
}
