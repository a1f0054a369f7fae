//! The classic BPF filter the kernel runs on each packet: an assembler and the program.

use std::collections::HashMap;

/// What the filter returns for a kept packet: how many bytes to keep (all: lo's MTU is 64 KiB).
pub(super) const SNAPLEN: u32 = 256 * 1024;
/// Above this many distinct ports the filter keeps every TCP and UDP packet (2 instructions
/// per port and direction, well under the kernel's 4096).
pub(super) const MAX_FILTER_PORTS: usize = 512;

// Classic BPF opcodes used here (linux/filter.h); the test interpreter matches on the same.
pub(super) const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(super) const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
pub(super) const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
pub(super) const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
pub(super) const LDX_B_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
pub(super) const LDX_IMM: u16 = (libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM) as u16;
pub(super) const RSH_K: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
pub(super) const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
pub(super) const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(super) const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
pub(super) const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// The ancillary load of `skb->pkt_type` (the `sll_pkttype` user space would see).
pub(super) const AD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;

/// Where a jump goes: the next instruction or a label further on.
#[derive(Clone, Copy)]
enum To {
    Next,
    Skip1,
    Label(&'static str),
}

/// A forward-only assembler: jumps name labels, resolved once the program is complete.
#[derive(Default)]
struct Asm {
    code: Vec<libc::sock_filter>,
    jumps: Vec<(usize, To, To)>,
    labels: HashMap<&'static str, usize>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32) {
        self.code.push(libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.jumps.push((self.code.len(), jt, jf));
        self.op(code, k);
    }

    fn label(&mut self, name: &'static str) {
        self.labels.insert(name, self.code.len());
    }

    /// `if A == k return r`.
    fn ret_if(&mut self, k: u32, r: u32) {
        self.jump(JEQ_K, k, To::Next, To::Skip1);
        self.op(RET_K, r);
    }

    fn finish(mut self) -> Vec<libc::sock_filter> {
        for &(at, jt, jf) in &self.jumps {
            let off = |to: To| -> u32 {
                match to {
                    To::Next => 0,
                    To::Skip1 => 1,
                    To::Label(l) => (self.labels[l] - at - 1) as u32,
                }
            };
            let insn = &mut self.code[at];
            if insn.code == JA {
                insn.k = off(jt);
            } else {
                // Conditional jumps reach at most 255 ahead; the layout keeps them short.
                insn.jt = u8::try_from(off(jt)).expect("short jump");
                insn.jf = u8::try_from(off(jf)).expect("short jump");
            }
        }
        self.code
    }
}

/// The classic BPF program the capture socket runs on each packet (from the IP header on):
/// keeps IPv4/IPv6 TCP and UDP with either port in `ports`, all ICMP and ICMPv6, and only
/// the incoming copy of each loopback frame. No ports (or very many) keeps all TCP and UDP.
///
/// Limits: IPv6 extension headers and non-first IPv4 fragments are dropped (no ports there).
pub fn bpf_program(ports: &[u16]) -> Vec<libc::sock_filter> {
    bpf_program_on(ports, true)
}

/// [`bpf_program`] for an interface that is `loopback` or not: any other interface shows each
/// frame once (outgoing or incoming), so both directions are kept.
pub fn bpf_program_on(ports: &[u16], loopback: bool) -> Vec<libc::sock_filter> {
    program(ports, ports.is_empty(), loopback)
}

/// [`bpf_program_on`] where no ports keeps no TCP or UDP at all (a capture whose ports are
/// learned later, [`super::PortWatch`]); very many still keeps all.
pub fn bpf_program_only(ports: &[u16], loopback: bool) -> Vec<libc::sock_filter> {
    program(ports, false, loopback)
}

fn program(ports: &[u16], any: bool, loopback: bool) -> Vec<libc::sock_filter> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let any_port = any || ports.len() > MAX_FILTER_PORTS;

    let mut a = Asm::default();
    if loopback {
        // Loopback shows each frame going out and coming in: keep the incoming copy, as libpcap.
        a.op(LD_W_ABS, AD_PKTTYPE);
        a.ret_if(u32::from(libc::PACKET_OUTGOING), 0);
    }
    a.op(LD_B_ABS, 0);
    a.op(RSH_K, 4);
    a.jump(JEQ_K, 6, To::Label("v6"), To::Next);
    a.jump(JEQ_K, 4, To::Skip1, To::Next);
    a.op(RET_K, 0);

    // IPv4: protocol at byte 9, header length in the low nibble of byte 0.
    a.op(LD_B_ABS, 9);
    a.ret_if(IPPROTO_ICMP, SNAPLEN);
    a.jump(JEQ_K, IPPROTO_TCP, To::Label("ports4"), To::Next);
    a.jump(JEQ_K, IPPROTO_UDP, To::Label("ports4"), To::Next);
    a.op(RET_K, 0);
    a.label("ports4");
    a.op(LD_H_ABS, 6);
    a.jump(JSET_K, 0x1fff, To::Next, To::Skip1); // a later fragment: no ports in it
    a.op(RET_K, 0);
    a.op(LDX_B_MSH, 0); // X = 4 * (byte 0 & 0xf)
    a.jump(JA, 0, To::Label("ports"), To::Next);

    // IPv6: next header at byte 6, fixed 40-byte header.
    a.label("v6");
    a.op(LD_B_ABS, 6);
    a.ret_if(IPPROTO_ICMPV6, SNAPLEN);
    a.jump(JEQ_K, IPPROTO_TCP, To::Label("ports6"), To::Next);
    a.jump(JEQ_K, IPPROTO_UDP, To::Label("ports6"), To::Next);
    a.op(RET_K, 0);
    a.label("ports6");
    a.op(LDX_IMM, 40);

    // X = transport header offset; TCP and UDP both start with source then destination port.
    a.label("ports");
    if any_port {
        a.op(RET_K, SNAPLEN);
    } else {
        for field in [0, 2] {
            a.op(LD_H_IND, field);
            for &p in &ports {
                a.ret_if(u32::from(p), SNAPLEN);
            }
        }
        a.op(RET_K, 0);
    }
    a.finish()
}
