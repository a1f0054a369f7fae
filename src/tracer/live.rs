//! `socklab run --live`: the timeline as it happens. The calls come from the tracer as it
//! reports them; the kernel's state changes and packets are taken from the observers every
//! [`TICK`] and placed with the same [`Owners`] as the finished timeline. Lines are shown
//! [`GRACE`] late, in time order, so a kernel event that arrives a little after a later call
//! still shows before it.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::session::{Owners, is_process_event};
use crate::event::record::now_ns;
use crate::event::{Body, Event, Role};
use crate::observe::session::Observers;
use crate::render::live::human::{format_event, format_event_tagged};
use crate::render::write_or_exit;

/// How often the observers are drained and lines are written.
pub const TICK: Duration = Duration::from_millis(100);

/// How late a line is shown: the kernel's events reach the lab this much after the fact at
/// most (the tracepoint's pipe, the capture's reader), in practice.
pub const GRACE: Duration = Duration::from_millis(250);

/// One event of the tracer for the live view, with its process's label (`python3[4242]`).
#[derive(Debug)]
pub struct LiveEvent {
    /// The event, as the finished timeline keeps it.
    pub event: Event,
    /// Its process's label when it was made.
    pub label: String,
}

/// A running live view: a thread that owns the observers until the program ends.
pub struct LiveView {
    handle: JoinHandle<Vec<Event>>,
}

impl LiveView {
    /// Starts the view's thread; the tracer's events go into the returned sender.
    pub fn start(
        observers: Observers,
        owners: Arc<Mutex<Owners>>,
        json: bool,
        keep: bool,
    ) -> std::io::Result<(LiveView, Sender<LiveEvent>)> {
        let (tx, rx) = mpsc::channel();
        let printer = Printer {
            json,
            keep,
            owners,
            calls: Vec::new(),
            kernel: Vec::new(),
            observed: Vec::new(),
            related: HashSet::new(),
            held: HashMap::new(),
            labels: HashMap::new(),
            roles: HashMap::new(),
            t0: None,
            width: 0,
        };
        let handle = std::thread::Builder::new()
            .name("socklab-live".into())
            .spawn(move || printer.run(observers, &rx))?;
        Ok((LiveView { handle }, tx))
    }

    /// Waits for the view to show the rest (call after the sender is dropped) and returns
    /// everything the observers saw, for the finished timeline (their notes only, unless
    /// started to keep it).
    pub fn finish(self) -> Vec<Event> {
        self.handle.join().unwrap_or_default()
    }
}

struct Printer {
    json: bool,
    /// Keep what the observers saw for the finished timeline (else only their notes).
    keep: bool,
    owners: Arc<Mutex<Owners>>,
    /// The tracer's events not shown yet.
    calls: Vec<LiveEvent>,
    /// The observers' events not placed yet.
    kernel: Vec<Event>,
    /// Everything the observers gave, for the finished timeline.
    observed: Vec<Event>,
    /// The processes that used a socket: their process events show.
    related: HashSet<u32>,
    /// Process events of processes that have not used a socket yet (a shell around the
    /// program shows nothing).
    held: HashMap<u32, Vec<LiveEvent>>,
    labels: HashMap<u32, String>,
    /// Each process's role so far: its kernel events go on that lane.
    roles: HashMap<u32, Role>,
    t0: Option<u64>,
    width: usize,
}

impl Printer {
    fn run(mut self, mut observers: Observers, rx: &Receiver<LiveEvent>) -> Vec<Event> {
        let mut last = Instant::now();
        loop {
            match rx.recv_timeout(TICK) {
                Ok(ev) => self.take(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last.elapsed() >= TICK {
                last = Instant::now();
                self.kernel.extend(observers.drain());
                let cut = now_ns().saturating_sub(GRACE.as_nanos() as u64);
                self.show(cut);
            }
        }
        // The program ended: the observers' last events, then everything left.
        self.kernel.extend(observers.drain());
        for ev in observers.finish() {
            if matches!(ev.body, Body::Note(_)) {
                self.observed.push(ev);
            } else {
                self.kernel.push(ev);
            }
        }
        self.show(u64::MAX);
        self.observed
    }

    fn take(&mut self, ev: LiveEvent) {
        let pid = ev.event.pid;
        if !ev.label.is_empty() {
            self.labels.insert(pid, ev.label.clone());
        }
        if let Some(role) = ev.event.role {
            self.roles.insert(pid, role);
        }
        if is_process_event(&ev.event) && !self.related.contains(&pid) {
            self.held.entry(pid).or_default().push(ev);
            return;
        }
        if matches!(ev.event.body, Body::Syscall(_))
            && self.related.insert(pid)
            && let Some(earlier) = self.held.remove(&pid)
        {
            self.calls.extend(earlier);
        }
        self.calls.push(ev);
    }

    /// Shows what happened before `cut`, in time order.
    fn show(&mut self, cut: u64) {
        let mut ready: Vec<(Event, Option<String>)> = Vec::new();
        let (now, later): (Vec<Event>, Vec<Event>) = self.kernel.drain(..).partition(|e| e.t < cut);
        self.kernel = later;
        {
            let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            for ev in now {
                if self.keep {
                    self.observed.push(ev.clone());
                }
                if let Some(mut ev) = owners.place(ev) {
                    if let (Body::State(_), Some(&role)) = (&ev.body, self.roles.get(&ev.pid)) {
                        ev.role = Some(role);
                        ev.lane = role.lane();
                    }
                    let label = self.labels.get(&ev.pid).cloned();
                    ready.push((ev, label));
                }
            }
        }
        let (now, later): (Vec<LiveEvent>, Vec<LiveEvent>) =
            self.calls.drain(..).partition(|e| e.event.t < cut);
        self.calls = later;
        ready.extend(now.into_iter().map(|e| (e.event, Some(e.label))));
        if ready.is_empty() {
            return;
        }
        ready.sort_by_key(|(e, _)| e.t);
        let t0 = *self.t0.get_or_insert(ready[0].0.t);
        let mut text = String::new();
        for (ev, label) in &ready {
            if self.json {
                text.push_str(&serde_json::to_string(ev).expect("events serialize"));
            } else {
                match label.as_deref().filter(|l| !l.is_empty()) {
                    Some(label) => {
                        self.width = self.width.max(label.len());
                        let tag = format!("{label:<width$}  ", width = self.width);
                        text.push_str(&format_event_tagged(ev, t0, &tag));
                    }
                    None => text.push_str(&format_event(ev, t0)),
                }
            }
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        write_or_exit(&mut out, text.as_bytes(), true);
        let _ = out.flush();
    }
}
