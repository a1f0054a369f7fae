use super::bpf::*;
use super::decode::*;
use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, TcpOptionElement, icmpv4, icmpv6};
use proptest::prelude::*;

const HOST: u8 = libc::PACKET_HOST;
const OUT: u8 = libc::PACKET_OUTGOING;
const V4A: [u8; 4] = [127, 0, 0, 1];
const V6A: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// A classic BPF interpreter for the opcodes `bpf_program` emits, with the kernel's rule
/// that a load past the end rejects the packet.
fn run_bpf(prog: &[libc::sock_filter], pkt: &[u8], pkttype: u8) -> u32 {
    let byte = |at: u32| pkt.get(at as usize).copied().map(u32::from);
    let half = |at: u32| Some((byte(at)? << 8) | byte(at.checked_add(1)?)?);
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    for _ in 0..=prog.len() {
        let i = prog[pc];
        pc += 1;
        let loaded = match i.code {
            LD_W_ABS => {
                assert_eq!(i.k, AD_PKTTYPE, "only the pkttype word load is used");
                Some(u32::from(pkttype))
            }
            LD_H_ABS => half(i.k),
            LD_B_ABS => byte(i.k),
            LD_H_IND => half(x.wrapping_add(i.k)),
            LDX_B_MSH => match byte(i.k) {
                Some(b) => {
                    x = 4 * (b & 0xf);
                    continue;
                }
                None => None,
            },
            LDX_IMM => {
                x = i.k;
                continue;
            }
            RSH_K => Some(a >> i.k),
            JA => {
                pc += i.k as usize;
                continue;
            }
            JEQ_K | JSET_K => {
                let taken = if i.code == JEQ_K {
                    a == i.k
                } else {
                    a & i.k != 0
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
                continue;
            }
            RET_K => return i.k,
            other => panic!("opcode {other:#x} not modelled"),
        };
        match loaded {
            Some(v) => a = v,
            None => return 0,
        }
    }
    panic!("program ran past its end");
}

fn tcp4(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4A, V4A, 64)
        .tcp(sport, dport, 1000, 65495)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn tcp6(sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(V6A, V6A, 64)
        .tcp(sport, dport, 1000, 65476)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4A, V4A, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn udp6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(V6A, V6A, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn port_unreachable4() -> Vec<u8> {
    let quoted = udp4(40000, 9, b"ping");
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4A, V4A, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut v, &quoted)
        .unwrap();
    v
}

fn port_unreachable6() -> Vec<u8> {
    let quoted = udp6(40000, 9, b"ping");
    let mut v = Vec::new();
    PacketBuilder::ipv6(V6A, V6A, 64)
        .icmpv6(Icmpv6Type::DestinationUnreachable(
            icmpv6::DestUnreachableCode::Port,
        ))
        .write(&mut v, &quoted)
        .unwrap();
    v
}

/// A TCP segment from `src` port to `dst` port with the given flags and numbers.
fn seg(v6: bool, sport: u16, dport: u16, flags: &str, seq: u32, ack: u32) -> Vec<u8> {
    seg_with(v6, sport, dport, flags, seq, ack, 1000, None, &[])
}

#[allow(clippy::too_many_arguments)]
fn seg_with(
    v6: bool,
    sport: u16,
    dport: u16,
    flags: &str,
    seq: u32,
    ack: u32,
    win: u16,
    wscale: Option<u8>,
    payload: &[u8],
) -> Vec<u8> {
    let base = if v6 {
        PacketBuilder::ipv6(V6A, V6A, 64)
    } else {
        PacketBuilder::ipv4(V4A, V4A, 64)
    };
    let mut b = base.tcp(sport, dport, seq, win);
    for f in flags.split('|') {
        b = match f {
            "SYN" => b.syn(),
            "ACK" => b.ack(ack),
            "PSH" => b.psh(),
            "FIN" => b.fin(),
            "RST" => b.rst(),
            other => panic!("flag {other}"),
        };
    }
    if let Some(s) = wscale {
        b = b
            .options(&[TcpOptionElement::WindowScale(s)])
            .expect("options fit");
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

#[test]
fn filter_keeps_the_ports_in_play_either_direction() {
    let prog = bpf_program(&[5000, 6000]);
    for (pkt, keep) in [
        (tcp4(40000, 5000), true),
        (tcp4(5000, 40000), true),
        (tcp4(6000, 40000), true),
        (tcp4(40000, 5001), false),
        (tcp6(40000, 5000), true),
        (tcp6(5000, 40000), true),
        (tcp6(40000, 4999), false),
        (udp4(40000, 6000, b"x"), true),
        (udp4(40000, 7000, b"x"), false),
        (udp6(6000, 40000, b"x"), true),
        (udp6(7000, 40000, b"x"), false),
        (port_unreachable4(), true),
        (port_unreachable6(), true),
    ] {
        assert_eq!(run_bpf(&prog, &pkt, HOST) > 0, keep, "{pkt:02x?}");
    }
}

#[test]
fn filter_drops_the_outgoing_copy() {
    let prog = bpf_program(&[5000]);
    for pkt in [tcp4(1, 5000), tcp6(5000, 1), port_unreachable4()] {
        assert!(run_bpf(&prog, &pkt, HOST) >= 65536);
        assert_eq!(run_bpf(&prog, &pkt, OUT), 0);
    }
}

#[test]
fn filter_off_loopback_keeps_both_directions() {
    // A veth shows each frame once: what this side sent is only seen going out.
    let prog = bpf_program_on(&[5000], false);
    for pkt in [tcp4(1, 5000), tcp6(5000, 1)] {
        assert!(run_bpf(&prog, &pkt, HOST) >= 65536);
        assert!(run_bpf(&prog, &pkt, OUT) >= 65536);
    }
    assert_eq!(run_bpf(&prog, &tcp4(1, 2), OUT), 0);
}

#[test]
fn filter_reads_ports_after_ipv4_options() {
    // IHL 6: four bytes of NOP options push the TCP header to offset 24.
    let mut pkt = tcp4(40000, 5000);
    pkt.splice(20..20, [1u8; 4]);
    pkt[0] = 0x46;
    let total = u16::try_from(pkt.len()).unwrap().to_be_bytes();
    pkt[2..4].copy_from_slice(&total);
    assert!(run_bpf(&bpf_program(&[5000]), &pkt, HOST) > 0);
    assert_eq!(run_bpf(&bpf_program(&[9999]), &pkt, HOST), 0);
}

#[test]
fn filter_drops_later_fragments_and_short_and_foreign_packets() {
    let prog = bpf_program(&[5000]);
    let mut frag = udp4(40000, 5000, b"x");
    frag[6] = 0x00;
    frag[7] = 0x10; // fragment offset 16 * 8 bytes
    assert_eq!(run_bpf(&prog, &frag, HOST), 0);
    assert_eq!(run_bpf(&prog, &tcp4(40000, 5000)[..21], HOST), 0);
    assert_eq!(run_bpf(&prog, &[], HOST), 0);
    let mut arp_like = tcp4(40000, 5000);
    arp_like[0] = 0x00;
    assert_eq!(run_bpf(&prog, &arp_like, HOST), 0);
}

#[test]
fn filter_without_ports_or_with_many_keeps_all_tcp_and_udp() {
    let all = bpf_program(&[]);
    assert!(run_bpf(&all, &tcp4(1, 2), HOST) > 0);
    assert!(run_bpf(&all, &udp6(1, 2, b""), HOST) > 0);
    assert_eq!(run_bpf(&all, &tcp4(1, 2), OUT), 0);

    let ports: Vec<u16> = (1000..1000 + MAX_FILTER_PORTS as u16).collect();
    let prog = bpf_program(&ports);
    assert!(prog.len() <= libc::BPF_MAXINSNS as usize);
    assert!(
        run_bpf(
            &prog,
            &tcp4(40000, 1000 + MAX_FILTER_PORTS as u16 - 1),
            HOST
        ) > 0
    );
    assert_eq!(run_bpf(&prog, &tcp4(40000, 999), HOST), 0);
    let too_many: Vec<u16> = (1000..2000).collect();
    assert!(run_bpf(&bpf_program(&too_many), &tcp4(1, 2), HOST) > 0);
}

#[test]
fn decode_handshake_data_and_close_relative_to_each_isn() {
    let mut t = SeqTracker::new();
    let (c, s) = (40000, 5000);
    let mut d = |pkt: Vec<u8>| decode(&pkt, &mut t).expect("decodes");
    let syn = d(seg(false, c, s, "SYN", 1_000_000, 0));
    assert_eq!(
        (syn.proto.as_str(), syn.flags.as_deref(), syn.seq, syn.ack),
        ("TCP", Some("SYN"), Some(0), None)
    );
    assert_eq!(
        (syn.src.as_str(), syn.dst.as_str()),
        ("127.0.0.1:40000", "127.0.0.1:5000")
    );
    let synack = d(seg(false, s, c, "SYN|ACK", u32::MAX - 1, 1_000_001));
    assert_eq!(
        (synack.flags.as_deref(), synack.seq, synack.ack),
        (Some("SYN|ACK"), Some(0), Some(1))
    );
    let ack = d(seg(false, c, s, "ACK", 1_000_001, u32::MAX));
    assert_eq!((ack.seq, ack.ack), (Some(1), Some(1)));
    let data = d(seg_with(
        false,
        c,
        s,
        "PSH|ACK",
        1_000_001,
        u32::MAX,
        512,
        None,
        b"hello",
    ));
    assert_eq!(
        (data.flags.as_deref(), data.seq, data.ack, data.len),
        (Some("PSH|ACK"), Some(1), Some(1), 5)
    );
    // The server's sequence space wraps past zero: still relative.
    let reply = d(seg_with(
        false,
        s,
        c,
        "PSH|ACK",
        u32::MAX,
        1_000_006,
        512,
        None,
        b"world",
    ));
    assert_eq!((reply.seq, reply.ack, reply.len), (Some(1), Some(6), 5));
    let fin = d(seg(false, c, s, "FIN|ACK", 1_000_006, 4));
    assert_eq!(
        (fin.flags.as_deref(), fin.seq, fin.ack),
        (Some("FIN|ACK"), Some(6), Some(6))
    );
    let rst = d(seg(false, s, c, "RST|ACK", 4, 1_000_007));
    assert_eq!(
        (rst.flags.as_deref(), rst.seq, rst.ack),
        (Some("RST|ACK"), Some(6), Some(7))
    );
}

#[test]
fn decode_shows_raw_numbers_until_a_syn_and_restarts_on_a_new_syn() {
    let mut t = SeqTracker::new();
    let p = decode(&seg(false, 1, 2, "ACK", 777, 888), &mut t).unwrap();
    assert_eq!((p.seq, p.ack), (Some(777), Some(888)));
    decode(&seg(false, 1, 2, "SYN", 100, 0), &mut t).unwrap();
    decode(&seg(false, 2, 1, "SYN|ACK", 500, 101), &mut t).unwrap();
    // Same addresses, new connection: the server's old ISN no longer applies.
    decode(&seg(false, 1, 2, "SYN", 9000, 0), &mut t).unwrap();
    let p = decode(&seg(false, 1, 2, "ACK", 9001, 123), &mut t).unwrap();
    assert_eq!((p.seq, p.ack), (Some(1), Some(123)));
    // A retransmitted SYN keeps the ISN.
    let again = decode(&seg(false, 1, 2, "SYN", 9000, 0), &mut t).unwrap();
    assert_eq!(again.seq, Some(0));
}

#[test]
fn decode_scales_the_window_once_both_syns_carried_the_option() {
    let mut t = SeqTracker::new();
    let syn = seg_with(false, 1, 2, "SYN", 0, 0, 65495, Some(7), &[]);
    assert_eq!(decode(&syn, &mut t).unwrap().win, Some(65495));
    let synack = seg_with(false, 2, 1, "SYN|ACK", 0, 1, 65483, Some(7), &[]);
    assert_eq!(decode(&synack, &mut t).unwrap().win, Some(65483));
    let ack = seg_with(false, 1, 2, "ACK", 1, 1, 512, None, &[]);
    assert_eq!(decode(&ack, &mut t).unwrap().win, Some(512 << 7));
    // Only one side offered scaling: none applies.
    let mut t = SeqTracker::new();
    decode(
        &seg_with(false, 1, 2, "SYN", 0, 0, 100, Some(7), &[]),
        &mut t,
    );
    decode(
        &seg_with(false, 2, 1, "SYN|ACK", 0, 1, 100, None, &[]),
        &mut t,
    );
    let ack = seg_with(false, 1, 2, "ACK", 1, 1, 512, None, &[]);
    assert_eq!(decode(&ack, &mut t).unwrap().win, Some(512));
}

#[test]
fn decode_ipv6_udp_and_icmp() {
    let mut t = SeqTracker::new();
    let p = decode(&seg(true, 40000, 5000, "SYN", 1, 0), &mut t).unwrap();
    assert_eq!(
        (p.src.as_str(), p.dst.as_str()),
        ("[::1]:40000", "[::1]:5000")
    );
    let u = decode(&udp4(40000, 5000, b"ping"), &mut t).unwrap();
    assert_eq!(
        (u.proto.as_str(), u.flags, u.seq, u.len, u.src.as_str()),
        ("UDP", None, None, 4, "127.0.0.1:40000")
    );
    let u6 = decode(&udp6(5000, 40000, b""), &mut t).unwrap();
    assert_eq!((u6.len, u6.dst.as_str()), (0, "[::1]:40000"));
    let i = decode(&port_unreachable4(), &mut t).unwrap();
    assert_eq!(
        (i.proto.as_str(), i.flags.as_deref(), i.src.as_str(), i.len),
        ("ICMP", Some("dest-unreachable/port"), "127.0.0.1", 32)
    );
    let i6 = decode(&port_unreachable6(), &mut t).unwrap();
    assert_eq!(
        (i6.proto.as_str(), i6.flags.as_deref(), i6.dst.as_str()),
        ("ICMPv6", Some("dest-unreachable/port"), "::1")
    );
    assert_eq!(icmpv4_text(8, 0), "echo-request");
    assert_eq!(icmpv4_text(3, 99), "dest-unreachable/code-99");
    assert_eq!(icmpv6_text(200, 1), "type-200/code-1");
}

#[test]
fn decode_rejects_garbage() {
    let mut t = SeqTracker::new();
    assert_eq!(decode(&[], &mut t), None);
    assert_eq!(decode(&[0x45], &mut t), None);
    assert_eq!(decode(&[0x60; 39], &mut t), None);
    let mut frag = udp4(1, 2, b"abcdefgh");
    frag[6] = 0x20; // more fragments: no transport header to read
    assert_eq!(decode(&frag, &mut t), None);
}

fn real_packets() -> Vec<Vec<u8>> {
    vec![
        seg_with(false, 40000, 5000, "SYN", 7, 0, 65495, Some(7), &[]),
        seg_with(true, 5000, 40000, "PSH|ACK", 9, 8, 512, None, b"hello"),
        udp4(1, 2, b"datagram"),
        udp6(3, 4, b""),
        port_unreachable4(),
        port_unreachable6(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut t = SeqTracker::new();
        let _ = decode(&bytes, &mut t);
        let _ = run_bpf(&bpf_program(&[1, 2]), &bytes, HOST);
    }

    #[test]
    fn decode_survives_random_ip_like_bytes(
        version in prop_oneof![Just(0x45u8), Just(0x4fu8), Just(0x60u8)],
        proto in prop_oneof![Just(1u8), Just(6u8), Just(17u8), Just(58u8), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = vec![version];
        bytes.extend_from_slice(&rest);
        if bytes.len() > 9 { bytes[9] = proto; }
        if bytes.len() > 6 && version == 0x60 { bytes[6] = proto; }
        let mut t = SeqTracker::new();
        let _ = decode(&bytes, &mut t);
    }

    #[test]
    fn decode_survives_truncation(which in 0usize..6, cut in 0usize..120) {
        let pkt = &real_packets()[which];
        let mut t = SeqTracker::new();
        let _ = decode(&pkt[..cut.min(pkt.len())], &mut t);
    }

    #[test]
    fn decode_survives_mutated_headers(
        which in 0usize..6,
        edits in proptest::collection::vec((0usize..80, any::<u8>()), 1..6),
    ) {
        let mut pkt = real_packets()[which].clone();
        for (at, v) in edits {
            if let Some(b) = pkt.get_mut(at) { *b = v; }
        }
        let mut t = SeqTracker::new();
        // Twice through one tracker: the second pass meets its own bookkeeping.
        let _ = decode(&pkt, &mut t);
        let _ = decode(&pkt, &mut t);
    }

    #[test]
    fn filter_keeps_exactly_the_listed_ports(
        ports in proptest::collection::vec(1u16..2000, 1..40),
        sport in 1u16..2000,
        dport in 1u16..2000,
        v6 in any::<bool>(),
    ) {
        let prog = bpf_program(&ports);
        let pkt = if v6 { udp6(sport, dport, b"x") } else { tcp4(sport, dport) };
        let want = ports.contains(&sport) || ports.contains(&dport);
        prop_assert_eq!(run_bpf(&prog, &pkt, HOST) > 0, want);
        prop_assert_eq!(run_bpf(&prog, &pkt, OUT), 0);
    }
}
