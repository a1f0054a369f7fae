//! `bench --tracers`, file I/O: what a tracer costs a program that reads and writes files and
//! devices, not sockets. Each program runs untraced, under `socklab run` and under `strace -f
//! --seccomp-bpf` (the same calls asked for as for the servers), [`BenchConfig::rounds`]
//! times each, taking turns; the wall times' medians are compared.
//!
//! Read first: seccomp(2): a filter sees the call's number and arguments, not what the
//! descriptor is, so a tracer that wants socket reads stops at file reads too.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::BenchConfig;
use super::report::{FileIoRun, Report};
use super::server::Tracer;
use crate::error::Error;
use crate::sys::ffi;

/// Longest one run may take: this, plus [`PER_MIB`] per MiB.
const LIMIT: Duration = Duration::from_secs(30);
/// The slowest file I/O waited for: 5 MiB/s.
const PER_MIB: Duration = Duration::from_millis(200);

/// One program: a name for the report and its command line.
struct Program {
    name: String,
    argv: Vec<String>,
}

/// The programs: `true` (the tracer's start and end alone), dd of `mib` MiB in 4 KiB blocks
/// from /dev/zero to /dev/null (two calls per 4 KiB: the per-call cost), dd of a file in
/// 128 KiB blocks, and sha256sum of the same file (reads and work).
fn programs(mib: u64, file: &Path) -> Vec<Program> {
    let f = file.display().to_string();
    let p = |name: &str, argv: &[&str]| Program {
        name: name.to_string(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
    };
    vec![
        p("true", &["true"]),
        p(
            &format!("dd 4k x {} /dev/zero", mib * 256),
            &[
                "dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=4k",
                &format!("count={}", mib * 256),
            ],
        ),
        p(
            &format!("dd 128k, {mib} MiB file"),
            &["dd", &format!("if={f}"), "of=/dev/null", "bs=128k"],
        ),
        p(&format!("sha256sum {mib} MiB file"), &["sha256sum", &f]),
    ]
}

/// The command line of `prog` under `tracer` (None: untraced); strace writes to `out`.
fn command(cfg: &BenchConfig, strace: &Path, tracer: Option<Tracer>, prog: &Program) -> Command {
    let mut c = match tracer {
        None => Command::new(&prog.argv[0]),
        Some(t) => {
            let exe = if t == Tracer::Run {
                &cfg.socklab
            } else {
                strace
            };
            let mut c = t.command(exe, Path::new("/dev/null"));
            c.arg(&prog.argv[0]);
            c
        }
    };
    c.args(&prog.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Runs `cmd` to its end, bounded by `limit` (then killed); its wall time.
fn timed(mut cmd: Command, what: &str, limit: Duration) -> Result<f64, Error> {
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Other(format!("cannot start {what}: {e}")))?;
    let pid = Pid::from_raw(child.id() as i32);
    let (done, wait) = mpsc::channel::<()>();
    let status = thread::scope(|s| {
        s.spawn(move || {
            if wait.recv_timeout(limit).is_err() {
                // Not reaped yet, so the pid is still this child's.
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
        let status = child.wait();
        let _ = done.send(());
        status
    });
    let secs = start.elapsed().as_secs_f64();
    match status {
        Ok(st) if st.success() => Ok(secs),
        Ok(st) => Err(Error::Other(format!(
            "file I/O: {what} failed ({st}){}",
            if secs >= limit.as_secs_f64() {
                format!(", killed after {limit:?}")
            } else {
                String::new()
            }
        ))),
        Err(e) => Err(Error::Other(format!("waiting for {what}: {e}"))),
    }
}

/// A file of `mib` MiB for the programs to read (in the page cache once written).
fn make_file(mib: u64) -> Result<PathBuf, Error> {
    let path = std::env::temp_dir().join(format!("socklab-bench-{}-fileio", std::process::id()));
    let fail = |e: std::io::Error| Error::Other(format!("cannot write {}: {e}", path.display()));
    let mut f = File::create(&path).map_err(fail)?;
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for _ in 0..mib {
        f.write_all(&block).map_err(fail)?;
    }
    Ok(path)
}

/// Measures the file-I/O programs untraced, under `socklab run` and, if `strace` is there,
/// under `strace --seccomp-bpf`, adding them to `rep` with a note on the target.
pub fn measure(cfg: &BenchConfig, strace: Option<&Path>, rep: &mut Report) -> Result<(), Error> {
    let file = make_file(cfg.io_mib)?;
    let res = measure_with(cfg, strace, &file, rep);
    let _ = fs::remove_file(&file);
    res
}

fn measure_with(
    cfg: &BenchConfig,
    strace: Option<&Path>,
    file: &Path,
    rep: &mut Report,
) -> Result<(), Error> {
    let mut tracers = vec![None, Some(Tracer::Run)];
    if strace.is_some() {
        tracers.push(Some(Tracer::StraceBpf));
    }
    let strace = strace.unwrap_or(Path::new("strace"));
    let limit = LIMIT + PER_MIB * cfg.io_mib as u32;
    let rounds = cfg.rounds.max(1) as usize;
    // What socklab run adds to `true`: the start and end every traced program pays.
    let mut start_secs: Option<f64> = None;
    for prog in programs(cfg.io_mib, file) {
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); tracers.len()];
        // One run of each first, not counted: the page cache and the executables warm up.
        for r in 0..=rounds {
            for j in 0..tracers.len() {
                let i = (j + r) % tracers.len();
                if ffi::interrupted() {
                    return Err(Error::Other(
                        "interrupted (Ctrl-C): the file-I/O runs were stopped".into(),
                    ));
                }
                let name = tracers[i].map_or("untraced", Tracer::name);
                let what = format!("{} ({name})", prog.name);
                let t = timed(command(cfg, strace, tracers[i], &prog), &what, limit)?;
                if r > 0 {
                    secs[i].push(t);
                }
            }
        }
        let medians: Vec<f64> = secs.iter().map(|s| median(s)).collect();
        if prog.argv[0] == "true" {
            start_secs = Some((medians[1] - medians[0]).max(0.0));
        }
        for (i, t) in tracers.iter().enumerate() {
            let vs = (i > 0 && medians[0] > 0.0).then(|| medians[i] / medians[0]);
            rep.file_io.push(FileIoRun {
                program: prog.name.clone(),
                command: prog.argv.join(" "),
                tracer: t.map_or("untraced", Tracer::name).to_string(),
                secs: secs[i].clone(),
                median_secs: medians[i],
                vs_untraced: vs,
            });
            if *t == Some(Tracer::Run)
                && let Some(v) = vs
                && prog.argv[0] != "true"
            {
                // The I/O's own cost: the wall time less the start `true` pays too.
                let start = start_secs.unwrap_or(0.0);
                let io = (medians[i] - start) / medians[0];
                rep.notes.push(format!(
                    "target: file I/O under socklab run costs under 5% ({}): {:+.0}% in all, \
                     {:+.0}% beyond the {:.1} ms start and end that `true` pays too; {}",
                    prog.name,
                    (v - 1.0) * 100.0,
                    (io - 1.0) * 100.0,
                    start * 1e3,
                    if io < 1.05 { "met" } else { "NOT met" }
                ));
            }
        }
    }
    Ok(())
}

/// The median of `v` (0 when empty).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
