//! A minimal `io_uring` client on raw system calls, without liburing, so
//! `lupid-probe` can submit single operations that no ordinary system call
//! of the probe performs.
//!
//! A [`Ring`] owns one submission and one completion queue. Each
//! [`Ring::run`] call submits one entry, waits for its completion and
//! returns the completion's `res`: a non-negative result or a negated
//! `errno`. The layouts below follow `include/uapi/linux/io_uring.h` of
//! Linux 6.1.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

/// `IORING_OP_SENDMSG`.
pub const OP_SENDMSG: u8 = 9;
/// `IORING_OP_CONNECT`.
pub const OP_CONNECT: u8 = 16;
/// `IORING_OP_OPENAT`.
pub const OP_OPENAT: u8 = 18;
/// `IORING_OP_READ`.
pub const OP_READ: u8 = 22;
/// `IOSQE_ASYNC`: run the operation on an io-wq worker thread instead of
/// trying it inline in `io_uring_enter` first.
pub const SQE_ASYNC: u8 = 1 << 4;

const IORING_FEAT_SINGLE_MMAP: u32 = 1;
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_CQ_RING: i64 = 0x800_0000;
const IORING_OFF_SQES: i64 = 0x1000_0000;
/// Entries of each queue. One operation is in flight at a time.
const ENTRIES: u32 = 4;

#[repr(C)]
#[derive(Default)]
struct SqringOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    resv2: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqringOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    resv2: u64,
}

/// `struct io_uring_params`.
#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqringOffsets,
    cq_off: CqringOffsets,
}

/// `struct io_uring_sqe`, with the unions named after the fields the
/// probe's operations use.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Sqe {
    pub opcode: u8,
    pub flags: u8,
    pub ioprio: u16,
    pub fd: i32,
    /// `off`: the file offset of a read, the address length of a connect.
    pub off: u64,
    /// `addr`: the path, buffer, socket address or `msghdr` pointer.
    pub addr: u64,
    pub len: u32,
    /// `open_flags`, `msg_flags` or `rw_flags`, by operation.
    pub op_flags: u32,
    pub user_data: u64,
    pub buf_index: u16,
    pub personality: u16,
    pub splice_fd_in: i32,
    pub addr3: u64,
    pub pad: u64,
}

/// `struct io_uring_cqe`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

/// Bytes of one submission queue entry, `struct io_uring_sqe`.
const SQE_BYTES: u32 = 64;
/// Bytes of one completion queue entry, `struct io_uring_cqe`.
const CQE_BYTES: u32 = 16;

const _: () = {
    assert!(size_of::<Params>() == 120);
    assert!(size_of::<Sqe>() == SQE_BYTES as usize);
    assert!(size_of::<Cqe>() == CQE_BYTES as usize);
};

