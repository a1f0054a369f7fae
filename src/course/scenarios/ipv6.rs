//! `ipv6`: the handshake of `handshake`, over the IPv6 loopback `::1`: AF_INET6 sockets,
//! addresses written `[::1]:port`, and the very same TCP states. TCP does not change with
//! the IP version under it.

use super::{Expect, Lab, Scenario, Tier, packets};
use crate::error::Error;
use crate::event::{Body, Event};

/// The scenario.
pub const SCENARIO: Scenario = Scenario {
    name: "ipv6",
    ipv6: true,
    run,
    expect,
};

fn run(lab: &mut Lab) -> Result<(), Error> {
    let listener = lab.listener(1, false)?;
    lab.say(
        "scenario.ipv6.family",
        &[("addr", lab.server_addr().to_string())],
    );
    super::handshake::exchange(lab, listener)
}

/// Every address an event names: syscall `local`/`remote` and `addr` argument, state-event
/// ends, packet ends.
fn addresses(events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    for e in events {
        match &e.body {
            Body::Syscall(s) => {
                out.extend(s.local.iter().chain(s.remote.iter()).cloned());
                if let Some(a) = s.args.get("addr").and_then(|v| v.as_str())
                    && !a.is_empty()
                {
                    out.push(a.to_string());
                }
            }
            Body::State(st) => out.extend(st.local.iter().chain(st.remote.iter()).cloned()),
            Body::Packet(p) => out.extend([p.src.clone(), p.dst.clone()]),
            Body::Note(_) => {}
        }
    }
    out
}

fn expect() -> Vec<Expect> {
    let mut all = vec![
        Expect::Custom {
            key: "scenario.ipv6.check.inet6",
            tier: Tier::Always,
            check: |events| {
                let domains: Vec<&str> = events
                    .iter()
                    .filter_map(Event::syscall)
                    .filter(|s| s.name == "socket")
                    .filter_map(|s| s.args.get("domain").and_then(|v| v.as_str()))
                    .collect();
                if domains == ["AF_INET6", "AF_INET6"] {
                    Ok(())
                } else {
                    Err(format!("socket domains {domains:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.ipv6.check.addresses",
            tier: Tier::Always,
            check: |events| {
                let all = addresses(events);
                let bad: Vec<&String> = all
                    .iter()
                    .filter(|a| !a.starts_with("[::1]:") && a.as_str() != "[::]:0")
                    .collect();
                if all.is_empty() {
                    Err("no addresses in the events".into())
                } else if bad.is_empty() {
                    Ok(())
                } else {
                    Err(format!("not IPv6 loopback: {bad:?}"))
                }
            },
        },
        Expect::Custom {
            key: "scenario.ipv6.check.wire",
            tier: Tier::Packets,
            check: |events| {
                // The capture keeps every ICMP packet on lo (other programs' too): look at
                // the segments of the lab's port only.
                let ends: Vec<(&str, &str)> = packets(events)
                    .filter(|p| p.proto == "TCP")
                    .map(|p| (p.src.as_str(), p.dst.as_str()))
                    .collect();
                let v6 = |a: &str| a.starts_with("[::1]:");
                if !ends.is_empty() && ends.iter().all(|(s, d)| v6(s) && v6(d)) {
                    Ok(())
                } else {
                    Err(format!("packets {ends:?}"))
                }
            },
        },
    ];
    all.extend(super::handshake::states());
    all
}
