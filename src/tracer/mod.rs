//! The tracer behind `socklab run -- PROGRAM`: any program's socket calls, from outside.
//!
//! Read first: ptrace(2) (`PTRACE_O_TRACESECCOMP`, `PTRACE_GET_SYSCALL_INFO`, the stops),
//! seccomp(2) (`SECCOMP_RET_TRACE`), pidfd_getfd(2).
//!
//! The program is started as a child that stops itself, is seized (`PTRACE_SEIZE`, so a
//! stop signal stops it as it would untraced, `PTRACE_LISTEN`) and installs a seccomp filter
//! ([`seccomp::filter`]) before it execs, so it stops only at the calls the lab wants: at the
//! seccomp stop the tracer reads the call and its arguments, asks for the exit stop
//! (`PTRACE_SYSCALL`), and there reads the result. Every other call runs at full speed.
//! Reads, writes and closes ([`seccomp::GATED`]) stop only on descriptors the filters cover:
//! at each call that gives the program a socket, the tracer makes it add a filter that covers
//! that descriptor ([`inject`]), so a file's I/O makes no stop.
//! A timed wait a signal interrupted without a handler (ERESTART_RESTARTBLOCK) goes on in
//! restart_syscall, reported as the call it resumes ([`Call::resumes`]).
//! Children, threads and execs are followed (`PTRACE_O_TRACEFORK`, `..CLONE`, `..VFORK`,
//! `..EXEC`), and `PTRACE_O_EXITKILL` ends them all if the lab itself dies.

pub mod args;
pub mod decode;
pub mod fds;
pub mod inject;
mod live;
pub mod seccomp;
pub mod session;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace::{self, Event as PtraceEvent, Options};
use nix::sys::signal::{self, Signal};
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::error::Error;
use crate::event::record;
use crate::sys::ffi::{self, SyscallStop, TcpInfoRaw};

/// How long the program may take to end after Ctrl-C before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// One finished system call of a traced program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The process (thread group) that made it.
    pub pid: i32,
    /// The thread that made it.
    pub tid: i32,
    /// The x86_64 syscall number.
    pub nr: u64,
    /// The six argument registers at entry.
    pub args: [u64; 6],
    /// The return value (-1 on failure, as the C library returns it).
    pub ret: i64,
    /// The errno on failure.
    pub errno: Option<Errno>,
    /// A signal came while the call was blocked: the kernel's code, as strace names it
    /// (`ERESTARTSYS`). `errno` is EINTR, which the program sees unless the call is restarted
    /// (a handler with SA_RESTART, or a stop signal), when it is made again and seen again.
    pub restart: Option<&'static str>,
    /// For `restart_syscall` (the kernel going on with a timed wait a signal interrupted
    /// when no handler ran): the number of the call it goes on with, whose registers `args`
    /// then are, so it decodes as that call (poll's ready descriptors). None for every other
    /// call, and for a restart whose interrupted call was not seen (attached mid-call).
    pub resumes: Option<u64>,
    /// CLOCK_MONOTONIC nanoseconds at the seccomp stop (entry) and at the exit stop.
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It called exit with this code.
    Code(i32),
    /// A signal killed it.
    Signal(Signal),
}

impl Exit {
    /// The exit code a shell would give: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s as i32,
        }
    }
}

/// What the tracer saw, in the order it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A call in the filter's list finished.
    Call(Call),
    /// A process or thread started (fork, vfork or clone).
    Spawned {
        /// The process that made it.
        parent_pid: i32,
        /// The new task's thread id.
        tid: i32,
        /// Its process: the parent's for a thread, else its own tid.
        pid: i32,
    },
    /// A process replaced its program (execve).
    Exec {
        /// The process.
        pid: i32,
        /// What `/proc/PID/exe` names now.
        exe: PathBuf,
    },
    /// A call of another ABI (`int 0x80`, i386): seen, not decoded.
    Foreign {
        /// The process.
        pid: i32,
        /// The thread.
        tid: i32,
        /// Its `AUDIT_ARCH_*` value.
        arch: u32,
        /// Its number in that ABI.
        nr: u64,
    },
    /// A listed call is about to be made (its entry stop): the thread waits until the
    /// callback returns (step mode pauses here). Its arguments as passed; nothing is known of
    /// its result.
    Entering {
        /// The process.
        pid: i32,
        /// The thread.
        tid: i32,
        /// The x86_64 syscall number.
        nr: u64,
        /// The six argument registers.
        args: [u64; 6],
    },
    /// Attached (`--pid`): every thread of the process has stopped once under the tracer,
    /// and each of its calls from now on is seen.
    Attached {
        /// The process.
        pid: i32,
        /// Its threads traced.
        threads: usize,
    },
    /// A thread or process ended.
    Exited {
        /// The process.
        pid: i32,
        /// The thread (equal to `pid` for the process's main thread).
        tid: i32,
        /// How it ended.
        how: Exit,
    },
}

/// A tracee stopped at the exit of a call: what the observer may ask it while it waits.
pub struct Stopped<'a> {
    pid: Pid,
    pidfd: Option<&'a OwnedFd>,
    /// At an entry stop: follow the call to its exit stop (the default).
    follow: std::cell::Cell<bool>,
    /// At an exit stop: what the call was to overwrite, read at its entry
    /// ([`args::overwritten`]). None at other stops, where memory is as the call finds it.
    entry: Option<&'a [(u64, Vec<u8>)]>,
}

