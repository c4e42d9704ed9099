//! Listening sockets with a backlog for bursts: when a run's instances all move to the next
//! state at once, a thousand agents may connect within a few milliseconds. Tokio's
//! `TcpListener::bind` asks for a backlog of 1,024; a connection beyond what the accept loop
//! has taken is dropped by the kernel and its client retries after a second (seen as a 1 s
//! stall in the Executing phase of a 1,000-instance run: 106 `ListenOverflows` in 3 runs).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel may hold for the accept loop (it caps this at
/// `net.core.somaxconn`, 4,096 by default).
const BACKLOG: u32 = 8192;

/// Binds the first address `addr` resolves to that can be bound, as `TcpListener::bind` does.
pub async fn bind(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match bind_one(a) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the address resolves to nothing")))
}

fn bind_one(a: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if a.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As TcpListener::bind: a restarted server may bind while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(a)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn it_binds_a_free_port_and_refuses_a_taken_one() {
        let l = super::bind("127.0.0.1:0").await.unwrap();
        let at = l.local_addr().unwrap();
        assert!(at.port() > 0);
        assert!(super::bind(at).await.is_err(), "the port is taken");
    }
}
