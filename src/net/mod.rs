//! The network the lab builds for itself: a private loopback, two hosts and a router, free
//! ports on loopback, the slow-motion wire, and resolving a host name.

pub mod hosts;
pub mod netns;
pub mod ports;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use crate::course::notes;
use crate::error::Error;

/// Resolves HOST: an IP address as is, otherwise the first address the resolver gives.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let bad = || {
        Error::Usage(notes::text(
            "cli.invalid_host",
            &[("host", host.to_string())],
        ))
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// Where a tool (`ip`, `nft`, `iptables-nft`) is: on PATH first, then in the sbin
/// directories an ordinary user's PATH may lack.
pub fn find_tool(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(Into::into))
        .map(|d: std::path::PathBuf| d.join(name))
        .find(|p| p.is_file())
}
