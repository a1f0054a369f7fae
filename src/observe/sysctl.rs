//! Kernel settings that explain what the learner sees.
//!
//! Read first: ip-sysctl.rst in the kernel's networking docs.

use std::sync::OnceLock;

/// Where Linux keeps the range of ephemeral ports.
pub const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Parses the two numbers of `ip_local_port_range`.
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let lo = it.next()?.ok()?;
    let hi = it.next()?.ok()?;
    (lo <= hi).then_some((lo, hi))
}

/// The kernel's ephemeral port range (read once; Linux's default 32768-60999 if unreadable).
pub fn local_port_range() -> (u16, u16) {
    static RANGE: OnceLock<(u16, u16)> = OnceLock::new();
    *RANGE.get_or_init(|| {
        std::fs::read_to_string(LOCAL_PORT_RANGE)
            .ok()
            .and_then(|t| parse_port_range(&t))
            .unwrap_or((32768, 60999))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range(""), None);
        assert_eq!(parse_port_range("a b"), None);
    }
}
