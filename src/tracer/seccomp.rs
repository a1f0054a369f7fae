//! The seccomp filter a traced program runs under: a stop for each syscall in the list, none
//! for the rest, so its file I/O and memory calls run at full speed.
//!
//! Read first: seccomp(2) (`SECCOMP_RET_TRACE`, `struct seccomp_data`), ptrace(2)
//! (`PTRACE_O_TRACESECCOMP`).

use libc::sock_filter;

/// `offsetof(struct seccomp_data, nr)`.
const NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const ARCH: u32 = 4;
/// `AUDIT_ARCH_X86_64`: the only ABI whose calls the tracer decodes.
pub const ARCH_X86_64: u32 = 0xc000_003e;

/// `BPF_LD | BPF_W | BPF_ABS`: load a word of `seccomp_data`.
const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
/// `BPF_JMP | BPF_JEQ | BPF_K`: jump if the word equals a constant.
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
/// `BPF_RET | BPF_K`: return a constant.
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: JEQ,
        jt,
        jf,
        k,
    }
}

/// A filter that returns `SECCOMP_RET_TRACE` for the x86_64 calls in `nrs` and for every call
/// of another ABI (a 32-bit `int 0x80`, which the tracer reports as not decoded), and
/// `SECCOMP_RET_ALLOW` for the rest. At most 254 numbers (a BPF jump reaches 255 ahead).
pub fn filter(nrs: &[u32]) -> Vec<sock_filter> {
    assert!(nrs.len() <= 254, "a seccomp jump reaches at most 255 ahead");
    let n = nrs.len();
    let mut prog = vec![
        stmt(LD, ARCH),
        jeq(ARCH_X86_64, 1, 0),
        stmt(RET, libc::SECCOMP_RET_TRACE),
        stmt(LD, NR),
    ];
    for (i, &nr) in nrs.iter().enumerate() {
        // Past the remaining comparisons and the ALLOW, to the TRACE at the end.
        prog.push(jeq(nr, (n - i) as u8, 0));
    }
    prog.push(stmt(RET, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(RET, libc::SECCOMP_RET_TRACE));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic-BPF program the way the kernel does for seccomp, on one call.
    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            match ins.code {
                LD => {
                    acc = if ins.k == ARCH { arch } else { nr };
                    pc += 1;
                }
                JEQ => {
                    let skip = if acc == ins.k { ins.jt } else { ins.jf };
                    pc += 1 + usize::from(skip);
                }
                RET => return ins.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn listed_calls_stop_and_others_run() {
        let nrs = [41, 49, 50, 288, 0, 1];
        let prog = filter(&nrs);
        for nr in nrs {
            assert_eq!(run(&prog, ARCH_X86_64, nr), libc::SECCOMP_RET_TRACE, "{nr}");
        }
        for nr in [2, 3, 9, 60, 231] {
            assert_eq!(run(&prog, ARCH_X86_64, nr), libc::SECCOMP_RET_ALLOW, "{nr}");
        }
        // i386 (`int 0x80`): always a stop, so the tracer can say it does not decode it.
        assert_eq!(run(&prog, 0x4000_0003, 5), libc::SECCOMP_RET_TRACE);
    }

    #[test]
    fn the_longest_list_still_reaches_the_end() {
        let nrs: Vec<u32> = (0..254).collect();
        let prog = filter(&nrs);
        assert_eq!(run(&prog, ARCH_X86_64, 0), libc::SECCOMP_RET_TRACE);
        assert_eq!(run(&prog, ARCH_X86_64, 253), libc::SECCOMP_RET_TRACE);
        assert_eq!(run(&prog, ARCH_X86_64, 254), libc::SECCOMP_RET_ALLOW);
    }
}
