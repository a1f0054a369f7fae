use socklab::event::Body;
use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;

#[test]
fn partial_read_needs_several_reads_for_one_write() {
    let r = super::run("partial-read", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let writes = r.calls(Client, "write");
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].ret, 3000, "one write took the whole message");
    let reads: Vec<i64> = r.calls(Server, "read").iter().map(|s| s.ret).collect();
    assert_eq!(
        reads,
        [1024, 1024, 952, 0],
        "read(1024) returns at most 1024; then EOF"
    );
    for s in r.calls(Server, "read") {
        assert_eq!(s.args["count"], 1024);
        assert!(s.errno.is_none());
    }
    assert_eq!(
        r.calls(Server, "read")[0].tcp_state,
        Some(Established),
        "TCP_INFO after the first read"
    );
    // sock_diag's Recv-Q of the server's connection, as the lab reported it.
    let queued: Vec<u32> = r
        .events
        .iter()
        .filter_map(|e| e.note())
        .filter(|n| n.key == "scenario.partial-read.queued")
        .map(|n| n.args["n"].parse().unwrap())
        .collect();
    assert_eq!(
        queued,
        [3000, 1976, 952, 0],
        "the rest stays queued in the kernel"
    );
    assert!(r.saw(Server, Established) && r.saw(Server, CloseWait));
    if super::root() {
        assert!(r.packets(), "as root packets are captured: {}", r.stderr);
        let data: u32 = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Packet(p) if p.proto == "TCP" && p.len > 0 => Some(p.len),
                _ => None,
            })
            .sum();
        assert_eq!(data, 3000, "3000 payload bytes crossed the wire");
    } else {
        crate::util::skip("needs root (the packet checks)");
    }
}
