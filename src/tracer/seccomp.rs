//! The seccomp filters a traced program runs under: a stop for each syscall in the list, none
//! for the rest, so its file I/O and memory calls run at full speed.
//!
//! The calls that take any descriptor (read, write, close, ...) stop only when the descriptor
//! is one the tracer covers: the filter installed before exec covers the sockets the program
//! inherits, and the tracer adds a filter for each socket the program gets later
//! ([`super::inject`]). Filters stack: a call stops when any of them says so.
//!
//! Read first: seccomp(2) (`SECCOMP_RET_TRACE`, `struct seccomp_data`, filter precedence),
//! ptrace(2) (`PTRACE_O_TRACESECCOMP`).

use libc::sock_filter;

/// `offsetof(struct seccomp_data, nr)`.
const NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const ARCH: u32 = 4;
/// `offsetof(struct seccomp_data, args)`: six u64, the low word first on x86_64.
const ARGS: u32 = 16;
/// `AUDIT_ARCH_X86_64`: the only ABI whose calls the tracer decodes.
pub const ARCH_X86_64: u32 = 0xc000_003e;

/// `BPF_LD | BPF_W | BPF_ABS`: load a word of `seccomp_data`.
const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
/// `BPF_JMP | BPF_JEQ | BPF_K`: jump if the word equals a constant.
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
/// `BPF_JMP | BPF_JGE | BPF_K`: jump if the word is at least a constant.
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
/// `BPF_JMP | BPF_JGT | BPF_K`: jump if the word is above a constant.
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
/// `BPF_RET | BPF_K`: return a constant.
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// The calls about any descriptor, and which arguments hold one: they stop only for a
/// covered descriptor. dup, dup2, dup3 and fcntl are not here: a dup of a socket makes a
/// socket the tracer must see made.
pub const GATED: &[(i64, &[u8])] = &[
    (libc::SYS_read, &[0]),
    (libc::SYS_write, &[0]),
    (libc::SYS_readv, &[0]),
    (libc::SYS_writev, &[0]),
    (libc::SYS_close, &[0]),
    (libc::SYS_sendfile, &[0, 1]),
    (libc::SYS_splice, &[0, 2]),
];

/// The calls that give a process a socket: always stopped at when a gated call is traced, so
/// the tracer can cover each new socket before the program uses it.
pub const SOURCES: &[i64] = &[
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_fcntl,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    libc::SYS_pidfd_getfd,
];

/// The arguments that hold descriptors for gated call `nr` (None: not a gated call).
pub fn gated_args(nr: u32) -> Option<&'static [u8]> {
    GATED.iter().find(|(n, _)| *n as u32 == nr).map(|(_, a)| *a)
}

/// Where a jump goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    /// The next instruction, or `n` further.
    Skip(u8),
    /// The `SECCOMP_RET_TRACE` at the end.
    Trace,
    /// The check of the descriptor arguments of argument set `k`.
    Check(usize),
}

struct Op {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn op(code: u16, k: u32) -> Op {
    Op {
        code,
        k,
        jt: To::Skip(0),
        jf: To::Skip(0),
    }
}

fn jump(code: u16, k: u32, jt: To, jf: To) -> Op {
    Op { code, k, jt, jf }
}

/// A filter for the x86_64 calls in `nrs` (a stop each) and the gated calls in `gated` (a
/// stop when a descriptor argument is in one of the inclusive `ranges`). A call of another
/// ABI (a 32-bit `int 0x80`) stops when `foreign` says so; the filter installed before exec
/// stops it, so the tracer can say it does not decode it. None when the program would need a
/// jump longer than classic BPF has (255 ahead): about 200 numbers and ranges in all.
pub fn filter(
    nrs: &[u32],
    gated: &[u32],
    ranges: &[(u32, u32)],
    foreign: bool,
) -> Option<Vec<sock_filter>> {
    let mut sets: Vec<&'static [u8]> = Vec::new();
    let mut gates = Vec::new();
    if !ranges.is_empty() {
        for &nr in gated {
            let Some(args) = gated_args(nr) else {
                continue;
            };
            let k = sets.iter().position(|s| *s == args).unwrap_or_else(|| {
                sets.push(args);
                sets.len() - 1
            });
            gates.push((nr, k));
        }
    }
    let foreign = if foreign {
        libc::SECCOMP_RET_TRACE
    } else {
        libc::SECCOMP_RET_ALLOW
    };
    let mut ops = vec![
        op(LD, ARCH),
        jump(JEQ, ARCH_X86_64, To::Skip(1), To::Skip(0)),
        op(RET, foreign),
        op(LD, NR),
    ];
    ops.extend(nrs.iter().map(|&nr| jump(JEQ, nr, To::Trace, To::Skip(0))));
    ops.extend(
        gates
            .iter()
            .map(|&(nr, k)| jump(JEQ, nr, To::Check(k), To::Skip(0))),
    );
    ops.push(op(RET, libc::SECCOMP_RET_ALLOW));
    let mut checks = Vec::new();
    for args in &sets {
        checks.push(ops.len());
        for &a in *args {
            ops.push(op(LD, ARGS + 8 * u32::from(a)));
            for &(lo, hi) in ranges {
                if lo == hi {
                    ops.push(jump(JEQ, lo, To::Trace, To::Skip(0)));
                } else {
                    // lo <= fd (else the next range), and not fd > hi.
                    ops.push(jump(JGE, lo, To::Skip(0), To::Skip(1)));
                    ops.push(jump(JGT, hi, To::Skip(0), To::Trace));
                }
            }
        }
        ops.push(op(RET, libc::SECCOMP_RET_ALLOW));
    }
    let trace = ops.len();
    ops.push(op(RET, libc::SECCOMP_RET_TRACE));
    let offset = |pc: usize, to: To| -> Option<u8> {
        let target = match to {
            To::Skip(n) => return Some(n),
            To::Trace => trace,
            To::Check(k) => checks[k],
        };
        u8::try_from(target - pc - 1).ok()
    };
    ops.iter()
        .enumerate()
        .map(|(pc, o)| {
            Some(sock_filter {
                code: o.code,
                jt: offset(pc, o.jt)?,
                jf: offset(pc, o.jf)?,
                k: o.k,
            })
        })
        .collect()
}

/// Which descriptors of one process the filters stop the gated calls for: what the filter
/// installed before exec covers, then what each filter the tracer added covers (each one runs
/// at every gated call of the process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    inherited: Vec<(u32, u32)>,
    added: Vec<Vec<(u32, u32)>>,
}

