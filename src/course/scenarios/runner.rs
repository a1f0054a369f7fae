//! Running one scenario: observers around it, the steps, the checks.

use std::time::Duration;

use super::{Check, Lab, Scenario, Status, explain_key};
use crate::course::notes;
use crate::error::Error;
use crate::event::record::{self, Collector, Options};
use crate::event::timeline;
use crate::event::{self, Event};
use crate::observe::session::{ObserveOptions, Observers};
use crate::render::present::{Shown, View, present};

/// What one run saw and how the checks came out.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario's name.
    pub name: &'static str,
    /// The merged timeline.
    pub events: Vec<Event>,
    /// The expectations, checked.
    pub checks: Vec<Check>,
    /// The server's port.
    pub port: u16,
    /// The server's address as `ip:port`.
    pub server_addr: String,
    /// Observer tiers that could not run.
    pub notices: Vec<String>,
}

impl Outcome {
    /// True when no check failed (skipped ones do not count).
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|c| !matches!(c.status, Status::Failed(_)))
    }

    /// The failed checks, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| match &c.status {
                Status::Failed(why) => Some(format!("{}: {why}", c.what)),
                Status::Passed | Status::Skipped(_) => None,
            })
            .collect()
    }
}

/// A port that no socket refers to: bind(0) alone may return the server port of an earlier
/// run whose client still sits in TIME_WAIT (60 s), and the looks would show that socket.
/// Runs `s` with the observers `observe` asks for. The recorder is process-wide: run one
/// scenario at a time.
pub fn run(s: &Scenario, observe: &ObserveOptions) -> Result<Outcome, Error> {
    let claim = crate::net::ports::free_server_port(s.ipv6).map_err(Error::Other)?;
    let port = claim.port();
    crate::programs::step::set_port(port);
    let collector = Collector::new();
    record::install(Box::new(collector.clone()), Options::default());
    let observers = Observers::start(&[port], observe);
    let (kernel, packets) = (observers.has_tracepoint(), observers.has_capture());
    let notices: Vec<String> = observers
        .notices()
        .iter()
        .filter_map(|e| e.note().map(|n| n.text.clone()))
        .collect();
    let mut lab = Lab::new(port, s.ipv6);
    let res = (s.run)(&mut lab);
    record::set_thread_role(None);
    // Let the last segments of a close land before the observers stop.
    std::thread::sleep(Duration::from_millis(20));
    let seen = observers.finish();
    record::uninstall();
    // Ctrl-C (step mode installs the handler): a call was cut short, say why the run stopped.
    if crate::sys::ffi::interrupted() {
        return Err(Error::Other(
            "interrupted: the scenario stopped and removed its observers".into(),
        ));
    }
    res?;
    let mut events = event::merge([collector.take(), seen]);
    timeline::assign_lanes(&mut events, port);
    timeline::sort(&mut events);
    timeline::dedup_snapshots(&mut events);
    timeline::add_insight_notes(&mut events);
    timeline::mark_unfinished(&mut events);
    let checks = (s.expect)()
        .iter()
        .map(|e| e.check(&events, kernel, packets))
        .collect();
    Ok(Outcome {
        name: s.name,
        events,
        checks,
        port,
        server_addr: lab.server_addr().to_string(),
        notices,
    })
}

fn check_line(c: &Check) -> String {
    match &c.status {
        Status::Passed => format!("  ok    {}", c.what),
        Status::Failed(why) => format!("  FAIL  {}: {why}", c.what),
        Status::Skipped(why) => format!("  skip  {} ({why})", c.what),
    }
}

/// Check results as note events (for `--json`), after the last event.
pub fn check_events(o: &Outcome) -> Vec<Event> {
    let t = o.events.last().map_or(0, |e| e.t) + 1;
    o.checks
        .iter()
        .map(|c| {
            let (status, why) = match &c.status {
                Status::Passed => ("passed", String::new()),
                Status::Failed(w) => ("failed", w.clone()),
                Status::Skipped(w) => ("skipped", w.clone()),
            };
            Event::lab_note(
                t,
                notes::note(
                    "scenario.check",
                    &[
                        ("what", c.what.clone()),
                        ("status", status.into()),
                        ("why", why),
                    ],
                ),
            )
        })
        .collect()
}

/// Prints the outcome: timeline, explanation, checks.
pub fn show(s: &Scenario, o: &Outcome, view: &View) -> Result<(), Error> {
    let mut events = o.events.clone();
    let mut footer = Vec::new();
    if view.json {
        events.extend(check_events(o));
    } else {
        footer.push(notes::text(&explain_key(s.name), &[]));
        footer.push(notes::text("scenario.checks", &[]));
        footer.extend(o.checks.iter().map(check_line));
        footer.push(format!("\n{}", notes::text("scenario.more", &[])));
    }
    let shown = Shown {
        title: notes::text(
            "scenario.title",
            &[("name", s.name.to_string()), ("summary", s.summary())],
        ),
        header: Vec::new(),
        events: &events,
        server_addr: Some(o.server_addr.clone()),
        notices: &o.notices,
        footer,
        legend: None,
        labels: Default::default(),
    };
    present(&shown, view)
}
