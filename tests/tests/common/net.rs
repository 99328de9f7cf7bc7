//! A TCP listener that counts the connections that reached it.

use std::io;
use std::net::{SocketAddr, TcpListener};
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
        let deadline = Instant::now() + SETTLE_TIME;
        let mut count = 0;
        loop {
            match self.socket.accept() {
                Ok(_) => count += 1,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return count;
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                Err(error) => panic!("accept on {} failed: {error}", self.addr),
            }
        }
    }
}
