//! What a benchmark found: one result per workload and run, the ratios between runs, and how
//! they are shown (a table for people, one JSON document for machines).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::load::Histogram;
use crate::error::Error;

/// RR: request/response on long-lived connections.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RrResult {
    /// Concurrent connections.
    pub conns: usize,
    /// Request and response size, bytes.
    pub size: usize,
    /// Seconds counted.
    pub secs: f64,
    /// Transactions counted.
    pub transactions: u64,
    /// Transactions per second.
    pub tps: f64,
    /// Median transaction time, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// Connections that completed a transaction within the counted time (the iterative server
    /// serves one connection at a time, so it serves 1).
    pub conns_served: usize,
    /// Failed connections or transactions.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Slices it was measured in, taking turns with the servers beside it (1: in one go).
    pub rounds: u32,
    /// The transaction times behind p50 and p99, to add up slices.
    #[serde(skip)]
    pub hist: Histogram,
}

impl RrResult {
    /// Adds a later slice of the same load.
    pub fn absorb(&mut self, s: RrResult) {
        self.secs += s.secs;
        self.transactions += s.transactions;
        self.tps = per_sec(self.transactions, self.secs);
        self.hist.merge(&s.hist);
        self.p50_us = self.hist.quantile_us(0.50);
        self.p99_us = self.hist.quantile_us(0.99);
        self.conns_served = self.conns_served.max(s.conns_served);
        self.errors += s.errors;
        self.first_error = self.first_error.take().or(s.first_error);
        self.rounds += s.rounds;
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// CRR: connect, request, response, close.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CrrResult {
    /// Concurrent workers.
    pub workers: usize,
    /// Request size, bytes.
    pub size: usize,
    /// Seconds counted.
    pub secs: f64,
    /// Connections completed within the counted time.
    pub connections: u64,
    /// Connections per second.
    pub cps: f64,
    /// Median connection time (socket to close), µs.
    pub p50_us: Option<f64>,
    /// 99th percentile, µs.
    pub p99_us: Option<f64>,
    /// Failed connections.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Slices it was measured in, taking turns with the servers beside it (1: in one go).
    pub rounds: u32,
    /// The connection times behind p50 and p99, to add up slices.
    #[serde(skip)]
    pub hist: Histogram,
}

impl CrrResult {
    /// Adds a later slice of the same load.
    pub fn absorb(&mut self, s: CrrResult) {
        self.secs += s.secs;
        self.connections += s.connections;
        self.cps = per_sec(self.connections, self.secs);
        self.hist.merge(&s.hist);
        self.p50_us = self.hist.quantile_us(0.50);
        self.p99_us = self.hist.quantile_us(0.99);
        self.errors += s.errors;
        self.first_error = self.first_error.take().or(s.first_error);
        self.rounds += s.rounds;
    }
}

/// Bulk: many MiB through each connection, verified.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BulkResult {
    /// Concurrent connections.
    pub conns: usize,
    /// MiB each connection sent and got back.
    pub mib_each: f64,
    /// Seconds from the first connect to the last byte.
    pub secs: f64,
    /// MiB per second, one direction, all connections together.
    pub mib_per_s: f64,
    /// Every byte came back, in order, on the right connection.
    pub verified: bool,
    /// What was wrong when not verified.
    pub mismatch: Option<String>,
    /// Failed reads, writes or connects.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Summary of some waits, in ms.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Waits {
    /// Shortest.
    pub min_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// Longest.
    pub max_ms: Option<f64>,
}

impl Waits {
    /// The summary of `waits` (all `None` when empty).
    pub fn of(waits: &[Duration]) -> Waits {
        let mut ms: Vec<f64> = waits.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Waits {
            min_ms: ms.first().copied(),
            p50_ms: ms.get(ms.len().saturating_sub(1) / 2).copied(),
            max_ms: ms.last().copied(),
        }
    }
}

