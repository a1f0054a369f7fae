//! Narrowing a pcap file written by the capture to the packets of some ports: `socklab run`
//! captures the ports its program names (a server's port, which other programs may talk to
//! as well), and keeps in the file only what is the program's own.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use etherparse::{SlicedPacket, TransportSlice};
use pcap_file::pcap::{PcapReader, PcapWriter};

use crate::observe::ObserveError;

/// The TCP or UDP ports of an IP packet (source, destination).
fn ports(ip_packet: &[u8]) -> Option<(u16, u16)> {
    match SlicedPacket::from_ip(ip_packet).ok()?.transport? {
        TransportSlice::Tcp(t) => Some((t.source_port(), t.destination_port())),
        TransportSlice::Udp(u) => Some((u.source_port(), u.destination_port())),
        _ => None,
    }
}

/// Rewrites the pcap file at `path` with only the packets for which `keep(src, dst)` is true
/// (ICMP and other packets without ports are dropped). Returns (kept, dropped).
pub fn keep_ports(
    path: &Path,
    keep: impl Fn(u16, u16) -> bool,
) -> Result<(usize, usize), ObserveError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ObserveError::Failed(format!("pcap {}: {what}: {e}", path.display()))
    };
    let tmp = path.with_extension("pcap.part");
    let (mut kept, mut dropped) = (0, 0);
    {
        let file = File::open(path).map_err(|e| fail("open", &e))?;
        let mut reader = PcapReader::new(BufReader::new(file)).map_err(|e| fail("read", &e))?;
        let out = File::create(&tmp).map_err(|e| fail("create", &e))?;
        let mut writer = PcapWriter::with_header(BufWriter::new(out), reader.header())
            .map_err(|e| fail("write", &e))?;
        while let Some(pkt) = reader.next_packet() {
            let pkt = pkt.map_err(|e| fail("read", &e))?;
            if ports(&pkt.data).is_some_and(|(s, d)| keep(s, d)) {
                writer.write_packet(&pkt).map_err(|e| fail("write", &e))?;
                kept += 1;
            } else {
                dropped += 1;
            }
        }
        std::io::Write::flush(&mut writer.into_writer()).map_err(|e| fail("write", &e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| fail("rename", &e))?;
    Ok((kept, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::DataLink;
    use pcap_file::pcap::{PcapHeader, PcapPacket};
    use std::time::Duration;

    fn tcp(src: u16, dst: u16) -> Vec<u8> {
        let mut buf = Vec::new();
        etherparse::PacketBuilder::ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(src, dst, 1, 100)
            .write(&mut buf, &[])
            .unwrap();
        buf
    }

    #[test]
    fn only_the_kept_ports_stay_in_the_file() {
        let path = std::env::temp_dir().join(format!("socklab-keep-{}.pcap", std::process::id()));
        {
            let header = PcapHeader {
                datalink: DataLink::RAW,
                ..PcapHeader::default()
            };
            let mut w = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
            for (s, d) in [(1000, 80), (80, 1000), (5555, 6666), (1000, 443)] {
                let data = tcp(s, d);
                let p = PcapPacket::new(Duration::ZERO, data.len() as u32, &data);
                w.write_packet(&p).unwrap();
            }
        }
        let got = keep_ports(&path, |s, d| s == 80 || d == 80).unwrap();
        assert_eq!(got, (2, 2));
        let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
        let mut left = Vec::new();
        while let Some(p) = r.next_packet() {
            left.push(ports(&p.unwrap().data).unwrap());
        }
        assert_eq!(left, [(1000, 80), (80, 1000)]);
        std::fs::remove_file(&path).unwrap();
    }
}
