//! `--wire hold|delay=MS`: the slow-motion wire. Every TCP and UDP packet of the exchange is
//! held in the kernel and released one at a time, so the states loopback hides for microseconds
//! (SYN_SENT, SYN_RECV, a child waiting in the accept queue, FIN_WAIT1) stay there to be seen.
//!
//! Read first: iptables-extensions(8) (the NFQUEUE target, `--queue-bypass`), the kernel's
//! net/netfilter/nfnetlink_queue.c, network_namespaces(7).
//!
//! How: the demo process enters a private network namespace before it starts anything
//! ([`enter_namespace`]); an iptables rule in that namespace's OUTPUT hook hands every packet
//! of the port to queue [`QUEUE`]; a thread here reads the queue over netlink (the `nfq` crate)
//! and gives each packet its verdict: accept (release) or drop. On loopback a packet crosses
//! OUTPUT once, before the interface, so a held packet has left the sender's socket but has not
//! reached the receiver's.
//!
//! Why `iptables-nft` and not `nft`: nft's own `queue` statement needs CONFIG_NFT_QUEUE, which
//! some kernels leave out (the lab's CI kernel does: `nft ... queue` fails with ENOENT), while
//! iptables-nft's NFQUEUE target runs through nft_compat and xt_NFQUEUE. The rule still lives
//! in nf_tables (`nft list ruleset` inside the namespace shows it).
//!
//! Nothing is left behind: the rule and the queue belong to the namespace, which vanishes with
//! the demo and its children. The rule has `--queue-bypass` (packets pass while no program
//! reads the queue) and the queue is fail-open (packets pass when it is full), so a lab that
//! died cannot freeze its own children; packets still held when the lab exits are dropped by
//! the kernel and retransmitted by TCP.
//!
//! `pace` parses `--wire` and the answers, `rules` sets up the namespace and the iptables
//! rules, `queue` reads the queue and shows each packet, `source` decides its verdict.

mod pace;
mod queue;
mod rules;
mod source;

pub use pace::{Pace, Verdict, parse_answer};
pub use queue::{describe, short};
pub use rules::{enter_namespace, rules};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::course::notes;
use crate::error::Error;
use crate::event::Event;
use crate::event::record::now_ns;
use crate::sys::ffi;

use queue::{Reader, open_queue};
use rules::{Rules, in_initial_netns};
use source::Source;

/// The netfilter queue the rule sends packets to (the namespace is the lab's own: any number
/// is free).
pub const QUEUE: u16 = 0;

/// The longest one packet waits for an answer at the prompt before it is released anyway.
pub const MAX_HOLD: Duration = Duration::from_secs(600);

/// The longest `--wire delay=MS` may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// After the programs exit, the wire is done once no packet came for this long.
pub const QUIET: Duration = Duration::from_millis(300);

/// How often waits look at the queue, the clock and Ctrl-C.
const POLL: Duration = Duration::from_millis(2);

/// What the wire thread and the demo share.
#[derive(Default)]
struct Shared {
    /// Set when the demo is done: release what comes and end.
    stop: AtomicBool,
    /// A packet is held right now.
    holding: AtomicBool,
    /// When a packet last arrived or was let go (CLOCK_MONOTONIC ns).
    last: AtomicU64,
}

impl Shared {
    fn touch(&self) {
        self.last.store(now_ns(), Ordering::Release);
    }
}

/// A running slow-motion wire: the queue, its rule, and the thread that gives verdicts.
pub struct Wire {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<Vec<Event>>>,
    until: Instant,
    rules: Option<Rules>,
}

impl Wire {
    /// Binds the queue, adds the rule for `port` (in the current network namespace: call
    /// [`enter_namespace`] first) and starts giving verdicts at `pace`.
    pub fn start(port: u16, pace: Pace) -> Result<Wire, Error> {
        if in_initial_netns() {
            return Err(Error::Other(
                "--wire: refusing to queue packets in the host's own network namespace: call \
                 wire::enter_namespace() first"
                    .into(),
            ));
        }
        let queue = open_queue()?;
        let rules = Rules::add(port)?;
        let shared = Arc::new(Shared::default());
        shared.touch();
        let until = Instant::now() + pace.deadline();
        let mut reader = Reader::new(queue, port, Source::new(pace), Arc::clone(&shared), until);
        let handle = thread::Builder::new()
            .name("socklab-wire".into())
            .spawn(move || {
                reader.run();
                reader.events
            })
            .map_err(|e| Error::Other(format!("--wire: cannot start its thread: {e}")))?;
        eprintln!(
            "{}",
            notes::text(
                "wire.start",
                &[("port", port.to_string()), ("queue", QUEUE.to_string())]
            )
        );
        Ok(Wire {
            shared,
            handle: Some(handle),
            until,
            rules: Some(rules),
        })
    }

    /// Waits (bounded, interruptible) until no packet is held and none came for [`QUIET`]:
    /// after the programs exit, their last FINs and ACKs still cross the wire.
    pub fn settle(&self) {
        while !ffi::interrupted() && Instant::now() < self.until {
            let idle = now_ns().saturating_sub(self.shared.last.load(Ordering::Acquire));
            if !self.shared.holding.load(Ordering::Acquire) && idle >= QUIET.as_nanos() as u64 {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the wire and returns its events: each packet when it was let go, a note with
    /// how long it was held, and the sockets sock_diag showed meanwhile.
    pub fn finish(mut self) -> Vec<Event> {
        self.stop()
    }

    fn stop(&mut self) -> Vec<Event> {
        self.shared.stop.store(true, Ordering::Release);
        let events = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        // After the reader: packets queued meanwhile still get their verdict.
        self.rules = None;
        events
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_in_the_hosts_namespace() {
        if !in_initial_netns() {
            println!("skipped: this test runs outside init's network namespace");
            return;
        }
        let e = Wire::start(1, Pace::Script(Vec::new()))
            .err()
            .expect("refused");
        assert!(
            e.to_string().contains("host's own network namespace"),
            "{e}"
        );
    }
}