/// Head-of-line: how long others wait while one client is silent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HolResult {
    /// How long the first client stayed silent (D), ms.
    pub silent_ms: f64,
    /// Clients that wanted service meanwhile (K).
    pub others: usize,
    /// How many of them got their answer.
    pub answered: usize,
    /// Their waits, connect to answer.
    pub waits: Waits,
    /// The silent client's own wait for the echo of its one byte, ms.
    pub silent_answer_ms: Option<f64>,
    /// Clients that got no answer.
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// One server under one load: what ran and what each workload measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    /// Short name: `thread`, `thread+json`, `C thread`, `127.0.0.1:7000`.
    pub label: String,
    /// `socklab`, `c`, `strace` (socklab under strace -f) or `target`.
    pub server: String,
    /// The socklab model, if it is one of the lab's or the C baseline's.
    pub model: Option<String>,
    /// The server's event logging: `off` or `json` (to a file).
    pub log: String,
    /// The address that was measured.
    pub addr: String,
    /// RR, when run.
    pub rr: Option<RrResult>,
    /// CRR, when run.
    pub crr: Option<CrrResult>,
    /// Bulk, when run.
    pub bulk: Option<BulkResult>,
    /// Head-of-line, when run.
    pub hol: Option<HolResult>,
    /// With logging on: events the server wrote, and the log's size.
    pub logged_events: Option<u64>,
    /// Bytes of that log.
    pub logged_bytes: Option<u64>,
    /// The tracer the server ran under (`--tracers`): `run`, `strace`, `strace-bpf` or
    /// `strace-same`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracer: Option<String>,
    /// Lines of the tracer's output (`socklab run --json`: events; strace: about one a call).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_lines: Option<u64>,
    /// Bytes of that output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_bytes: Option<u64>,
    /// The tracer's peak resident memory (`VmHWM`) when the load was over, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracer_kib_loaded: Option<u64>,
    /// Its peak resident memory at the last look before it exited, KiB (`socklab run` builds
    /// and prints its timeline after the program ends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracer_kib_peak: Option<u64>,
}

/// One file-I/O program (`--tracers`), untraced or under a tracer, run several times in turns
/// with the others.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileIoRun {
    /// What the program does: `dd 4k /dev/zero`.
    pub program: String,
    /// The command line, untraced.
    pub command: String,
    /// `untraced`, `run`, `strace`, `strace-bpf` or `strace-same`.
    pub tracer: String,
    /// Wall time of each run, seconds.
    pub secs: Vec<f64>,
    /// Their median.
    pub median_secs: f64,
    /// The median over the untraced median (above 1: slower under the tracer).
    pub vs_untraced: Option<f64>,
}

/// One ratio between two runs' numbers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ratio {
    /// What is compared: `socklab/C`, `json/off`, `strace/off`.
    pub what: String,
    /// The model.
    pub model: String,
    /// `rr`, `crr` or `bulk`.
    pub workload: String,
    /// The first run's number over the second's (above 1: the first is faster).
    pub ratio: f64,
}

/// Where and how it ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Machine {
    /// CPUs this process may use.
    pub cpus: usize,
    /// The kernel release.
    pub kernel: String,
    /// 1-minute load average when the benchmark started (others' work on a shared machine).
    pub loadavg: Option<f64>,
    /// How server and load generator were pinned: `off`, `same CPU n`, `server CPU a, load CPU
    /// b`.
    pub pinning: String,
}

/// Everything a `socklab bench` run found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Each server measured, in order.
    pub runs: Vec<Run>,
    /// Ratios between runs (with `--c-baseline`, `--compare`).
    pub ratios: Vec<Ratio>,
    /// Remarks: what was skipped and why.
    pub notes: Vec<String>,
    /// File-I/O programs untraced and under the tracers (`--tracers`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_io: Vec<FileIoRun>,
}

impl Report {
    /// An error naming the first server whose bulk echo came back different, if any.
    pub fn check_bulk(&self) -> Result<(), Error> {
        match self.runs.iter().find_map(|r| {
            let b = r.bulk.as_ref()?;
            (!b.verified).then(|| (r.label.clone(), b.mismatch.clone().unwrap_or_default()))
        }) {
            Some((label, why)) => Err(Error::Other(format!(
                "bulk: {label} did not echo every byte as sent: {why}"
            ))),
            None => Ok(()),
        }
    }
}

impl Run {
    /// A run of the server at `addr` with nothing measured yet (an outside server until told
    /// otherwise).
    pub fn new(label: String, addr: std::net::SocketAddr) -> Run {
        Run {
            label,
            server: "target".into(),
            model: None,
            log: "off".into(),
            addr: addr.to_string(),
            rr: None,
            crr: None,
            bulk: None,
            hol: None,
            logged_events: None,
            logged_bytes: None,
            tracer: None,
            trace_lines: None,
            trace_bytes: None,
            tracer_kib_loaded: None,
            tracer_kib_peak: None,
        }
    }

    /// The run's number for `workload` that ratios compare: tx/s, conns/s, MiB/s.
    pub fn headline(&self, workload: &str) -> Option<f64> {
        match workload {
            "rr" => self.rr.as_ref().map(|r| r.tps),
            "crr" => self.crr.as_ref().map(|r| r.cps),
            "bulk" => self.bulk.as_ref().map(|r| r.mib_per_s),
            _ => None,
        }
    }
}

