//! The seed's iterative server: accept, read one message, reply, close, next.

use nix::errno::Errno;

use crate::error::Error;
use crate::output::say;
use crate::sys::{self, Flags, ffi};

use super::{ServerConfig, open_listener, write_all};

/// What a server run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that sent a message and got the reply.
    pub answered: u64,
}

/// The reply the server sends, like the seed's `"recieved well " + str(addr)` (spelled right).
pub fn reply_for(peer: &str) -> String {
    format!("received well {peer}")
}

/// Runs the server until `cfg.count` connections are served or SIGINT/SIGTERM arrives.
pub fn run(cfg: &ServerConfig) -> Result<ServeStats, Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let (listener, real) = open_listener(cfg)?;
    say("app.listening", &[("addr", real.to_string())]);
    let mut stats = ServeStats::default();
    let mut buf = vec![0u8; cfg.read_size.max(1)];
    while cfg.count.is_none_or(|n| stats.accepted < n) {
        // A signal that came before accept4 started would not interrupt it. (A small window
        // remains between this check and the call; closing it takes ppoll or a self-pipe.)
        if ffi::interrupted() {
            say("app.interrupted", &[]);
            break;
        }
        let (conn, peer) = match sys::accept4(&listener, Flags::SOCK_CLOEXEC) {
            Ok(c) => c,
            Err(Errno::EINTR) if ffi::interrupted() => {
                say("app.interrupted", &[]);
                break;
            }
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(e) => {
                let _ = sys::close(listener);
                return Err(Error::sys("accept4", real, e));
            }
        };
        stats.accepted += 1;
        let peer = peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        say("app.accepted", &[("peer", peer.clone())]);
        match sys::read(&conn, &mut buf) {
            Ok(0) => say("app.empty", &[("peer", peer.clone())]),
            Ok(n) => {
                let data = String::from_utf8_lossy(&buf[..n]).into_owned();
                say("app.received", &[("data", data)]);
                // A peer that vanished (EPIPE, ECONNRESET) costs this connection only.
                if write_all(&conn, reply_for(&peer).as_bytes()).is_ok() {
                    stats.answered += 1;
                }
            }
            // The event already shows the errno; the server serves on.
            Err(_) => {}
        }
        let _ = sys::close(conn);
    }
    sys::close(listener).map_err(|e| Error::sys("close", real, e))?;
    Ok(stats)
}
