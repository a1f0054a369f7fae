use socklab::event::Body;
use socklab::event::Lane::Client;
use socklab::event::tcp_state::TcpState::*;

#[test]
fn nonblocking_connect_returns_einprogress_and_so_error_tells_the_outcome() {
    let r = super::run("nonblocking-connect", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let fcntl = r.calls(Client, "fcntl");
    assert_eq!(fcntl.len(), 2);
    assert!(fcntl.iter().all(|f| f.args["flags"] == "O_NONBLOCK"));

    // One blocking connect (fills the queue), then two non-blocking ones that return at once.
    let connects: Vec<_> = r
        .calls(Client, "connect")
        .iter()
        .map(|c| (c.ret, c.errno.clone(), c.tcp_state))
        .collect();
    assert_eq!(connects.len(), 3, "{connects:?}");
    assert_eq!(connects[0], (0, None, Some(Established)));
    assert_eq!(
        connects[1],
        (-1, Some("EINPROGRESS".into()), Some(SynSent)),
        "the queue is full: the SYN was dropped and the call did not wait"
    );
    assert_eq!(connects[2].1.as_deref(), Some("EINPROGRESS"));
    assert!(
        matches!(connects[2].2, Some(SynSent | Close)),
        "{connects:?}"
    );
    for c in r.calls(Client, "connect").iter().skip(1) {
        assert!(c.dur_ns < 100_000_000, "connect waited {} ns", c.dur_ns);
    }

    // poll(POLLOUT): 0 in SYN_SENT; 1 after the retransmitted SYN (about 1 s); then 1 with
    // POLLERR for the refused one.
    let polls = r.calls(Client, "poll");
    assert_eq!(polls.len(), 3);
    assert_eq!((polls[0].ret, polls[0].tcp_state), (0, Some(SynSent)));
    assert_eq!((polls[1].ret, polls[1].tcp_state), (1, Some(Established)));
    let waited_ms = polls[1].dur_ns / 1_000_000;
    assert!(
        (800..3900).contains(&waited_ms),
        "waited {waited_ms} ms, not one initial RTO"
    );
    let fds = |i: usize| {
        polls[i].args["fds"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(fds(1).contains("revents=POLLOUT}"), "{}", fds(1));
    assert_eq!(polls[2].ret, 1);
    assert!(
        fds(2).contains("POLLOUT") && fds(2).contains("POLLERR") && fds(2).contains("POLLHUP"),
        "{}",
        fds(2)
    );
    assert_eq!(polls[2].tcp_state, Some(Close));

    // SO_ERROR tells the outcome.
    let so_error: Vec<_> = r
        .calls(Client, "getsockopt")
        .iter()
        .filter(|s| s.args["optname"] == "SO_ERROR")
        .map(|s| {
            (
                s.ret,
                s.args["optval"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        so_error,
        [(0, "0".to_string()), (0, "ECONNREFUSED".to_string())]
    );

    if super::root() {
        assert!(r.kernel() && r.packets(), "{}", r.stderr);
        let tp = |from, to| {
            r.events.iter().any(|e| {
                e.lane == Client
                    && matches!(&e.body, Body::State(s)
                        if s.source == "tracepoint" && s.from == Some(from) && s.to == to)
            })
        };
        assert!(tp(SynSent, Established) && tp(SynSent, Close));
        let flags = r.flags();
        assert_eq!(
            flags.iter().filter(|f| *f == "SYN").count(),
            4,
            "first client, the dropped SYN, its retransmission, the refused one: {flags:?}"
        );
        assert_eq!(flags.iter().filter(|f| *f == "SYN|ACK").count(), 2);
        let last_syn = flags.iter().rposition(|f| f == "SYN").unwrap_or(0);
        assert!(
            flags[last_syn..].iter().any(|f| f == "RST|ACK"),
            "the refused SYN is answered by RST|ACK: {flags:?}"
        );
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
