use socklab::event::Body;
use socklab::event::Lane::{Client, Server};

#[test]
fn udp_keeps_boundaries_has_no_states_and_reports_icmp() {
    let r = super::run("udp", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for s in r
        .calls(Server, "socket")
        .iter()
        .chain(&r.calls(Client, "socket"))
    {
        assert_eq!(s.args["type"], "SOCK_DGRAM|SOCK_CLOEXEC");
    }
    assert!(r.states().next().is_none(), "no TCP state at all on UDP");
    assert!(r.calls(Server, "listen").is_empty() && r.calls(Server, "accept4").is_empty());

    let sendto = r.calls(Client, "sendto");
    let sent: Vec<i64> = sendto.iter().map(|s| s.ret).collect();
    assert_eq!(
        sent,
        [5, 300, 1200, 7],
        "three sendto, then send on the connected socket"
    );
    let mut got: Vec<i64> = r.calls(Server, "recvfrom").iter().map(|s| s.ret).collect();
    got.sort_unstable();
    assert_eq!(got, [5, 300, 1200], "one datagram per recvfrom, sizes kept");
    for s in r.calls(Server, "recvfrom") {
        assert_eq!(
            s.args["len"], 2048,
            "the buffer was larger than every datagram"
        );
    }

    let recv = r.calls(Client, "recvfrom");
    assert_eq!(recv.len(), 1);
    assert_eq!(recv[0].ret, -1);
    assert_eq!(recv[0].errno.as_deref(), Some("ECONNREFUSED"));
    assert!(recv[0].tcp_state.is_none());

    if super::root() {
        assert!(r.packets(), "as root packets are captured: {}", r.stderr);
        let packets: Vec<(String, Option<String>, u32)> = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Packet(p) => Some((p.proto.clone(), p.flags.clone(), p.len)),
                _ => None,
            })
            .collect();
        let udp: Vec<u32> = packets
            .iter()
            .filter(|p| p.0 == "UDP")
            .map(|p| p.2)
            .collect();
        assert_eq!(
            udp,
            [5, 300, 1200, 7],
            "one datagram per sendto: {packets:?}"
        );
        assert!(packets.iter().all(|p| p.0 != "TCP"), "{packets:?}");
        assert!(
            packets
                .iter()
                .any(|p| p.0 == "ICMP" && p.1.as_deref() == Some("dest-unreachable/port")),
            "{packets:?}"
        );
    } else {
        crate::util::skip("needs root (the packet checks)");
    }
}