/// A shared memory mapping of the ring file, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(ring: &OwnedFd, len: usize, offset: i64) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the ring file at an offset the
        // kernel defines; nothing else refers to the returned range yet.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                ring.as_raw_fd(),
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null pointer"))?;
        Ok(Self { base, len })
    }

    /// Returns a pointer `offset` bytes into the mapping.
    fn at<T>(&self, offset: u32) -> *mut T {
        let offset = offset as usize;
        assert!(offset + size_of::<T>() <= self.len, "ring offset {offset} lies outside the mapping");
        // SAFETY: checked above to stay inside the mapping.
        unsafe { self.base.as_ptr().add(offset).cast::<T>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` describe a mapping this value owns, and no
        // pointer into it outlives the ring.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// An `io_uring` instance with its queues mapped.
pub struct Ring {
    fd: OwnedFd,
    sq: Mapping,
    /// `None` when the kernel maps both rings at once
    /// (`IORING_FEAT_SINGLE_MMAP`); the completion ring is then in `sq`.
    cq: Option<Mapping>,
    sqes: Mapping,
    params: Params,
}

impl Ring {
    /// Creates a ring with `io_uring_setup` and maps its queues.
    pub fn new() -> io::Result<Self> {
        let mut params = Params::default();
        // SAFETY: `params` is a valid, writable `io_uring_params`.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, ENTRIES, &raw mut params) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::other("io_uring_setup returned an invalid descriptor"))?;
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        let sq_len = params.sq_off.array as usize + params.sq_entries as usize * size_of::<u32>();
        let cq_len = params.cq_off.cqes as usize + params.cq_entries as usize * size_of::<Cqe>();
        let single = params.features & IORING_FEAT_SINGLE_MMAP != 0;
        let sq = Mapping::new(&fd, if single { sq_len.max(cq_len) } else { sq_len }, IORING_OFF_SQ_RING)?;
        let cq = if single { None } else { Some(Mapping::new(&fd, cq_len, IORING_OFF_CQ_RING)?) };
        let sqes = Mapping::new(&fd, params.sq_entries as usize * size_of::<Sqe>(), IORING_OFF_SQES)?;
        Ok(Self { fd, sq, cq, sqes, params })
    }

    fn cq(&self) -> &Mapping {
        self.cq.as_ref().unwrap_or(&self.sq)
    }

    /// Submits `sqe`, waits for its completion and returns its `res`.
    pub fn run(&mut self, sqe: Sqe) -> io::Result<i32> {
        let offsets = &self.params.sq_off;
        // SAFETY: the offsets come from the kernel and `Mapping::at` checks
        // them against the mapping. The head and tail words are shared with
        // the kernel, so they are accessed atomically. This process is the
        // only producer of submissions and the only consumer of completions.
        unsafe {
            let tail = AtomicU32::from_ptr(self.sq.at(offsets.tail));
            let mask = *self.sq.at::<u32>(offsets.ring_mask);
            let position = tail.load(Ordering::Acquire);
            let index = position & mask;
            self.sqes.at::<Sqe>(index * SQE_BYTES).write(sqe);
            self.sq.at::<u32>(offsets.array + index * 4).write(index);
            tail.store(position.wrapping_add(1), Ordering::Release);
        }

        loop {
            // SAFETY: io_uring_enter with no signal mask has no pointer arguments.
            let submitted = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd.as_raw_fd(),
                    1,
                    1,
                    IORING_ENTER_GETEVENTS,
                    ptr::null::<libc::sigset_t>(),
                    0,
                )
            };
            if submitted >= 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EINTR) {
                return Err(error);
            }
        }

        let offsets = &self.params.cq_off;
        let cq = self.cq();
        // SAFETY: as above, for the completion ring.
        unsafe {
            let head = AtomicU32::from_ptr(cq.at(offsets.head));
            let tail = AtomicU32::from_ptr(cq.at(offsets.tail));
            let mask = *cq.at::<u32>(offsets.ring_mask);
            let position = head.load(Ordering::Relaxed);
            if position == tail.load(Ordering::Acquire) {
                return Err(io::Error::other("io_uring_enter returned without a completion"));
            }
            let cqe = cq.at::<Cqe>(offsets.cqes + (position & mask) * CQE_BYTES).read();
            head.store(position.wrapping_add(1), Ordering::Release);
            Ok(cqe.res)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::io::Write;

    use super::*;

    /// Opens and reads a temporary file through the ring. Hosts whose
    /// seccomp filter forbids `io_uring_setup` skip with a message.
    #[test]
    fn ring_opens_and_reads_file() {
        let mut file = tempfile_in_tmp();
        file.1.write_all(b"uring").unwrap();
        let mut ring = match Ring::new() {
            Ok(ring) => ring,
            Err(error) => {
                eprintln!("skipped: io_uring_setup failed on this host: {error}");
                return;
            }
        };
        let path = CString::new(file.0.clone()).unwrap();
        let open = Sqe {
            opcode: OP_OPENAT,
            fd: libc::AT_FDCWD,
            addr: path.as_ptr() as u64,
            op_flags: libc::O_RDONLY as u32,
            ..Sqe::default()
        };
        let fd = ring.run(open).unwrap();
        assert!(fd >= 0, "IORING_OP_OPENAT failed with errno {}", -fd);

        let mut buffer = [0u8; 16];
        let read = Sqe { opcode: OP_READ, fd, addr: buffer.as_mut_ptr() as u64, len: 16, ..Sqe::default() };
        assert_eq!(ring.run(read).unwrap(), 5);
        assert_eq!(&buffer[..5], b"uring");
        // SAFETY: `fd` is the descriptor the ring opened and nothing else owns it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        std::fs::remove_file(&file.0).unwrap();
    }

    fn tempfile_in_tmp() -> (String, std::fs::File) {
        let path = format!("/tmp/lupid-uring-test-{}", std::process::id());
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
