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
/// `offsetof(struct seccomp_data, args[0])`, its low word (x86_64 is little-endian): a
/// descriptor.
const ARG0: u32 = 16;
/// `AUDIT_ARCH_X86_64`: the only ABI whose calls the tracer decodes.
pub const ARCH_X86_64: u32 = 0xc000_003e;

/// `BPF_LD | BPF_W | BPF_ABS`: load a word of `seccomp_data`.
const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
/// `BPF_JMP | BPF_JEQ | BPF_K`: jump if the word equals a constant.
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
/// `BPF_JMP | BPF_JGE | BPF_K`: jump if the word is at least a constant (unsigned).
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
/// `BPF_JMP | BPF_JGT | BPF_K`: jump if the word is above a constant (unsigned).
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
/// `BPF_RET | BPF_K`: return a constant.
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// How many descriptor numbers one range of [`fd_filter`] covers.
pub const FD_BLOCK: u32 = 64;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> sock_filter {
    jump(JEQ, k, jt, jf)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A filter that returns `SECCOMP_RET_TRACE` for the x86_64 calls in `nrs`, for those in
/// `by_fd` when their first argument (a descriptor) is in one of `ranges` (inclusive), and for
/// every call of another ABI (a 32-bit `int 0x80`, which the tracer reports as not decoded);
/// `SECCOMP_RET_ALLOW` for the rest. At most 254 numbers in all (a BPF jump reaches 255
/// ahead) and 127 ranges.
pub fn filter(nrs: &[u32], by_fd: &[u32], ranges: &[(u32, u32)]) -> Vec<sock_filter> {
    let (n, g, r) = (nrs.len(), by_fd.len(), ranges.len());
    assert!(
        n + g <= 254 && r <= 127,
        "a seccomp jump reaches at most 255 ahead"
    );
    let mut prog = vec![
        stmt(LD, ARCH),
        jeq(ARCH_X86_64, 1, 0),
        stmt(RET, libc::SECCOMP_RET_TRACE),
        stmt(LD, NR),
    ];
    for (i, &nr) in nrs.iter().enumerate() {
        // Past the remaining comparisons and the ALLOW, to the TRACE after it.
        prog.push(jeq(nr, (n + g - i) as u8, 0));
    }
    for (j, &nr) in by_fd.iter().enumerate() {
        // Past the remaining comparisons, the ALLOW and the TRACE, to the descriptor check.
        prog.push(jeq(nr, (g + 1 - j) as u8, 0));
    }
    prog.push(stmt(RET, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(RET, libc::SECCOMP_RET_TRACE));
    // The descriptor check: in a range, TRACE; past them all, ALLOW.
    prog.push(stmt(LD, ARG0));
    for (k, &(lo, hi)) in ranges.iter().enumerate() {
        prog.push(jump(JGE, lo, 0, 1));
        prog.push(jump(JGT, hi, 0, (2 * (r - k) - 1) as u8));
    }
    prog.push(stmt(RET, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(RET, libc::SECCOMP_RET_TRACE));
    prog
}

/// The filter added to a running program once a socket has a descriptor in `block` (of
/// [`FD_BLOCK`] numbers): the calls in `by_fd` on those descriptors stop too.
pub fn fd_filter(by_fd: &[u32], block: u32) -> Vec<sock_filter> {
    let lo = block * FD_BLOCK;
    filter(&[], by_fd, &[(lo, lo + FD_BLOCK - 1)])
}

/// `struct sock_fprog` for `prog` placed at `at` in another process, then the program: the
/// bytes to write there.
pub fn fprog_bytes(prog: &[sock_filter], at: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + 8 * prog.len());
    b.extend_from_slice(&(prog.len() as u16).to_ne_bytes());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&(at + 16).to_ne_bytes());
    for ins in prog {
        b.extend_from_slice(&ins.code.to_ne_bytes());
        b.push(ins.jt);
        b.push(ins.jf);
        b.extend_from_slice(&ins.k.to_ne_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic-BPF program the way the kernel does for seccomp, on one call.
    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        run_fd(prog, arch, nr, 0)
    }

    /// [`run`] with a first argument.
    fn run_fd(prog: &[sock_filter], arch: u32, nr: u32, fd: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            let to = |yes: bool| 1 + usize::from(if yes { ins.jt } else { ins.jf });
            match ins.code {
                LD => {
                    acc = match ins.k {
                        ARCH => arch,
                        NR => nr,
                        ARG0 => fd,
                        k => panic!("unexpected load {k}"),
                    };
                    pc += 1;
                }
                JEQ => pc += to(acc == ins.k),
                JGE => pc += to(acc >= ins.k),
                JGT => pc += to(acc > ins.k),
                RET => return ins.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn descriptor_calls_stop_only_in_their_ranges() {
        let (read, write, socket) = (0, 1, 41);
        let prog = filter(&[socket], &[read, write], &[(0, 0), (64, 127)]);
        for (nr, fd, stops) in [
            (read, 0, true),
            (read, 1, false),
            (write, 63, false),
            (write, 64, true),
            (read, 127, true),
            (read, 128, false),
            (read, u32::MAX, false),
            (socket, 1000, true),
            (2, 64, false),
        ] {
            let want = if stops {
                libc::SECCOMP_RET_TRACE
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            assert_eq!(run_fd(&prog, ARCH_X86_64, nr, fd), want, "{nr} on {fd}");
        }
        let block = fd_filter(&[read], 2);
        assert_eq!(
            run_fd(&block, ARCH_X86_64, read, 130),
            libc::SECCOMP_RET_TRACE
        );
        assert_eq!(
            run_fd(&block, ARCH_X86_64, read, 127),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run_fd(&block, ARCH_X86_64, write, 130),
            libc::SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn listed_calls_stop_and_others_run() {
        let nrs = [41, 49, 50, 288, 0, 1];
        let prog = filter(&nrs, &[], &[]);
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
        let prog = filter(&nrs, &[], &[]);
        assert_eq!(run(&prog, ARCH_X86_64, 0), libc::SECCOMP_RET_TRACE);
        assert_eq!(run(&prog, ARCH_X86_64, 253), libc::SECCOMP_RET_TRACE);
        assert_eq!(run(&prog, ARCH_X86_64, 254), libc::SECCOMP_RET_ALLOW);
    }
}
