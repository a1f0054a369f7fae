use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;

#[test]
fn reset_gives_econnreset_then_epipe_and_no_time_wait() {
    let r = super::run("reset", &[]);
    assert_eq!(r.code, 0, "a SIGPIPE death would not exit 0: {}", r.stderr);

    // Part 1: the server closed with unread data; the client's read saw the reset.
    let read = r.calls(Client, "read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].errno.as_deref(), Some("ECONNRESET"));
    assert_eq!(read[0].tcp_state, Some(Close));

    // Part 2: SO_LINGER {1, 0}; the client's writes after the RST.
    let linger: Vec<_> = r
        .calls(Server, "setsockopt")
        .iter()
        .filter(|s| s.args.get("optname").and_then(|v| v.as_str()) == Some("SO_LINGER"))
        .map(|s| s.ret)
        .collect();
    assert_eq!(linger, [0]);
    let writes: Vec<_> = r
        .calls(Client, "write")
        .iter()
        .map(|s| (s.ret, s.errno.clone(), s.tcp_state))
        .collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert_eq!(writes[0].0, 10, "part 1's unread data");
    assert_eq!(
        writes[1],
        (-1, Some("ECONNRESET".into()), Some(Close)),
        "the first write after the RST returns the pending error"
    );
    assert_eq!(writes[2], (-1, Some("EPIPE".into()), Some(Close)));
    let closes = r.calls(Client, "close");
    assert_eq!(closes.len(), 2, "the client closed after the EPIPE");

    // The client's poll woke for the RST, not for data.
    let polls = r.calls(Client, "poll");
    assert_eq!(polls.len(), 2);
    for p in &polls {
        assert_eq!(p.ret, 1);
        let fds = p.args["fds"].as_str().unwrap_or_default();
        assert!(fds.contains("POLLERR") && fds.contains("POLLHUP"), "{fds}");
    }
    assert!(!r.saw(Client, TimeWait) && !r.saw(Server, TimeWait));
    assert!(!r.saw(Server, FinWait1) && !r.saw(Client, CloseWait));

    if super::root() {
        let flags = r.flags();
        assert_eq!(
            flags.iter().filter(|f| *f == "RST|ACK").count(),
            2,
            "one RST per close: {flags:?}"
        );
        assert!(!flags.iter().any(|f| f.contains("FIN")), "{flags:?}");
        let direct = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                socklab::event::Body::State(st)
                    if st.source == "tracepoint"
                        && st.from == Some(Established)
                        && st.to == Close =>
                {
                    Some(e.lane)
                }
                _ => None,
            })
            .collect::<Vec<_>>();
        assert_eq!(
            direct.iter().filter(|l| **l == Server).count(),
            2,
            "{direct:?}"
        );
        assert_eq!(
            direct.iter().filter(|l| **l == Client).count(),
            2,
            "{direct:?}"
        );
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
