//! TCP and Unix socket listeners that count the connections that reached
//! them, and a UDP socket that counts the datagrams.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// How long [`Listener::accepted`] waits for connections still in flight.
/// The probe has finished its connect before the test asks, so this only
/// covers the loopback handshake reaching the listen queue.
const SETTLE_TIME: Duration = Duration::from_millis(500);

/// A listener the test binds before running an agent, so a connect that
/// lupid wrongly allows is seen as an accepted connection.
pub(crate) struct Listener {
    socket: TcpListener,
    addr: SocketAddr,
}

impl Listener {
    /// Binds `addr`, which is `IPV4:PORT` or `[IPV6]:PORT`.
    pub(crate) fn bind(addr: &str) -> Self {
        let addr: SocketAddr = addr.parse().unwrap_or_else(|error| panic!("invalid listen address {addr}: {error}"));
        let socket = TcpListener::bind(addr).unwrap_or_else(|error| {
            panic!(
                "failed to listen on {addr}: {error}; the test VM must put 203.0.113.7/32 on lo \
                 and leave port 8080 free"
            )
        });
        socket.set_nonblocking(true).expect("failed to make the listener non-blocking");
        Self { socket, addr }
    }

    /// Accepts every connection that is queued or arrives within a short
    /// settle time, and returns how many there were.
    pub(crate) fn accepted(&self) -> usize {
        count_accepts(&self.addr.to_string(), || self.socket.accept().map(drop))
    }
}

/// A listener on a Unix stream socket, bound by the test before running an
/// agent, so a connect that lupid wrongly allows is seen as an accepted
/// connection.
pub(crate) struct UnixSocketListener {
    socket: UnixListener,
    path: PathBuf,
}

impl UnixSocketListener {
    /// Binds a new socket file at `path`.
    pub(crate) fn bind(path: &Path) -> Self {
        let socket =
            UnixListener::bind(path).unwrap_or_else(|error| panic!("failed to listen on {}: {error}", path.display()));
        socket.set_nonblocking(true).expect("failed to make the Unix listener non-blocking");
        Self { socket, path: path.to_owned() }
    }

    /// As [`Listener::accepted`].
    pub(crate) fn accepted(&self) -> usize {
        count_accepts(&self.path.display().to_string(), || self.socket.accept().map(drop))
    }
}

/// Calls the non-blocking `accept` until nothing more arrives within the
/// settle time, and returns how many connections it accepted.
fn count_accepts(name: &str, accept: impl Fn() -> io::Result<()>) -> usize {
    let deadline = Instant::now() + SETTLE_TIME;
    let mut count = 0;
    loop {
        match accept() {
            Ok(()) => count += 1,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return count;
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("accept on {name} failed: {error}"),
        }
    }
}

/// A UDP socket the test binds before running an agent, so a datagram
/// that lupid wrongly allows is counted.
pub(crate) struct Receiver(UdpSocket);

impl Receiver {
    /// Binds `addr`, which is `IPV4:PORT` or `[IPV6]:PORT`, for
    /// non-blocking reads.
    pub(crate) fn bind(addr: &str) -> Self {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|error| panic!("failed to bind UDP {addr}: {error}"));
        socket.set_nonblocking(true).expect("failed to make the UDP socket non-blocking");
        Self(socket)
    }

    /// Returns how many datagrams arrived, after a short settle time.
    pub(crate) fn received(&self) -> usize {
        thread::sleep(Duration::from_millis(300));
        let mut buffer = [0u8; 256];
        let mut count = 0;
        while self.0.recv(&mut buffer).is_ok() {
            count += 1;
        }
        count
    }
}