impl<'a> Stopped<'a> {
    fn at(pid: Pid, pidfd: Option<&'a OwnedFd>) -> Stopped<'a> {
        Stopped {
            pid,
            pidfd,
            follow: std::cell::Cell::new(true),
            entry: None,
        }
    }

    /// At [`Seen::Entering`]: the call is of no interest (a read of a file), so the task
    /// runs on without an exit stop and no [`Seen::Call`] reports it.
    pub fn skip_exit(&self) {
        self.follow.set(false);
    }
}

impl Stopped<'_> {
    /// TCP_INFO of the tracee's descriptor `fd`, through a duplicate that is closed before
    /// this returns (`pidfd_getfd`, `getsockopt`, `close`): a duplicate kept open would keep the
    /// socket alive after the program's own close, and no FIN would go out.
    pub fn tcp_info(&self, fd: RawFd) -> Option<TcpInfoRaw> {
        let dup = ffi::pidfd_getfd(self.pidfd?.as_fd(), fd).ok()?;
        ffi::tcp_info(std::os::fd::AsRawFd::as_raw_fd(&dup)).ok()
    }

    /// A duplicate of the tracee's descriptor `fd` (`pidfd_getfd`), to look at its socket:
    /// drop it within the stop, for the reason [`Stopped::tcp_info`] gives.
    pub fn socket(&self, fd: RawFd) -> Option<OwnedFd> {
        ffi::pidfd_getfd(self.pidfd?.as_fd(), fd).ok()
    }

    /// Up to `len` bytes of the tracee's memory at `addr` (`process_vm_readv`).
    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let remote = [RemoteIoVec {
            base: addr as usize,
            len,
        }];
        let n =
            process_vm_readv(self.pid, &mut [std::io::IoSliceMut::new(&mut buf)], &remote).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

impl args::Memory for Stopped<'_> {
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        Stopped::read(self, addr, len)
    }

    fn cmdline(&self) -> Option<Vec<u8>> {
        std::fs::read(format!("/proc/{}/cmdline", self.pid)).ok()
    }

    fn at_entry(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let Some(saved) = self.entry else {
            return Stopped::read(self, addr, len);
        };
        // Only what was saved: the memory now holds what the kernel wrote.
        saved.iter().find_map(|(at, b)| {
            let off = usize::try_from(addr.checked_sub(*at)?).ok()?;
            b.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
        })
    }
}

/// A call between its seccomp stop and its exit stop.
#[derive(Debug, Clone)]
struct Pending {
    nr: u64,
    args: [u64; 6],
    start_ns: u64,
    /// Asked for by the caller (else stopped at only to cover the sockets it makes).
    report: bool,
    /// What the call will overwrite, as it was at entry ([`args::overwritten`]).
    saved: Vec<(u64, Vec<u8>)>,
    /// For restart_syscall: the call it goes on with ([`Call::resumes`]).
    resumes: Option<u64>,
}

/// The last call of a thread that ended with ERESTART_RESTARTBLOCK: unless a handler runs,
/// the thread goes on with it in restart_syscall.
#[derive(Debug)]
enum Interrupted {
    /// A reported call, as it was made (its number, not restart_syscall's).
    Call(Pending),
    /// One not reported (attached, where every call stops): so is its restart.
    Unreported,
}

/// `__NR_restart_syscall`.
const RESTART_SYSCALL: u64 = libc::SYS_restart_syscall as u64;

/// `-ERESTART_RESTARTBLOCK` (include/linux/errno.h): a timed wait interrupted by a signal.
const RESTARTBLOCK: i64 = -516;

/// One traced thread.
#[derive(Debug, Default)]
struct Task {
    pid: i32,
    pending: Option<Pending>,
    /// Its last call ended with ERESTART_RESTARTBLOCK.
    interrupted: Option<Interrupted>,
    /// Seized by `--pid`, its first stop not yet seen.
    seized: bool,
}

impl Task {
    /// At the entry of call `nr` made with registers `args`: for restart_syscall, the call it
    /// goes on with. Any call forgets the interrupted one: a handler ran (EINTR), or this is
    /// its restart. A thread's registers are still the interrupted call's at its restart
    /// (the kernel changes only rax and rip), so a reported call whose registers differ was
    /// left for a handler, and this restart goes on with a call not seen.
    fn resumed(&mut self, nr: u64, args: &[u64; 6]) -> Option<Interrupted> {
        let i = self.interrupted.take()?;
        match i {
            _ if nr != RESTART_SYSCALL => None,
            Interrupted::Call(p) if p.args != *args => None,
            i => Some(i),
        }
    }
}

/// The traced program and everything it started.
struct Tracees {
    main: Pid,
    /// The launched process has exec'd the program: before that, its calls are the lab's own
    /// (a failed exec's report through the pipe), not reported.
    execed: bool,
    tasks: HashMap<i32, Task>,
    pidfds: HashMap<i32, OwnedFd>,
    /// Attached to a running process (`--pid`): no seccomp filter, so every call stops and
    /// this says which to report; on the way out the tasks are detached, not killed.
    attached: Option<HashSet<u64>>,
    /// Seized tasks whose first stop has not come yet ([`Seen::Attached`] at none).
    unsettled: usize,
    /// Launched: the calls to report (the filter also stops at [`seccomp::SOURCES`]).
    reported: HashSet<u64>,
    /// The gated calls asked for ([`seccomp::GATED`]): they stop only on covered descriptors.
    gated: Vec<u32>,
    /// What each process's filters cover, by process id.
    covers: HashMap<i32, seccomp::Cover>,
    /// Filters a process still lacks (forked while its parent got one): added at its next
    /// exit stop.
    owed: HashMap<i32, Vec<Vec<(u32, u32)>>>,
    /// Processes no filter is added to any more (one of their own, or a failed injection).
    unfiltered: HashSet<i32>,
    /// `Seccomp_filters` of a launched process before any is added (None: not shown).
    base_filters: Option<usize>,
    /// Statuses an injection waited for that were not its own, handled next.
    deferred: VecDeque<WaitStatus>,
}

