//! Helpers shared by the integration tests: clusters on free loopback ports, waiting
//! for connections, collecting messages with generous timeouts.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::{Config, Envelope, PeerEvent, Server, ServerId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket};

/// Upper bound for anything that should happen quickly; only reached on failure.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The message type most tests send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub seq: u64,
    pub text: String,
}

pub fn note(seq: u64) -> Note {
    Note {
        seq,
        text: format!("note {seq}"),
    }
}

/// Binds a listener on a free loopback port, with SO_REUSEADDR like the server's own.
pub fn free_listener() -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    socket.listen(1024).expect("listen")
}

/// A configuration of `n` servers on free ports, and their bound listeners.
pub fn loopback_cluster(n: u64) -> (Config, Vec<TcpListener>) {
    let listeners: Vec<TcpListener> = (0..n).map(|_| free_listener()).collect();
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr"))
        .collect();
    let config = Config::new((1..=n).zip(addrs));
    (config, listeners)
}

/// Starts every server of a fresh loopback cluster and waits until all are connected.
pub async fn start_tcp<M>(n: u64) -> (Config, Vec<Server<M>>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let (config, listeners) = loopback_cluster(n);
    start_on(config, listeners).await
}

/// Starts servers on the given listeners (server i+1 on listener i).
pub async fn start_on<M>(config: Config, listeners: Vec<TcpListener>) -> (Config, Vec<Server<M>>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let mut servers = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let server = Server::start_with_listener(&config, i as u64 + 1, listener)
            .await
            .expect("server starts");
        servers.push(server);
    }
    for server in &mut servers {
        wait_connected(server).await;
    }
    (config, servers)
}

/// Waits until `server` has reported `Connected` for every peer.
pub async fn wait_connected<M>(server: &mut Server<M>) {
    let peers: BTreeSet<ServerId> = server.peers().iter().copied().collect();
    wait_connected_to(server, &peers).await;
}

/// Waits until `server` has reported `Connected` for each of `peers`.
pub async fn wait_connected_to<M>(server: &mut Server<M>, peers: &BTreeSet<ServerId>) {
    let mut connected = BTreeSet::new();
    let id = server.id();
    tokio::time::timeout(PATIENCE, async {
        while !peers.is_subset(&connected) {
            match server.next_event().await {
                Some(PeerEvent::Connected(peer)) => {
                    connected.insert(peer);
                }
                Some(PeerEvent::Disconnected(peer)) => {
                    connected.remove(&peer);
                }
                Some(_) => {}
                None => panic!("server {id} stopped while waiting for connections"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("server {id} did not connect to {peers:?}"));
}

/// Waits for the next event of `server` matching `wanted`.
pub async fn wait_event<M>(server: &mut Server<M>, wanted: PeerEvent) {
    let id = server.id();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match server.next_event().await {
                Some(event) if event == wanted => return,
                Some(_) => {}
                None => panic!("server {id} stopped while waiting for {wanted:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("server {id} never reported {wanted:?}"));
}

/// Receives exactly `count` envelopes, failing after `PATIENCE`.
pub async fn recv_n<M>(server: &mut Server<M>, count: usize) -> Vec<Envelope<M>> {
    let id = server.id();
    let mut got = Vec::with_capacity(count);
    let outcome = tokio::time::timeout(PATIENCE, async {
        while got.len() < count {
            match server.recv().await {
                Some(envelope) => got.push(envelope),
                None => break,
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok() && got.len() == count,
        "server {id} received {} of {count} messages",
        got.len()
    );
    got
}

/// Receives whatever arrives until nothing has arrived for `quiet`.
pub async fn recv_until_quiet<M>(server: &mut Server<M>, quiet: Duration) -> Vec<Envelope<M>> {
    let mut got = Vec::new();
    while let Ok(Some(envelope)) = tokio::time::timeout(quiet, server.recv()).await {
        got.push(envelope);
    }
    got
}

/// Counts envelopes by sender.
pub fn count_by_sender<M>(envelopes: &[Envelope<M>]) -> BTreeMap<ServerId, usize> {
    let mut counts = BTreeMap::new();
    for envelope in envelopes {
        *counts.entry(envelope.from).or_insert(0) += 1;
    }
    counts
}

/// Shuts every server down.
pub async fn shutdown_all<M>(servers: Vec<Server<M>>) {
    for server in servers {
        server.shutdown().await;
    }
}

/// An introduction frame as a raw peer writes it: length prefix, magic "CLST", version,
/// sender id, cluster-name length, cluster name.
pub fn hello(version: u16, cluster: impl AsRef<[u8]>, sender: u64) -> Vec<u8> {
    let name = cluster.as_ref();
    let mut payload = b"CLST".to_vec();
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&sender.to_be_bytes());
    payload.push(name.len() as u8);
    payload.extend_from_slice(name);

    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend(payload);
    frame
}

/// Log output captured from the current thread (a current-thread test runtime runs
/// every task of the servers on it).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

/// Captures warnings and errors logged on this thread while the guard lives.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}