/// Ratios of `a` over `b` for every workload both ran with a nonzero result.
pub fn ratios(what: &str, model: &str, a: &Run, b: &Run) -> Vec<Ratio> {
    ["rr", "crr", "bulk"]
        .into_iter()
        .filter_map(|w| {
            let (x, y) = (a.headline(w)?, b.headline(w)?);
            (y > 0.0).then(|| Ratio {
                what: what.to_string(),
                model: model.to_string(),
                workload: w.to_string(),
                ratio: x / y,
            })
        })
        .collect()
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), num)
}

fn errs(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} errors)")
    }
}

/// Lines of aligned columns.
fn columns(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How a sliced load was measured, for its table's header.
fn in_turns(rounds: u32) -> String {
    if rounds > 1 {
        format!(" each, in {rounds} rounds (the servers in turn)")
    } else {
        String::new()
    }
}

/// The report as tables for a terminal.
pub fn table(rep: &Report) -> String {
    let mut out = String::new();
    let m = &rep.machine;
    let load = m
        .loadavg
        .map_or(String::new(), |l| format!(", load {l:.2}"));
    let _ = writeln!(
        out,
        "machine: {} CPUs, Linux {}, pinning: {}{load}",
        m.cpus, m.kernel, m.pinning
    );
    let runs = &rep.runs;
    if let Some(r0) = runs.iter().find_map(|r| r.rr.as_ref()) {
        let _ = writeln!(
            out,
            "\nRR: {} connections, {} B request/response, {} s{}",
            r0.conns,
            r0.size,
            num(r0.secs),
            in_turns(r0.rounds)
        );
        let mut rows = vec![vec![
            "server".into(),
            "tx/s".into(),
            "p50 µs".into(),
            "p99 µs".into(),
            "conns served".into(),
        ]];
        for r in runs {
            if let Some(rr) = &r.rr {
                rows.push(vec![
                    r.label.clone(),
                    format!("{}{}", num(rr.tps), errs(rr.errors)),
                    opt(rr.p50_us),
                    opt(rr.p99_us),
                    format!("{}/{}", rr.conns_served, rr.conns),
                ]);
            }
        }
        out.push_str(&columns(&rows));
    }
    if let Some(c0) = runs.iter().find_map(|r| r.crr.as_ref()) {
        let _ = writeln!(
            out,
            "\nCRR: {} workers, connect + {} B request/response + close, {} s{}",
            c0.workers,
            c0.size,
            num(c0.secs),
            in_turns(c0.rounds)
        );
        let mut rows = vec![vec![
            "server".into(),
            "conns/s".into(),
            "p50 µs".into(),
            "p99 µs".into(),
        ]];
        for r in runs {
            if let Some(c) = &r.crr {
                rows.push(vec![
                    r.label.clone(),
                    format!("{}{}", num(c.cps), errs(c.errors)),
                    opt(c.p50_us),
                    opt(c.p99_us),
                ]);
            }
        }
        out.push_str(&columns(&rows));
    }
    if let Some(b0) = runs.iter().find_map(|r| r.bulk.as_ref()) {
        let _ = writeln!(
            out,
            "\nbulk: {} connections x {} MiB each way, verified byte for byte",
            b0.conns,
            num(b0.mib_each)
        );
        let mut rows = vec![vec![
            "server".into(),
            "MiB/s".into(),
            "secs".into(),
            "verified".into(),
        ]];
        for r in runs {
            if let Some(b) = &r.bulk {
                let verified = match (&b.mismatch, b.verified) {
                    (_, true) => "yes".to_string(),
                    (Some(why), false) => format!("NO: {why}"),
                    (None, false) => "NO".to_string(),
                };
                rows.push(vec![
                    r.label.clone(),
                    format!("{}{}", num(b.mib_per_s), errs(b.errors)),
                    num(b.secs),
                    verified,
                ]);
            }
        }
        out.push_str(&columns(&rows));
    }
    if let Some(h0) = runs.iter().find_map(|r| r.hol.as_ref()) {
        let _ = writeln!(
            out,
            "\nhead-of-line: one client silent for {} ms while {} others want an answer",
            num(h0.silent_ms),
            h0.others
        );
        let mut rows = vec![vec![
            "server".into(),
            "others' wait ms: min".into(),
            "median".into(),
            "max".into(),
            "answered".into(),
        ]];
        for r in runs {
            if let Some(h) = &r.hol {
                rows.push(vec![
                    r.label.clone(),
                    opt(h.waits.min_ms),
                    opt(h.waits.p50_ms),
                    opt(h.waits.max_ms),
                    format!("{}/{}", h.answered, h.others),
                ]);
            }
        }
        out.push_str(&columns(&rows));
    }
    let logged: Vec<&Run> = runs.iter().filter(|r| r.logged_events.is_some()).collect();
    if !logged.is_empty() {
        out.push_str("\nevents logged as JSON (file):\n");
        let mut rows = Vec::new();
        for r in logged {
            rows.push(vec![
                r.label.clone(),
                format!("{} events", r.logged_events.unwrap_or(0)),
                format!(
                    "{} MiB",
                    num(r.logged_bytes.unwrap_or(0) as f64 / (1 << 20) as f64)
                ),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    let traced: Vec<&Run> = runs.iter().filter(|r| r.tracer.is_some()).collect();
    if !traced.is_empty() {
        out.push_str(
            "\ntracers: output (a file) and peak memory (VmHWM) after the load, at exit:\n",
        );
        let mut rows = Vec::new();
        let mib = |b: u64| format!("{} MiB", num(b as f64 / (1 << 20) as f64));
        let kib = |k: Option<u64>| k.map_or_else(|| "-".into(), |k| mib(k << 10));
        for r in traced {
            rows.push(vec![
                r.label.clone(),
                format!("{} lines", r.trace_lines.unwrap_or(0)),
                mib(r.trace_bytes.unwrap_or(0)),
                kib(r.tracer_kib_loaded),
                kib(r.tracer_kib_peak),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if !rep.file_io.is_empty() {
        out.push_str("\nfile I/O: wall time, median of the runs (in turns), and over untraced:\n");
        let mut rows = vec![vec![
            "program".into(),
            "tracer".into(),
            "median s".into(),
            "runs".into(),
            "x untraced".into(),
        ]];
        for f in &rep.file_io {
            rows.push(vec![
                f.program.clone(),
                f.tracer.clone(),
                format!("{:.3}", f.median_secs),
                f.secs.len().to_string(),
                f.vs_untraced
                    .map_or_else(|| "-".into(), |v| format!("{v:.2}x")),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    if !rep.ratios.is_empty() {
        out.push_str("\nratios (above 1: the first is faster):\n");
        let mut rows = vec![vec![
            "".into(),
            "model".into(),
            "rr".into(),
            "crr".into(),
            "bulk".into(),
        ]];
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for r in &rep.ratios {
            if !keys.contains(&(&r.what, &r.model)) {
                keys.push((&r.what, &r.model));
            }
        }
        for (what, model) in keys {
            let cell = |w: &str| {
                rep.ratios
                    .iter()
                    .find(|r| r.what == what && r.model == model && r.workload == w)
                    .map_or_else(|| "-".to_string(), |r| format!("{:.2}x", r.ratio))
            };
            rows.push(vec![
                what.to_string(),
                model.to_string(),
                cell("rr"),
                cell("crr"),
                cell("bulk"),
            ]);
        }
        out.push_str(&columns(&rows));
    }
    for n in &rep.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_summary() {
        let w = Waits::of(&[
            Duration::from_millis(3),
            Duration::from_millis(1),
            Duration::from_millis(200),
        ]);
        assert_eq!(w.min_ms, Some(1.0));
        assert_eq!(w.p50_ms, Some(3.0));
        assert_eq!(w.max_ms, Some(200.0));
        assert_eq!(Waits::of(&[]).p50_ms, None);
    }

    fn slice(transactions: u64, secs: f64, each: Duration, first_error: Option<&str>) -> RrResult {
        let mut hist = Histogram::default();
        for _ in 0..transactions {
            hist.record(each);
        }
        RrResult {
            conns: 4,
            size: 1,
            secs,
            transactions,
            tps: transactions as f64 / secs,
            p50_us: hist.quantile_us(0.5),
            p99_us: hist.quantile_us(0.99),
            conns_served: 4,
            errors: u64::from(first_error.is_some()),
            first_error: first_error.map(String::from),
            rounds: 1,
            hist,
        }
    }

    #[test]
    fn slices_add_up_to_one_result() {
        // 90 fast transactions in 1 s, then 10 slow ones in 1 s: 50 per second, and the p99
        // comes from the slow slice.
        let mut r = slice(90, 1.0, Duration::from_micros(10), None);
        r.absorb(slice(10, 1.0, Duration::from_micros(1000), Some("reset")));
        assert_eq!(
            (r.transactions, r.secs, r.rounds, r.errors),
            (100, 2.0, 2, 1)
        );
        assert_eq!(r.tps, 50.0);
        assert!((9.0..11.0).contains(&r.p50_us.unwrap()), "{:?}", r.p50_us);
        assert!(
            (980.0..1020.0).contains(&r.p99_us.unwrap()),
            "{:?}",
            r.p99_us
        );
        assert_eq!(r.first_error.as_deref(), Some("reset"));
        // Serialized without its histogram.
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("hist").is_none() && v["rounds"] == 2);
    }

    #[test]
    fn columns_align_right_after_the_first() {
        let t = columns(&[
            vec!["a".into(), "1".into()],
            vec!["long".into(), "100".into()],
        ]);
        assert_eq!(t, "a       1\nlong  100\n");
    }
}
