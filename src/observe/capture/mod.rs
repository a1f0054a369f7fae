//! Packet capture on loopback: what crossed the wire, decoded, on the lab's clock.
//!
//! Read first: packet(7), and the kernel's Documentation/networking/filter.rst (classic BPF).
//! Needs root or CAP_NET_RAW; an unprivileged user has it inside an own user + network
//! namespace (`unshare -Urn`, then `ip link set lo up`). An AF_PACKET SOCK_DGRAM socket on
//! `lo` hands over packets from the IP header on; a BPF program in the kernel keeps only the
//! ports in play (plus ICMP) and one of the two copies loopback makes of every frame.
//! [`Capture::start_on`] listens on another interface, possibly in another network namespace
//! (the lab's hosts: a veth, where each frame is seen once, going out or coming in).
//!
//! `bpf` builds the filter, `decode` turns a packet into an event body, `clock` puts the
//! kernel's stamps on the lab's clock, `socket` holds the socket and its reader thread,
//! `ports` narrows a running capture to ports learned as it goes, `pcap` narrows a written
//! file to some ports.

mod bpf;
mod clock;
mod decode;
mod pcap;
mod ports;
mod socket;
#[cfg(test)]
mod tests;

pub use bpf::{bpf_program, bpf_program_on, bpf_program_only};
pub use decode::{SeqTracker, decode};
pub use pcap::keep_ports;
pub use ports::PortWatch;
pub use socket::{Capture, Interface};
