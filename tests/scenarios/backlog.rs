use std::collections::HashMap;

use socklab::event::Body;
use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;

#[test]
fn backlog_fills_the_accept_queue_and_drops_later_syns_until_accept() {
    let r = super::run("backlog", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let listen = r.calls(Server, "listen");
    assert_eq!(listen.len(), 1);
    assert_eq!(listen[0].args["backlog"], 1);

    // Every connect returned at once; the last two found the queue full and stayed in
    // SYN_SENT (TCP_INFO), the first two had finished their handshake inside the call.
    let connects = r.calls(Client, "connect");
    assert_eq!(connects.len(), 4);
    for c in &connects {
        assert!(
            c.errno.as_deref() == Some("EINPROGRESS") || c.ret == 0,
            "{c:?}"
        );
    }
    let states: Vec<_> = connects.iter().map(|c| c.tcp_state).collect();
    assert_eq!(&states[2..], [Some(SynSent), Some(SynSent)], "{states:?}");

    // TCP_INFO on the listener: backlog + 1 = 2 waiting, then 0 after the accepts.
    let queues: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.lane == Server)
        .filter_map(|e| e.syscall())
        .filter_map(|s| s.queue.map(|q| (q.len, q.backlog)))
        .collect();
    assert!(queues.contains(&(2, 1)), "{queues:?}");
    assert!(!queues.iter().any(|&(len, _)| len > 2), "{queues:?}");
    assert_eq!(queues.last(), Some(&(0, 1)), "{queues:?}");

    // sock_diag: the listener's Recv-Q/Send-Q and two clients in SYN_SENT.
    // Distinct client ends sock_diag reported in a state.
    let diag = |st| {
        let mut ends: Vec<_> = r
            .events
            .iter()
            .filter(|e| e.lane == Client)
            .filter_map(|e| match &e.body {
                Body::State(s) if s.source == "sock_diag" && s.to == st => s.local.clone(),
                _ => None,
            })
            .collect();
        ends.sort();
        ends.dedup();
        ends.len()
    };
    assert!(diag(SynSent) >= 2, "two clients wait in SYN_SENT");
    assert_eq!(diag(Established), 4, "all four end ESTABLISHED");

    // Four accepts; one poll on the listener waited for the retransmitted SYNs (~1 s).
    let accepts = r.calls(Server, "accept4");
    assert_eq!(accepts.iter().filter(|a| a.ret >= 0).count(), 4);
    let waited = r
        .calls(Server, "poll")
        .iter()
        .map(|p| p.dur_ns / 1_000_000)
        .max()
        .unwrap_or(0);
    assert!(
        (800..3900).contains(&waited),
        "the longest poll waited {waited} ms, not one initial RTO"
    );

    if super::root() {
        assert!(r.kernel() && r.packets(), "{}", r.stderr);
        let established = r
            .events
            .iter()
            .filter(|e| e.lane == Client)
            .filter(|e| {
                matches!(&e.body, Body::State(s)
                    if s.source == "tracepoint" && s.from == Some(SynSent) && s.to == Established)
            })
            .count();
        assert_eq!(established, 4);
        // Per client port: the SYNs it sent (time, seq) and the SYN|ACKs it got.
        let mut syns: HashMap<String, Vec<(u64, Option<u32>)>> = HashMap::new();
        let mut synacks: HashMap<String, Vec<u64>> = HashMap::new();
        for e in &r.events {
            if let Body::Packet(p) = &e.body {
                match p.flags.as_deref() {
                    Some("SYN") => syns.entry(p.src.clone()).or_default().push((e.t, p.seq)),
                    Some("SYN|ACK") => synacks.entry(p.dst.clone()).or_default().push(e.t),
                    _ => {}
                }
            }
        }
        assert_eq!(syns.len(), 4, "{syns:?}");
        let retried: Vec<_> = syns.iter().filter(|(_, s)| s.len() == 2).collect();
        assert_eq!(
            retried.len(),
            2,
            "two clients sent their SYN twice: {syns:?}"
        );
        for (src, s) in retried {
            assert_eq!(s[0].1, s[1].1, "a retransmission repeats the seq");
            let gap_ms = (s[1].0 - s[0].0) / 1_000_000;
            assert!((800..1500).contains(&gap_ms), "{src}: {gap_ms} ms apart");
            let answers = &synacks[src];
            assert_eq!(answers.len(), 1, "only one SYN|ACK to {src}");
            assert!(answers[0] > s[1].0, "answered only after the second SYN");
        }
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
