//! Choosing the lab's server ports.
//!
//! A port picked with bind(port 0) comes from the kernel's ephemeral range, where any
//! connect() on the machine may take it as a source port between the pick and the server's
//! bind. The lab picks from below that range instead, where the kernel never allocates, and
//! skips ports that an old socket (say, one in TIME_WAIT) still refers to.

use std::net::{TcpListener, UdpSocket};

use crate::observe::{sock_diag, sysctl};

/// Lowest port the lab picks from.
pub const LOWEST: u16 = 10_000;

/// How many candidates to try before giving up.
const TRIES: u32 = 64;

fn free(port: u16, ipv6: bool) -> bool {
    let host = if ipv6 { "::1" } else { "127.0.0.1" };
    TcpListener::bind((host, port)).is_ok()
        && UdpSocket::bind((host, port)).is_ok()
        && sock_diag::tcp_sockets(&[port]).is_ok_and(|s| s.is_empty())
}

/// A port on the IPv4 (or IPv6) loopback that is free now, below the ephemeral range, and
/// that no TCP socket refers to. Falls back to a kernel-chosen port when the range leaves no
/// room below it.
pub fn free_server_port(ipv6: bool) -> Result<u16, String> {
    let (lo, _) = sysctl::local_port_range();
    if lo > LOWEST + 100 {
        let span = u64::from(lo - LOWEST);
        let seed = crate::record::now_ns() ^ (u64::from(std::process::id()) << 17);
        for i in 0..u64::from(TRIES) {
            // A stride co-prime with most spans walks the range without repeats.
            let port = LOWEST + ((seed + i * 7919) % span) as u16;
            if free(port, ipv6) {
                return Ok(port);
            }
        }
    }
    let host = if ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
    for _ in 0..TRIES {
        let port = TcpListener::bind(host)
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("cannot find a free port on {host}: {e}"))?;
        if free(port, ipv6) {
            return Ok(port);
        }
    }
    Err(format!("no free port found on {host} after {TRIES} tries"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_bindable_port_below_the_ephemeral_range() {
        let (lo, _) = sysctl::local_port_range();
        let p = free_server_port(false).unwrap();
        assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
        if lo > LOWEST + 100 {
            assert!((LOWEST..lo).contains(&p), "{p}");
        }
    }
}
