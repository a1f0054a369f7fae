//! Socket addresses read from a traced program's memory, spelled as the lab's wrappers spell
//! them (`127.0.0.1:8080`, `[::1]:8080`), plus Unix-domain paths and abstract names.
//!
//! Read first: ip(7), ipv6(7), unix(7) (`sun_path`, the abstract namespace).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// The port of an AF_INET or AF_INET6 sockaddr (0 when unset), None for other families.
pub fn inet_port(bytes: &[u8]) -> Option<u16> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    matches!(i32::from(family), libc::AF_INET | libc::AF_INET6)
        .then(|| Some(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])))
        .flatten()
}

/// `struct sockaddr` bytes, as many as the call passed (`addrlen`), in the lab's spelling.
pub fn sockaddr(bytes: &[u8]) -> String {
    let Some(family) = bytes.get(..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
        return String::new();
    };
    match i32::from(family) {
        libc::AF_INET if bytes.len() >= 8 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            SocketAddrV4::new(ip, port).to_string()
        }
        libc::AF_INET6 if bytes.len() >= 28 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let flow = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&bytes[8..24]);
            let scope = u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
            SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope).to_string()
        }
        libc::AF_UNIX => unix_path(&bytes[2..]),
        _ => format!("{{sa_family={family}}}"),
    }
}

/// `sun_path`: a path up to its NUL, `@name` for an abstract name (leading NUL, as `ss`
/// prints it), empty for an unnamed socket.
fn unix_path(path: &[u8]) -> String {
    match path.split_first() {
        None => String::new(),
        Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
        Some(_) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            String::from_utf8_lossy(&path[..end]).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_family(family: i32, rest: &[u8]) -> Vec<u8> {
        let mut b = (family as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn inet_and_inet6_read_as_the_wrappers_print_them() {
        let mut v4 = 8080u16.to_be_bytes().to_vec();
        v4.extend_from_slice(&[127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let want: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(sockaddr(&with_family(libc::AF_INET, &v4)), want.to_string());

        let mut v6 = 443u16.to_be_bytes().to_vec();
        v6.extend_from_slice(&[0; 4]);
        let mut ip = [0u8; 16];
        ip[15] = 1;
        v6.extend_from_slice(&ip);
        v6.extend_from_slice(&[0; 4]);
        let want: std::net::SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(
            sockaddr(&with_family(libc::AF_INET6, &v6)),
            want.to_string()
        );
    }

    #[test]
    fn unix_paths_abstract_names_and_the_unnamed() {
        let path = with_family(libc::AF_UNIX, b"/tmp/echo.sock\0\0\0");
        assert_eq!(sockaddr(&path), "/tmp/echo.sock");
        let abstract_name = with_family(libc::AF_UNIX, b"\0socklab-1060");
        assert_eq!(sockaddr(&abstract_name), "@socklab-1060");
        assert_eq!(sockaddr(&with_family(libc::AF_UNIX, b"")), "");
    }

    #[test]
    fn short_or_unknown_addresses_do_not_panic() {
        assert_eq!(sockaddr(&[]), "");
        assert_eq!(sockaddr(&[2]), "");
        assert_eq!(
            sockaddr(&with_family(libc::AF_INET, &[0, 80])),
            "{sa_family=2}"
        );
        assert_eq!(
            sockaddr(&with_family(libc::AF_NETLINK, &[0; 10])),
            "{sa_family=16}"
        );
    }
}