/// Up to this many filters cover single descriptors; then blocks of [`BLOCK`] numbers.
const EXACT: usize = 8;
/// Then whole blocks, up to this many filters; the last covers every descriptor.
const MOST: usize = 16;
/// The numbers one block covers.
const BLOCK: u32 = 64;

impl Cover {
    /// What the filter installed before exec covers.
    pub fn inherited(fds: &[u32]) -> Cover {
        Cover {
            inherited: runs(fds),
            added: Vec::new(),
        }
    }

    /// The filters added after exec.
    pub fn added(&self) -> usize {
        self.added.len()
    }

    /// The ranges covered.
    pub fn ranges(&self) -> impl Iterator<Item = &(u32, u32)> {
        self.inherited.iter().chain(self.added.iter().flatten())
    }

    /// Whether gated calls on `fd` stop.
    pub fn covers(&self, fd: u32) -> bool {
        self.ranges().any(|&(lo, hi)| lo <= fd && fd <= hi)
    }

    /// The ranges a new filter should cover so that `fds` stop too (empty: they already do):
    /// the descriptors themselves for the first few filters, then blocks, then everything, so
    /// that a process never runs more than `MOST` added filters.
    pub fn plan(&self, fds: &[u32]) -> Vec<(u32, u32)> {
        let new: Vec<u32> = fds.iter().copied().filter(|&f| !self.covers(f)).collect();
        if new.is_empty() {
            return Vec::new();
        }
        if self.added() + 1 >= MOST {
            return vec![(0, u32::MAX)];
        }
        if self.added() < EXACT {
            return runs(&new);
        }
        let blocks: Vec<u32> = new.iter().map(|f| f / BLOCK).collect();
        runs(&blocks)
            .into_iter()
            .map(|(lo, hi)| {
                (
                    lo * BLOCK,
                    hi.saturating_mul(BLOCK).saturating_add(BLOCK - 1),
                )
            })
            .collect()
    }

    /// Records a filter that covers `ranges`.
    pub fn add(&mut self, ranges: &[(u32, u32)]) {
        self.added.push(ranges.to_vec());
    }

    /// Keeps the first `n` added filters (a child forked before the others were added);
    /// returns what the others covered.
    pub fn truncate(&mut self, n: usize) -> Vec<Vec<(u32, u32)>> {
        self.added.split_off(n.min(self.added.len()))
    }
}

