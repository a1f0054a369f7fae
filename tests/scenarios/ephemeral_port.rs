use socklab::event::Body;
use socklab::event::Lane::{Client, Server};
use socklab::event::tcp_state::TcpState::*;
use socklab::observe::sysctl::local_port_range;

fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn kernel_picks_the_client_port_at_connect_unless_bound() {
    let r = super::run("ephemeral-port", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<String> = r
        .calls(Client, "getsockname")
        .iter()
        .map(|s| s.args["addr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(names[0], "0.0.0.0:0", "no port before connect");
    assert_eq!(names[2], "0.0.0.0:0", "no port before connect");
    let (lo, hi) = local_port_range();
    let (p1, p2) = (port(&names[1]), port(&names[3]));
    assert!(
        (lo..=hi).contains(&p1) && (lo..=hi).contains(&p2),
        "{p1} {p2} not in {lo}-{hi}"
    );
    assert_ne!(p1, p2, "two clients, two ports");

    let binds = r.calls(Client, "bind");
    assert_eq!(binds.len(), 1);
    assert_eq!(binds[0].ret, 0);
    let bound = port(binds[0].args["addr"].as_str().unwrap());
    assert_eq!(
        port(&names[4]),
        bound,
        "bind() before connect() fixes the port"
    );
    assert!(
        !(lo..=hi).contains(&bound),
        "the chosen port is outside the range"
    );

    // The server's accept4 sees the same three client ports, all to its one port.
    let mut peers: Vec<u16> = r
        .calls(Server, "accept4")
        .iter()
        .map(|s| port(s.args["addr"].as_str().unwrap()))
        .collect();
    peers.sort_unstable();
    let mut mine = vec![p1, p2, bound];
    mine.sort_unstable();
    assert_eq!(peers, mine);
    // sock_diag: three ESTABLISHED client sockets, each from its own port.
    let mut diag: Vec<u16> = r
        .events
        .iter()
        .filter(|e| e.lane == Client)
        .filter_map(|e| match &e.body {
            Body::State(st) if st.source == "sock_diag" && st.to == Established => {
                Some(port(st.local.as_deref().unwrap()))
            }
            _ => None,
        })
        .collect();
    diag.sort_unstable();
    assert_eq!(diag, mine);

    if super::root() {
        assert!(r.kernel() && r.packets(), "{}", r.stderr);
        let mut syn: Vec<u16> = r
            .events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Packet(p) if p.flags.as_deref() == Some("SYN") => Some(port(&p.src)),
                _ => None,
            })
            .collect();
        syn.sort_unstable();
        syn.dedup();
        assert_eq!(syn, mine, "each SYN left from the reported port");
        let zero = r.events.iter().any(|e| match &e.body {
            Body::State(st) => {
                st.source == "tracepoint"
                    && st.to == SynSent
                    && st.local.as_deref().map(port) == Some(0)
            }
            _ => false,
        });
        assert!(zero, "SYN_SENT is entered before the port is known");
    } else {
        crate::util::skip("needs root (the tracepoint and packet checks)");
    }
}
