//! Choosing the lab's server ports.
//!
//! A port picked with bind(port 0) comes from the kernel's ephemeral range, where any
//! connect() on the machine may take it as a source port between the pick and the server's
//! bind. The lab picks from below that range instead, where the kernel never allocates, and
//! skips ports that an old socket (say, one in TIME_WAIT) still refers to.
//!
//! Two lab processes (or two tests in one) may look at the same free port at the same time.
//! Each pick is therefore claimed: the lab binds an abstract unix socket named after the port,
//! which only one socket can hold, and keeps it while the port is in use. The kernel removes
//! it when the [`Claim`] is dropped or the process ends, so nothing is left behind.

use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

use crate::observe::{sock_diag, sysctl};

/// Lowest port the lab picks from.
pub const LOWEST: u16 = 10_000;

/// How many candidates to try before giving up.
const TRIES: u32 = 64;

/// A server port this process picked; other lab processes skip it while the claim lives.
#[derive(Debug)]
pub struct Claim {
    port: u16,
    _name: UnixDatagram,
}

impl Claim {
    /// The port claimed.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Claims `port` for this process, or `None` when another lab process holds it.
fn claim(port: u16) -> Option<Claim> {
    let name = UnixAddr::from_abstract_name(format!("socklab-port-{port}")).ok()?;
    let sock = UnixDatagram::bind_addr(&name).ok()?;
    Some(Claim { port, _name: sock })
}

fn free(port: u16, ipv6: bool) -> bool {
    let host = if ipv6 { "::1" } else { "127.0.0.1" };
    TcpListener::bind((host, port)).is_ok()
        && UdpSocket::bind((host, port)).is_ok()
        && sock_diag::tcp_sockets(&[port]).is_ok_and(|s| s.is_empty())
}

/// A port on the IPv4 (or IPv6) loopback that is free now, below the ephemeral range, that
/// no TCP socket refers to and that no other lab process has claimed. Falls back to a
/// kernel-chosen port when the range leaves no room below it. Keep the claim until the
/// server has bound the port.
pub fn free_server_port(ipv6: bool) -> Result<Claim, String> {
    let (lo, _) = sysctl::local_port_range();
    if lo > LOWEST + 100 {
        let span = u64::from(lo - LOWEST);
        let seed = crate::event::record::now_ns() ^ (u64::from(std::process::id()) << 17);
        // A stride co-prime with most spans walks the range without repeats.
        let below = (0..u64::from(TRIES)).map(|i| LOWEST + ((seed + i * 7919) % span) as u16);
        if let Some(c) = first_free(below, ipv6) {
            return Ok(c);
        }
    }
    let host = if ipv6 { "[::1]:0" } else { "127.0.0.1:0" };
    let mut failed = None;
    let kernel_picks =
        (0..TRIES).map_while(
            |_| match TcpListener::bind(host).and_then(|l| l.local_addr()) {
                Ok(a) => Some(a.port()),
                Err(e) => {
                    failed = Some(format!("cannot find a free port on {host}: {e}"));
                    None
                }
            },
        );
    let found = first_free(kernel_picks, ipv6);
    found.ok_or_else(|| {
        failed.unwrap_or_else(|| format!("no free port found on {host} after {TRIES} tries"))
    })
}

/// Claims the first of `candidates` that is free.
fn first_free(candidates: impl Iterator<Item = u16>, ipv6: bool) -> Option<Claim> {
    candidates.filter_map(claim).find(|c| free(c.port, ipv6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_a_bindable_port_below_the_ephemeral_range() {
        let (lo, _) = sysctl::local_port_range();
        let c = free_server_port(false).unwrap();
        let p = c.port();
        assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
        if lo > LOWEST + 100 {
            assert!((LOWEST..lo).contains(&p), "{p}");
        }
    }

    #[test]
    fn a_claimed_port_is_skipped_until_released() {
        let first = free_server_port(false).unwrap();
        let p = first.port();
        let next = if p > LOWEST { p - 1 } else { p + 1 };
        let second = first_free([p, next].into_iter(), false);
        assert_ne!(second.as_ref().map(Claim::port), Some(p));
        drop((first, second));
        assert_eq!(
            first_free([p].into_iter(), false).map(|c| c.port()),
            Some(p)
        );
    }
}