/// `fds` as sorted inclusive runs of consecutive numbers.
fn runs(fds: &[u32]) -> Vec<(u32, u32)> {
    let mut v = fds.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for f in v {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(f) => *hi = f,
            _ => out.push((f, f)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic-BPF program the way the kernel does for seccomp, on one call.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u32; 6]) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            let cond = |c: bool| if c { ins.jt } else { ins.jf };
            match ins.code {
                LD => {
                    acc = match ins.k {
                        ARCH => arch,
                        NR => nr,
                        k => args[((k - ARGS) / 8) as usize],
                    };
                    pc += 1;
                }
                JEQ => pc += 1 + usize::from(cond(acc == ins.k)),
                JGE => pc += 1 + usize::from(cond(acc >= ins.k)),
                JGT => pc += 1 + usize::from(cond(acc > ins.k)),
                RET => return ins.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const TRACE: u32 = libc::SECCOMP_RET_TRACE;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const READ: u32 = libc::SYS_read as u32;
    const SENDFILE: u32 = libc::SYS_sendfile as u32;
    const SPLICE: u32 = libc::SYS_splice as u32;

    fn call(prog: &[sock_filter], nr: u32, args: [u32; 6]) -> u32 {
        run(prog, ARCH_X86_64, nr, args)
    }

    #[test]
    fn listed_calls_stop_and_others_run() {
        let nrs = [41, 49, 50, 288, 0, 1];
        let prog = filter(&nrs, &[], &[], true).unwrap();
        for nr in nrs {
            assert_eq!(call(&prog, nr, [0; 6]), TRACE, "{nr}");
        }
        for nr in [2, 3, 9, 60, 231] {
            assert_eq!(call(&prog, nr, [0; 6]), ALLOW, "{nr}");
        }
        // i386 (`int 0x80`): always a stop, so the tracer can say it does not decode it.
        assert_eq!(run(&prog, 0x4000_0003, 5, [0; 6]), TRACE);
        let added = filter(&[], &[READ], &[(3, 3)], false).unwrap();
        assert_eq!(run(&added, 0x4000_0003, 5, [3; 6]), ALLOW);
    }

    #[test]
    fn gated_calls_stop_only_on_covered_descriptors() {
        let gated: Vec<u32> = GATED.iter().map(|(n, _)| *n as u32).collect();
        let prog = filter(&[41], &gated, &[(3, 3), (10, 20)], true).unwrap();
        assert_eq!(call(&prog, 41, [0; 6]), TRACE);
        for (fd, want) in [(0, ALLOW), (2, ALLOW), (3, TRACE), (4, ALLOW), (9, ALLOW)] {
            assert_eq!(call(&prog, READ, [fd, 0, 0, 0, 0, 0]), want, "{fd}");
        }
        for (fd, want) in [(10, TRACE), (15, TRACE), (20, TRACE), (21, ALLOW)] {
            assert_eq!(call(&prog, READ, [fd, 0, 0, 0, 0, 0]), want, "{fd}");
        }
        // sendfile(out, in), splice(in, _, out): either descriptor.
        assert_eq!(call(&prog, SENDFILE, [5, 3, 0, 0, 0, 0]), TRACE);
        assert_eq!(call(&prog, SENDFILE, [5, 6, 3, 0, 0, 0]), ALLOW);
        assert_eq!(call(&prog, SPLICE, [5, 3, 12, 0, 0, 0]), TRACE);
        assert_eq!(call(&prog, SPLICE, [5, 3, 7, 0, 0, 0]), ALLOW);
        // Nothing covered: the gated calls are not even looked at.
        let none = filter(&[41], &gated, &[], true).unwrap();
        assert_eq!(call(&none, READ, [3, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(none.len(), 7);
    }

    #[test]
    fn the_longest_list_still_reaches_the_end() {
        let nrs: Vec<u32> = (1000..1200).collect();
        let prog = filter(&nrs, &[READ], &[(3, 3)], true).unwrap();
        assert_eq!(call(&prog, 1000, [0; 6]), TRACE);
        assert_eq!(call(&prog, 1199, [0; 6]), TRACE);
        assert_eq!(call(&prog, 1200, [0; 6]), ALLOW);
        assert_eq!(call(&prog, READ, [3, 0, 0, 0, 0, 0]), TRACE);
        let too_many: Vec<u32> = (1000..1300).collect();
        assert!(filter(&too_many, &[], &[], true).is_none());
    }

    #[test]
    fn cover_goes_from_descriptors_to_blocks_to_everything() {
        let mut c = Cover::inherited(&[5, 3, 4]);
        assert_eq!(c.ranges().copied().collect::<Vec<_>>(), vec![(3, 5)]);
        assert!(c.plan(&[4]).is_empty());
        for fd in 6..6 + EXACT as u32 {
            assert_eq!(c.plan(&[fd, fd]), vec![(fd, fd)]);
            c.add(&[(fd, fd)]);
        }
        assert_eq!(c.plan(&[100, 130]), vec![(64, 191)]);
        while c.added() + 1 < MOST {
            let p = c.plan(&[1000 + c.added() as u32 * 64]);
            assert_eq!(p.len(), 1);
            c.add(&p);
        }
        assert_eq!(c.plan(&[20]), vec![(0, u32::MAX)]);
        c.add(&[(0, u32::MAX)]);
        assert!(c.covers(u32::MAX) && c.plan(&[7777]).is_empty());
        let dropped = c.truncate(EXACT);
        assert_eq!(dropped.len(), MOST - EXACT);
        assert!(c.covers(6) && !c.covers(7777));
    }
}
