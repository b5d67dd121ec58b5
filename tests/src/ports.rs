//! Free loopback ports for the servers of one test.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports this test process already handed out: never twice, so parallel tests of one
/// process cannot collide even when a server is down and its port looks free.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// `count` distinct ports on 127.0.0.1 that nothing listened on when they were chosen.
///
/// Ports come from below the kernel's ephemeral range when it leaves room (the usual
/// Linux range starts at 32768): binding port 0 would return an ephemeral port, and
/// while a test has a server down, another process's outgoing connection may take that
/// port as its local port, so the restarted server would find it in use. Ports below
/// the range are never given to outgoing connections. The embedded default's ports
/// (7001-7005, 7101-7105) are avoided. Each candidate is checked by binding it.
///
/// # Panics
///
/// When no free port turns up after many tries.
pub fn free_ports(count: usize) -> Vec<u16> {
    let (low, high) = candidate_range();
    let random = RandomState::new();
    let mut handed_out = HANDED_OUT.lock().expect("port registry lock");

    let mut ports = Vec::with_capacity(count);
    let mut attempt: u64 = 0;
    while ports.len() < count {
        attempt += 1;
        assert!(attempt < 100_000, "no free loopback port in {low}..{high}");

        let span = u64::from(high - low);
        let port = low + (random.hash_one((attempt, std::process::id())) % span) as u16;
        if (7000..7200).contains(&port) || handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    ports
}

/// The range ports are drawn from: below the ephemeral range if there is room there,
/// else the whole unprivileged range.
fn candidate_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok());
    match ephemeral_low {
        Some(low) if low > 12_000 => (10_000, low),
        _ => (1024, u16::MAX),
    }
}
