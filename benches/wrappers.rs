//! What the logged wrappers cost over calling nix directly.
//!
//! One iteration: write 1 byte on one end of a loopback TCP connection and read it on the
//! other (two syscalls, no blocking). Compare `nix_direct` with `socklab_logging_off` (the
//! wrappers must cost nothing measurable) and with `socklab_json_log` (every event serialized
//! as JSON, TCP_INFO probed after each call), and with `socklab_json_log_no_probe` (the same
//! without the TCP_INFO reads: the lab's own work per event).
//!
//! Run: `cargo bench --bench wrappers`.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;

use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use socklab::event::record::{self, Options};
use socklab::render::live::json::JsonLines;
use socklab::sys::{self, Domain, Flags, Type};

/// A connected pair (client, accepted server side) on loopback.
fn pair() -> (OwnedFd, OwnedFd) {
    let l = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).expect("socket");
    sys::bind(
        &l,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
    )
    .expect("bind");
    sys::listen(&l, 1).expect("listen");
    let addr = sys::getsockname(&l).expect("getsockname");
    let c = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).expect("socket");
    sys::connect(&c, addr).expect("connect");
    let (s, _) = sys::accept4(&l, Flags::SOCK_CLOEXEC).expect("accept4");
    sys::close(l).expect("close");
    (c, s)
}

/// Starts logging every event as JSON into nothing (`io::sink`), with or without TCP_INFO.
fn log_json(probe: bool) {
    record::install(
        Box::new(JsonLines::new(std::io::sink(), false)),
        Options {
            probe,
            // Every call probed: the cost per call, not per sample.
            probe_all: true,
            narrate: true,
        },
    );
}

fn bench(c: &mut Criterion) {
    // Made with logging on, so that the lab knows both sockets (TCP, their addresses) and the
    // logged runs below do all their work: probe, addresses, notes.
    log_json(true);
    let (a, b) = pair();
    record::uninstall();
    let mut buf = [0u8; 16];
    let mut g = c.benchmark_group("write+read 1 byte");

    g.bench_function("nix_direct", |bench| {
        bench.iter(|| {
            nix::unistd::write(&a, black_box(b"x")).expect("write");
            black_box(nix::unistd::read(&b, &mut buf).expect("read"));
        })
    });

    // The same round trip through the wrappers, in each logging setup below.
    let mut through_socklab = |bench: &mut Bencher| {
        bench.iter(|| {
            sys::write(&a, black_box(b"x")).expect("write");
            black_box(sys::read(&b, &mut buf).expect("read"));
        })
    };
    g.bench_function("socklab_logging_off", &mut through_socklab);

    log_json(true);
    g.bench_function("socklab_json_log", &mut through_socklab);
    record::uninstall();

    // The same without the TCP_INFO reads: what building and writing the events costs.
    log_json(false);
    g.bench_function("socklab_json_log_no_probe", &mut through_socklab);
    record::uninstall();
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