impl Tracees {
    /// Detaches every task (`PTRACE_INTERRUPT`, then `PTRACE_DETACH` at its stop), leaving
    /// the program running as it was; gives up on a task that does not stop within 2 s.
    fn detach_all(&mut self) {
        for &tid in self.tasks.keys() {
            let _ = ptrace::interrupt(Pid::from_raw(tid));
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !self.tasks.is_empty() && Instant::now() < deadline {
            let flags = WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD | WaitPidFlag::WNOHANG;
            match waitpid(None, Some(flags)) {
                Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(2)),
                Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                    self.tasks.remove(&pid.as_raw());
                }
                Ok(WaitStatus::Stopped(pid, sig)) => {
                    // A signal on its way in: deliver it as the task goes.
                    let _ = ptrace::detach(pid, sig);
                    self.tasks.remove(&pid.as_raw());
                }
                Ok(s) => {
                    if let Some(pid) = s.pid() {
                        let _ = ptrace::detach(pid, None);
                        self.tasks.remove(&pid.as_raw());
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        self.tasks.clear();
        self.pidfds.clear();
    }

    /// Kills every task still traced and reaps them: nothing of the program outlives the lab.
    fn kill_all(&mut self) {
        for &tid in self.tasks.keys() {
            let _ = signal::kill(Pid::from_raw(tid), Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.tasks.is_empty() && Instant::now() < deadline {
            match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD)) {
                Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                    self.tasks.remove(&pid.as_raw());
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        self.tasks.clear();
        self.pidfds.clear();
    }
}

impl Drop for Tracees {
    fn drop(&mut self) {
        if self.tasks.is_empty() {
        } else if self.attached.is_some() {
            self.detach_all();
        } else {
            self.kill_all();
        }
    }
}

/// Where `program` is, as a shell would find it: a path with a slash as given, else the first
/// executable file of that name in `PATH`.
pub fn find_program(program: &OsStr) -> Result<PathBuf, Error> {
    let not_found = || {
        Error::NotFound(format!(
            "{}: command not found",
            Path::new(program).display()
        ))
    };
    if program.is_empty() {
        return Err(not_found());
    }
    if program.as_bytes().contains(&b'/') {
        let p = PathBuf::from(program);
        return if p.exists() { Ok(p) } else { Err(not_found()) };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(not_found)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `argv` under the tracer, stopping at the syscalls numbered `nrs`, and hands each
/// thing seen to `seen` (a finished call with its tracee still stopped, so the observer can
/// probe its socket). The calls of [`seccomp::GATED`] stop only on sockets' descriptors: those
/// the program inherits, and each one a call gives it (socket, accept, socketpair, a dup of a
/// socket, SCM_RIGHTS), which the tracer finds at that call's exit. Returns how the launched
/// process ended once every process it started has ended too.
///
/// Ctrl-C (SIGINT or SIGTERM to the lab) sends SIGINT to the launched process, and SIGKILL to
/// all that is left after [`STOP_GRACE`] or at a second Ctrl-C.
pub fn run(
    argv: &[OsString],
    nrs: &[u32],
    mut seen: impl FnMut(&Stopped<'_>, Seen),
) -> Result<Exit, Error> {
    let program = argv.first().ok_or_else(|| {
        Error::Usage("run: which program? (socklab run -- PROGRAM ARGS...)".into())
    })?;
    let path = find_program(program)?;
    let cstr = |s: &OsStr| {
        CString::new(s.as_bytes())
            .map_err(|_| Error::Usage(format!("run: {s:?} contains a NUL byte")))
    };
    let c_path = cstr(path.as_os_str())?;
    let c_argv = argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let gated: Vec<u32> = nrs
        .iter()
        .copied()
        .filter(|&n| seccomp::gated_args(n).is_some())
        .collect();
    let mut always: Vec<u32> = nrs.iter().copied().filter(|n| !gated.contains(n)).collect();
    if !gated.is_empty() {
        for &n in seccomp::SOURCES {
            if !always.contains(&(n as u32)) {
                always.push(n as u32);
            }
        }
    }
    // The sockets the child keeps across exec are covered from the start.
    let cover = seccomp::Cover::inherited(&inject::inherited_sockets());
    let ranges: Vec<(u32, u32)> = cover.ranges().copied().collect();
    let filter = seccomp::filter(&always, &gated, &ranges, true)
        .or_else(|| seccomp::filter(&always, &gated, &[(0, u32::MAX)], true))
        .ok_or_else(|| Error::Other("run: too many calls for one seccomp filter".into()))?;

    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let (child, errpipe) = ffi::spawn_traced(&c_path, &c_argv, &filter)
        .map_err(|e| Error::sys("fork", path.display(), e))?;
    let mut t = Tracees {
        main: child,
        execed: false,
        tasks: HashMap::from([(
            child.as_raw(),
            Task {
                pid: child.as_raw(),
                ..Task::default()
            },
        )]),
        pidfds: HashMap::new(),
        attached: None,
        unsettled: 0,
        reported: nrs.iter().map(|&n| u64::from(n)).collect(),
        gated,
        covers: HashMap::from([(child.as_raw(), cover)]),
        owed: HashMap::new(),
        unfiltered: HashSet::new(),
        base_filters: inject::filter_count(std::process::id() as i32).map(|n| n + 1),
        deferred: VecDeque::new(),
    };

    // The child's own SIGSTOP, before its filter and exec: seized there (PTRACE_SEIZE, so
    // that a job-control stop of the program holds, PTRACE_LISTEN), then woken.
    match waitpid(child, Some(WaitPidFlag::WUNTRACED)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        other => {
            return Err(Error::Other(format!(
                "run: {} did not stop for the tracer ({other:?})",
                path.display()
            )));
        }
    }
    let opts = Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_EXITKILL;
    ptrace::seize(child, opts).map_err(|e| Error::sys("ptrace", "PTRACE_SEIZE", e))?;
    signal::kill(child, Signal::SIGCONT).map_err(|e| Error::sys("kill", "SIGCONT", e))?;
    // Not waiting on the pipe here: the child may stop at a call in the filter before its
    // exec, and only the loop resumes it.
    let main_exit = trace_loop(&mut t, &mut seen)?;
    if !t.execed {
        // The launched child ended before its exec: the pipe says why.
        t.kill_all();
        let errno = exec_error(&errpipe).unwrap_or(Errno::ENOEXEC);
        return Err(match errno {
            Errno::ENOENT => Error::NotFound(format!("{}: command not found", path.display())),
            Errno::EACCES | Errno::ENOEXEC => Error::NotRunnable(format!(
                "{}: cannot run it: {}",
                path.display(),
                errno.desc()
            )),
            e => Error::sys("execve", path.display(), e),
        });
    }
    // Nothing left to trace; a stray task would be killed by the guard.
    drop(t);
    Ok(main_exit.unwrap_or(Exit::Signal(Signal::SIGKILL)))
}

/// Attaches to the running process `pid` and every one of its threads (`PTRACE_SEIZE`, no
/// seccomp filter: every call stops, and those numbered `nrs` are reported), follows what it
/// starts, and hands each thing seen to `seen` until it ends, or until Ctrl-C, which detaches
/// and leaves it running. Returns how it ended (None when detached).
pub fn attach(
    pid: i32,
    nrs: &[u32],
    mut seen: impl FnMut(&Stopped<'_>, Seen),
) -> Result<Option<Exit>, Error> {
    if pid <= 0 {
        return Err(Error::Usage(format!("run --pid {pid}: not a process id")));
    }
    let tids: Vec<i32> = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => {
            return Err(Error::Other(format!(
                "run --pid {pid}: no such process (it may have ended)"
            )));
        }
    };
    if tgid(pid) != Some(pid) {
        return Err(Error::Other(format!(
            "run --pid {pid}: {pid} is a thread, not a process; give its process id (Tgid in /proc/{pid}/status)"
        )));
    }
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let mut t = Tracees {
        main: Pid::from_raw(pid),
        execed: true,
        tasks: HashMap::new(),
        pidfds: HashMap::new(),
        attached: Some(nrs.iter().map(|&n| u64::from(n)).collect()),
        unsettled: 0,
        reported: HashSet::new(),
        gated: Vec::new(),
        covers: HashMap::new(),
        owed: HashMap::new(),
        unfiltered: HashSet::new(),
        base_filters: None,
        deferred: VecDeque::new(),
    };
    let opts = Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC;
    for tid in tids {
        match ptrace::seize(Pid::from_raw(tid), opts) {
            Ok(()) => {
                t.tasks.insert(
                    tid,
                    Task {
                        pid,
                        seized: true,
                        ..Task::default()
                    },
                );
                t.unsettled += 1;
                let _ = ptrace::interrupt(Pid::from_raw(tid));
            }
            // A thread that ended meanwhile.
            Err(Errno::ESRCH) if tid != pid => {}
            Err(Errno::ESRCH) => {
                return Err(Error::Other(format!(
                    "run --pid {pid}: no such process (it may have ended)"
                )));
            }
            Err(Errno::EPERM) => return Err(Error::Other(not_permitted(pid))),
            Err(e) => return Err(Error::sys("ptrace", format!("PTRACE_SEIZE {tid}"), e)),
        }
    }
    let exit = trace_loop(&mut t, &mut seen)?;
    drop(t);
    Ok(exit)
}

/// Why the kernel refused PTRACE_SEIZE, in words: another tracer, another user, or Yama.
fn not_permitted(pid: i32) -> String {
    let traced_by = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .map(|v| v.trim().to_string())
        })
        .filter(|v| v != "0");
    if let Some(tracer) = traced_by {
        return format!(
            "run --pid {pid}: EPERM: process {tracer} already traces it (a debugger or strace); \
             a process has one tracer at a time"
        );
    }
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let why = match scope.as_str() {
        "1" => {
            "Yama's ptrace_scope is 1: an ordinary user may trace only its own descendants \
                (start the program with `socklab run -- PROGRAM` instead, or run as root)"
        }
        "2" => "Yama's ptrace_scope is 2: only a process with CAP_SYS_PTRACE may attach (root)",
        "3" => "Yama's ptrace_scope is 3: no process may attach, not even root (until reboot)",
        _ => "it belongs to another user, or runs with other privileges (setuid); run as root",
    };
    format!("run --pid {pid}: not permitted to trace it (EPERM): {why}")
}

/// Waits for and handles every stop until no task is left; returns how the launched process
/// ended, when that was seen.
fn trace_loop(
    t: &mut Tracees,
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) -> Result<Option<Exit>, Error> {
    let mut main_exit = None;
    let mut stopping: Option<Instant> = None;
    while !t.tasks.is_empty() {
        if ffi::interrupted() && t.attached.is_some() {
            // Ctrl-C leaves an attached program running, as it was.
            t.detach_all();
            break;
        }
        if ffi::interrupted() && stopping.is_none() {
            let _ = signal::kill(t.main, Signal::SIGINT);
            stopping = Some(Instant::now());
        }
        if let Some(status) = t.deferred.pop_front() {
            if let Some(exit) = step(t, status, seen) {
                main_exit = Some(exit);
            }
            continue;
        }
        let flags = if stopping.is_some() {
            WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD | WaitPidFlag::WNOHANG
        } else {
            WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD
        };
        let status = match waitpid(None, Some(flags)) {
            Ok(WaitStatus::StillAlive) => {
                if stopping.is_some_and(|s| s.elapsed() > STOP_GRACE) {
                    t.kill_all();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Ok(s) => s,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break,
            Err(e) => return Err(Error::sys("waitpid", "the traced program", e)),
        };
        if let Some(exit) = step(t, status, seen) {
            main_exit = Some(exit);
        }
    }
    Ok(main_exit)
}

/// The errno the child wrote before it ended (4 bytes), if it did.
fn exec_error(pipe: &OwnedFd) -> Option<Errno> {
    let mut buf = [0u8; 4];
    match nix::unistd::read(pipe, &mut buf) {
        Ok(4) => Some(Errno::from_raw(i32::from_ne_bytes(buf))),
        Ok(_) | Err(_) => None,
    }
}

/// Handles one wait status; returns the launched process's exit when this was it.
fn step(
    t: &mut Tracees,
    status: WaitStatus,
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) -> Option<Exit> {
    match status {
        WaitStatus::PtraceEvent(pid, sig, ev) => {
            event_stop(t, pid, sig, ev, seen);
            None
        }
        WaitStatus::PtraceSyscall(pid) if t.attached.is_some() => {
            attached_syscall_stop(t, pid, seen);
            let _ = ptrace::syscall(pid, None);
            None
        }
        WaitStatus::PtraceSyscall(pid) => {
            if let Some(sig) = exit_stop(t, pid, seen) {
                let _ = ptrace::cont(pid, sig);
            }
            None
        }
        WaitStatus::Stopped(pid, sig) => {
            signal_stop(t, pid, sig);
            None
        }
        WaitStatus::Exited(pid, code) => ended(t, pid, Exit::Code(code), seen),
        WaitStatus::Signaled(pid, sig, _) => ended(t, pid, Exit::Signal(sig), seen),
        WaitStatus::Continued(_) | WaitStatus::StillAlive => None,
    }
}

fn event_stop(
    t: &mut Tracees,
    pid: Pid,
    sig: Signal,
    ev: i32,
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) {
    let tid = pid.as_raw();
    if ev == libc::PTRACE_EVENT_STOP {
        // The stop asked for with PTRACE_INTERRUPT, a new task's first stop, a group stop, or
        // the end of one (SIGCONT).
        if !t.tasks.contains_key(&tid) {
            new_task(t, tid);
        }
        settled(t, tid, seen);
        if is_stop_signal(sig) {
            // A group stop (SIGSTOP, Ctrl-Z): the task stays stopped, still traced, until
            // SIGCONT, which the tracer sees as another PTRACE_EVENT_STOP.
            if ffi::ptrace_listen(pid).is_ok() {
                return;
            }
        }
        resume(t, pid, None);
        return;
    }
    let proc_pid = t.tasks.get(&tid).map_or(tid, |k| k.pid);
    if ev == PtraceEvent::PTRACE_EVENT_SECCOMP as i32 {
        if !t.execed {
            // The lab's own child, between its filter and its exec.
            let _ = ptrace::cont(pid, None);
            return;
        }
        match ffi::syscall_stop(pid) {
            Ok(SyscallStop::Entry { arch, nr, args }) if arch == seccomp::ARCH_X86_64 => {
                let report = t.reported.contains(&nr);
                // A call of no interest (a read of a file) goes on without an exit stop;
                // one stopped at only for the sockets it makes (dup) is followed unreported.
                let Some(p) = start(t, pid, nr, args, report, seen) else {
                    let _ = ptrace::cont(pid, None);
                    return;
                };
                if let Some(task) = t.tasks.get_mut(&tid) {
                    task.pending = Some(p);
                }
                // On to the exit stop of this call.
                let _ = ptrace::syscall(pid, None);
                return;
            }
            Ok(SyscallStop::Entry { arch, nr, .. }) => foreign(t, pid, arch, nr, seen),
            Ok(SyscallStop::Exit { .. } | SyscallStop::Other) | Err(_) => {}
        }
    } else if [
        PtraceEvent::PTRACE_EVENT_FORK,
        PtraceEvent::PTRACE_EVENT_VFORK,
        PtraceEvent::PTRACE_EVENT_CLONE,
    ]
    .iter()
    .any(|e| *e as i32 == ev)
    {
        if let Ok(new) = ptrace::getevent(pid) {
            let new = new as i32;
            let new_pid = tgid(new).unwrap_or(new);
            // Seized, a new task's first stop is an event stop (no SIGSTOP), which may come
            // first.
            t.tasks.entry(new).or_default().pid = new_pid;
            if new_pid != proc_pid {
                inherit_cover(t, proc_pid, new_pid);
            }
            let stopped = Stopped::at(pid, None);
            seen(
                &stopped,
                Seen::Spawned {
                    parent_pid: proc_pid,
                    tid: new,
                    pid: new_pid,
                },
            );
        }
    } else if ev == PtraceEvent::PTRACE_EVENT_EXEC as i32 {
        // A thread other than the leader that execs takes the leader's id (`pid`).
        if let Ok(former) = ptrace::getevent(pid)
            && former as i32 != tid
        {
            t.tasks.remove(&(former as i32));
        }
        t.tasks.entry(tid).or_default().pid = tid;
        t.pidfds.remove(&tid);
        if tid == t.main.as_raw() {
            t.execed = true;
        }
        let exe = std::fs::read_link(format!("/proc/{tid}/exe")).unwrap_or_default();
        let stopped = Stopped::at(pid, None);
        seen(&stopped, Seen::Exec { pid: tid, exe });
    }
    resume(t, pid, None);
}

/// A syscall stop while attached (no seccomp filter): an entry stop of a listed call starts
/// it, its exit stop reports it; the rest go by.
fn attached_syscall_stop(t: &mut Tracees, pid: Pid, seen: &mut impl FnMut(&Stopped<'_>, Seen)) {
    let tid = pid.as_raw();
    match ffi::syscall_stop(pid) {
        Ok(SyscallStop::Entry { arch, nr, args }) if arch == seccomp::ARCH_X86_64 => {
            let listed = t.attached.as_ref().is_some_and(|l| l.contains(&nr));
            let p = start(t, pid, nr, args, listed, seen).filter(|p| p.report);
            if let Some(task) = t.tasks.get_mut(&tid) {
                task.pending = p;
            }
        }
        Ok(SyscallStop::Entry { arch, nr, .. }) => foreign(t, pid, arch, nr, seen),
        Ok(SyscallStop::Exit { rval, is_error }) => {
            if is_error
                && rval == RESTARTBLOCK
                && let Some(task) = t.tasks.get_mut(&tid)
                && task.pending.is_none()
            {
                task.interrupted = Some(Interrupted::Unreported);
            }
            // No filter when attached: nothing is added, the task goes on as the loop says.
            let _ = exit_stop(t, pid, seen);
        }
        Ok(SyscallStop::Other) | Err(_) => {}
    }
}

/// Call `nr` at its entry (its seccomp stop, or when attached its syscall-entry stop): the
/// call to follow to its exit stop, or None to let it go (a call of no interest, the restart
/// of a call not reported). `report`: the caller asked for it.
fn start(
    t: &mut Tracees,
    pid: Pid,
    nr: u64,
    args: [u64; 6],
    report: bool,
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) -> Option<Pending> {
    let resumed = t
        .tasks
        .get_mut(&pid.as_raw())
        .and_then(|k| k.resumed(nr, &args));
    // restart_syscall is reported as the call it goes on with, as that call was made.
    let (args, saved, resumes) = match resumed {
        Some(Interrupted::Call(p)) => (p.args, Some(p.saved), Some(p.nr)),
        Some(Interrupted::Unreported) => return None,
        // Launched, every reported call is seen from the exec on: an unseen one is a call not
        // traced (nanosleep). Attached, it may have begun before the attach: reported plainly.
        None if nr == RESTART_SYSCALL && t.attached.is_none() => return None,
        None => (args, None, None),
    };
    if report && !entering(t, pid, nr, args, seen) {
        return None;
    }
    let saved = match saved {
        Some(saved) => saved,
        None if report => saved_at_entry(pid, nr, &args),
        None => Vec::new(),
    };
    Some(Pending {
        nr,
        args,
        start_ns: record::now_ns(),
        report,
        saved,
        resumes,
    })
}

/// A listed call at its entry stop, reported before it runs (the time the callback takes,
/// a pause of step mode, is not the call's).
fn entering(
    t: &mut Tracees,
    pid: Pid,
    nr: u64,
    args: [u64; 6],
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) -> bool {
    let tid = pid.as_raw();
    let proc_pid = t.tasks.get(&tid).map_or(tid, |k| k.pid);
    let stopped = Stopped::at(pid, None);
    seen(
        &stopped,
        Seen::Entering {
            pid: proc_pid,
            tid,
            nr,
            args,
        },
    );
    stopped.follow.get()
}

/// What call `nr` will overwrite and is shown as passed (select's sets), read at its entry.
fn saved_at_entry(pid: Pid, nr: u64, args: &[u64; 6]) -> Vec<(u64, Vec<u8>)> {
    let Some(spec) = crate::sys::table::by_nr(nr as i64) else {
        return Vec::new();
    };
    let stopped = Stopped::at(pid, None);
    args::overwritten(spec, args, &stopped)
}

/// A call of another ABI (`int 0x80`): reported, not decoded.
fn foreign(t: &Tracees, pid: Pid, arch: u32, nr: u64, seen: &mut impl FnMut(&Stopped<'_>, Seen)) {
    let tid = pid.as_raw();
    let proc_pid = t.tasks.get(&tid).map_or(tid, |k| k.pid);
    let stopped = Stopped::at(pid, None);
    seen(
        &stopped,
        Seen::Foreign {
            pid: proc_pid,
            tid,
            arch,
            nr,
        },
    );
}

/// A call's exit stop: reports it, covers the sockets it made. Returns how to resume the
/// task (None: not from here, an injection left its status to handle next).
fn exit_stop(
    t: &mut Tracees,
    pid: Pid,
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) -> Option<Option<Signal>> {
    let tid = pid.as_raw();
    let Some(task) = t.tasks.get_mut(&tid) else {
        return Some(None);
    };
    let Some(p) = task.pending.take() else {
        return Some(None);
    };
    let proc_pid = task.pid;
    let Ok(SyscallStop::Exit { rval, is_error }) = ffi::syscall_stop(pid) else {
        return Some(None);
    };
    let end_ns = record::now_ns();
    let (ret, errno) = if is_error {
        (-1, Some(Errno::from_raw((-rval) as i32)))
    } else {
        (rval, None)
    };
    // The kernel's restart codes (include/linux/errno.h), never seen by the program.
    let restart = match -rval {
        _ if !is_error => None,
        512 => Some("ERESTARTSYS"),
        513 => Some("ERESTARTNOINTR"),
        514 => Some("ERESTARTNOHAND"),
        516 => Some("ERESTART_RESTARTBLOCK"),
        _ => None,
    };
    let errno = if restart.is_some() {
        Some(Errno::EINTR)
    } else {
        errno
    };
    // Remembered for restart_syscall, which goes on with the call (again, after its own
    // interruption); anything else ends that.
    task.interrupted = (is_error && rval == RESTARTBLOCK).then(|| {
        if p.report {
            Interrupted::Call(Pending {
                nr: p.resumes.unwrap_or(p.nr),
                args: p.args,
                start_ns: p.start_ns,
                report: true,
                saved: p.saved.clone(),
                resumes: None,
            })
        } else {
            Interrupted::Unreported
        }
    });
    if !t.pidfds.contains_key(&proc_pid)
        && let Ok(fd) = ffi::pidfd_open(Pid::from_raw(proc_pid))
    {
        t.pidfds.insert(proc_pid, fd);
    }
    let mut stopped = Stopped::at(pid, t.pidfds.get(&proc_pid));
    stopped.entry = Some(&p.saved);
    if p.report {
        seen(
            &stopped,
            Seen::Call(Call {
                pid: proc_pid,
                tid,
                nr: p.nr,
                args: p.args,
                ret,
                errno,
                restart,
                resumes: p.resumes,
                start_ns: p.start_ns,
                end_ns,
            }),
        );
    }
    if t.attached.is_some() || t.gated.is_empty() {
        return Some(None);
    }
    let fds = new_sockets(proc_pid, &p, ret, &stopped);
    cover(t, pid, proc_pid, &fds)
}

/// The sockets a finished call gave process `pid` (socket, accept, socketpair, a dup of a
/// socket, SCM_RIGHTS).
fn new_sockets(pid: i32, p: &Pending, ret: i64, mem: &Stopped<'_>) -> Vec<u32> {
    if ret < 0 {
        return Vec::new();
    }
    let fds = match p.nr as i64 {
        libc::SYS_socket | libc::SYS_accept | libc::SYS_accept4 => return vec![ret as u32],
        libc::SYS_socketpair => match mem.read(p.args[3], 8) {
            Some(b) if b.len() == 8 => {
                let fd = |k: usize| i32::from_ne_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
                vec![fd(0), fd(4)]
            }
            _ => Vec::new(),
        },
        libc::SYS_dup | libc::SYS_dup2 | libc::SYS_dup3 | libc::SYS_pidfd_getfd => {
            vec![ret as i32]
        }
        libc::SYS_fcntl if matches!(p.args[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) => {
            vec![ret as i32]
        }
        libc::SYS_recvmsg | libc::SYS_recvmmsg => {
            inject::received(p.nr as i64, &p.args, ret, &|a, n| mem.read(a, n))
        }
        _ => Vec::new(),
    };
    fds.into_iter()
        .filter(|&fd| inject::is_socket(pid, fd))
        .map(|fd| fd as u32)
        .collect()
}

/// Adds a filter to process `proc_pid` (through its thread `pid`, at an exit stop) so that
/// the gated calls stop on `fds` too, and any it still owes. Returns how to resume the task,
/// as [`exit_stop`] does.
fn cover(t: &mut Tracees, pid: Pid, proc_pid: i32, fds: &[u32]) -> Option<Option<Signal>> {
    let mut plans = t.owed.remove(&proc_pid).unwrap_or_default();
    let plan = t.covers.entry(proc_pid).or_default().plan(fds);
    if !plan.is_empty() {
        plans.push(plan);
    }
    let mut resume_sig = None;
    for plan in plans {
        if t.unfiltered.contains(&proc_pid) {
            break;
        }
        let cover = t.covers.entry(proc_pid).or_default();
        // A filter of the program's own (a sandbox's) may forbid seccomp(): ours only.
        let expected = t.base_filters.map(|b| b + cover.added());
        let prog = seccomp::filter(&[], &t.gated, &plan, false);
        let (Some(prog), true) = (prog, inject::filter_count(pid.as_raw()) == expected) else {
            t.unfiltered.insert(proc_pid);
            break;
        };
        let flags = libc::SECCOMP_FILTER_FLAG_TSYNC;
        match inject::add_filter(pid, &prog, flags) {
            inject::Outcome::Ran(0, sig) => {
                cover.add(&plan);
                resume_sig = resume_sig.or(sig);
            }
            inject::Outcome::Ran(_, sig) => {
                // A thread with a filter of its own (TSYNC's answer), or no memory left.
                resume_sig = resume_sig.or(sig);
                t.unfiltered.insert(proc_pid);
            }
            inject::Outcome::Refused(_) => {
                t.unfiltered.insert(proc_pid);
            }
            inject::Outcome::Lost(status) => {
                t.deferred.push_back(status);
                return None;
            }
        }
    }
    Some(resume_sig)
}

/// A forked child runs under the filters its parent had at the fork: those the tracer had
/// added by then, or fewer (one added while the fork ran), which it then owes.
fn inherit_cover(t: &mut Tracees, parent: i32, child: i32) {
    if t.covers.contains_key(&child) {
        // Seen at its first stop already.
        return;
    }
    let Some(mut cover) = t.covers.get(&parent).cloned() else {
        return;
    };
    if t.unfiltered.contains(&parent) {
        t.unfiltered.insert(child);
    }
    if let (Some(base), Some(n)) = (t.base_filters, inject::filter_count(child))
        && n >= base
        && n - base < cover.added()
    {
        let owed = cover.truncate(n - base);
        t.owed.insert(child, owed);
    }
    t.covers.insert(child, cover);
}

/// A task seen for the first time at one of its stops, before its parent's fork event.
fn new_task(t: &mut Tracees, tid: i32) {
    let proc_pid = tgid(tid).unwrap_or(tid);
    t.tasks.insert(
        tid,
        Task {
            pid: proc_pid,
            ..Task::default()
        },
    );
    if proc_pid == tid
        && let Some(parent) = status_field(tid, "PPid:")
    {
        inherit_cover(t, parent, tid);
    }
}

/// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU: the signals that stop a process.
fn is_stop_signal(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
    )
}

/// A signal on its way to a task (a signal-delivery stop; seized, a group stop is an event
/// stop): passed on.
fn signal_stop(t: &mut Tracees, pid: Pid, sig: Signal) {
    let tid = pid.as_raw();
    if !t.tasks.contains_key(&tid) {
        new_task(t, tid);
    }
    resume(t, pid, Some(sig));
}

/// Resumes a task; one inside a traced call keeps going to that call's exit stop.
fn resume(t: &Tracees, pid: Pid, sig: Option<Signal>) {
    // Attached, there is no filter: every call is stopped at, so the task always goes on to
    // its next syscall stop.
    if t.attached.is_some()
        || t.tasks
            .get(&pid.as_raw())
            .is_some_and(|k| k.pending.is_some())
    {
        let _ = ptrace::syscall(pid, sig);
    } else {
        let _ = ptrace::cont(pid, sig);
    }
}

fn ended(
    t: &mut Tracees,
    pid: Pid,
    how: Exit,
    seen: &mut impl FnMut(&Stopped<'_>, Seen),
) -> Option<Exit> {
    let tid = pid.as_raw();
    settled(t, tid, seen);
    let task = t.tasks.remove(&tid)?;
    if task.pid == tid {
        t.pidfds.remove(&tid);
        t.covers.remove(&tid);
        t.owed.remove(&tid);
        t.unfiltered.remove(&tid);
    }
    let stopped = Stopped::at(pid, None);
    seen(
        &stopped,
        Seen::Exited {
            pid: task.pid,
            tid,
            how,
        },
    );
    (pid == t.main).then_some(how)
}

/// A seized task stopped (or ended) for the first time: once every one has, the attach is
/// complete.
fn settled(t: &mut Tracees, tid: i32, seen: &mut impl FnMut(&Stopped<'_>, Seen)) {
    let first = t
        .tasks
        .get_mut(&tid)
        .is_some_and(|k| std::mem::take(&mut k.seized));
    if first {
        t.unsettled = t.unsettled.saturating_sub(1);
        if t.unsettled == 0 {
            let stopped = Stopped::at(t.main, None);
            let threads = t.tasks.len();
            seen(
                &stopped,
                Seen::Attached {
                    pid: t.main.as_raw(),
                    threads,
                },
            );
        }
    }
}

/// The thread group of task `tid` (`Tgid:` in `/proc/TID/status`).
fn tgid(tid: i32) -> Option<i32> {
    status_field(tid, "Tgid:")
}

/// A number in `/proc/TID/status` (`Tgid:`, `PPid:`).
fn status_field(tid: i32, key: &str) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_interrupted(args: [u64; 6]) -> Task {
        Task {
            interrupted: Some(Interrupted::Call(Pending {
                nr: libc::SYS_poll as u64,
                args,
                start_ns: 0,
                report: true,
                saved: Vec::new(),
                resumes: None,
            })),
            ..Task::default()
        }
    }

    #[test]
    fn restart_syscall_goes_on_with_the_interrupted_call_of_the_same_registers() {
        let args = [0x7ffd_0000, 1, 10_000, 0, 0, 0];
        let mut task = poll_interrupted(args);
        let Some(Interrupted::Call(p)) = task.resumed(RESTART_SYSCALL, &args) else {
            panic!("the poll is resumed");
        };
        assert_eq!((p.nr, p.args), (libc::SYS_poll as u64, args));
        // Once: a second restart has nothing to go on with.
        assert!(task.resumed(RESTART_SYSCALL, &args).is_none());

        // Other registers: a handler ran and this restart is of another call (nanosleep).
        let mut task = poll_interrupted(args);
        assert!(task.resumed(RESTART_SYSCALL, &[1, 2, 0, 0, 0, 0]).is_none());

        // Any other call forgets the interrupted one.
        let mut task = poll_interrupted(args);
        assert!(task.resumed(libc::SYS_write as u64, &args).is_none());
        assert!(task.interrupted.is_none());
    }
}
