//! The status address: a tiny line protocol through which `raft-node status` asks each
//! server how it is doing and `raft-node transfer` asks the leader to hand over.
//!
//! # Protocol
//!
//! One request per connection. The client connects and sends one line (at most
//! [`MAX_REQUEST`] bytes, ending in `\n`); the server answers with one JSON line and
//! closes the connection:
//!
//! - `status` → the server's [`StatusReport`], for example
//!   `{"id":2,"role":"follower","term":4,"leader":5,"voted_for":5,"since_leader_ms":12}`;
//! - `transfer` → the leader hands its leadership to the connected peer it heard from
//!   most recently; `transfer ID` → to server ID. The answer is a [`TransferReply`]:
//!   `{"id":5,"ok":true,"to":3}` once the hand-over has been sent, or
//!   `{"id":2,"ok":false,"error":"not the leader (the leader is 5)","leader":5}`;
//! - the fault commands below → a [`FaultReply`];
//! - anything else (or a line too long, or not UTF-8) → `{"error":"…"}`.
//!
//! ## Fault commands
//!
//! With `enabled = true` in the configuration's `[faults]` section, these requests
//! change what this server drops or delays (`cluster`'s fault layer), for tests and
//! demonstrations. They act at this server only; a partition between two servers is
//! made by blocking at either or both ends.
//!
//! - `block ID...` → drop every message to and from each peer ID;
//! - `block-out ID...` → drop every message this server sends to them;
//! - `block-in ID...` → drop every message this server receives from them;
//! - `delay ID MIN_MS MAX_MS` → delay each message sent to ID by a uniformly drawn time
//!   in `MIN_MS..=MAX_MS`, each independently, so they may be reordered (`0 0` clears);
//! - `loss ID PERCENT` → drop that share (0 to 100, decimals allowed) of the messages
//!   sent to ID;
//! - `heal` → clear every fault at this server;
//! - `faults` → change nothing, report.
//!
//! Each answers with this server's faults, one entry per peer:
//! `{"id":1,"ok":true,"faults":[{"peer":2,"block_out":true,"block_in":true,
//! "delay_min_ms":0,"delay_max_ms":0,"loss_percent":0.0},…]}`, or `ok` false and an
//! `error` (an unknown peer, a malformed line; nothing is changed then). Without
//! `[faults]` enabled every fault command answers
//! `{"id":1,"ok":false,"error":"faults are disabled in the configuration …"}`.
//!
//! A client that sends nothing within [`LEGACY_GRACE`] after connecting gets the status
//! line, as the first version of this protocol did (it only wrote the status line on
//! connect), so old clients keep working; they pay that grace in latency. A client
//! that stalls mid-request is cut off after [`REQUEST_TIMEOUT`].
//!
//! ## Over TLS
//!
//! With a `[tls]` section the status address speaks the same protocol inside mutual
//! TLS 1.3: the server presents its own certificate and requires one from the
//! cluster's authority (any of its certificates: a server's, or the `client_cert` that
//! `raft-node status` and `transfer` present; see [`StatusClient`]). There is no
//! legacy grace over TLS: the client must send its request.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use cluster::{Faults, LinkFaults};
use raft::{CommandError, DriverHandle, TransferError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The longest request line a server reads, newline included.
pub const MAX_REQUEST: u64 = 256;

/// How long a server waits for a request before it answers with its status.
pub const LEGACY_GRACE: Duration = Duration::from_millis(3);

/// How long a client may take to send a whole request, and the server to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The answer to a `transfer` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReply {
    /// The id of the server that answered.
    pub id: u64,
    /// Whether the hand-over was sent.
    pub ok: bool,
    /// The server leadership is handed to, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// Why not, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The leader the answering server knows of, when it is not the leader itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
}

/// The answer to a fault command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultReply {
    /// The id of the server that answered.
    pub id: u64,
    /// Whether the command was carried out.
    pub ok: bool,
    /// This server's faults after the command, one entry per peer, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<Vec<LinkReport>>,
    /// Why not, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The faults of the link between the answering server and one peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    /// The peer.
    pub peer: u64,
    /// Messages to the peer are dropped.
    pub block_out: bool,
    /// Messages from the peer are dropped.
    pub block_in: bool,
    /// Shortest extra delay of a message to the peer, in milliseconds.
    pub delay_min_ms: u64,
    /// Longest extra delay of a message to the peer, in milliseconds.
    pub delay_max_ms: u64,
    /// Share of messages to the peer dropped at random, in percent.
    pub loss_percent: f64,
}

impl LinkReport {
    fn of(peer: u64, link: &LinkFaults) -> LinkReport {
        LinkReport {
            peer,
            block_out: link.block_outgoing,
            block_in: link.block_incoming,
            delay_min_ms: link.delay_min.as_millis() as u64,
            delay_max_ms: link.delay_max.as_millis() as u64,
            loss_percent: link.loss * 100.0,
        }
    }
}

/// The words that start a fault command.
const FAULT_COMMANDS: [&str; 7] = [
    "block",
    "block-out",
    "block-in",
    "delay",
    "loss",
    "heal",
    "faults",
];

/// The answer to every fault command when the configuration leaves the layer off.
const FAULTS_DISABLED: &str =
    "faults are disabled in the configuration (set enabled = true in its [faults] section)";

use crate::config::NodeConfig;

/// What a running server says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The server's id.
    pub id: u64,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// The server's current term.
    pub term: u64,
    /// The leader it knows of, if any.
    pub leader: Option<u64>,
    /// The server it voted for in its current term, if any.
    #[serde(default)]
    pub voted_for: Option<u64>,
    /// Milliseconds since it last heard from its leader (or, for a leader, since it was
    /// elected or last confirmed by a majority); `None` if it never heard from one.
    pub since_leader_ms: Option<u64>,
}

/// One row of `raft-node status`: a configured server and, if it answered, its report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    /// The server's id.
    pub id: u64,
    /// Its status address, as configured.
    pub address: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Its role, or `None` when unreachable.
    pub role: Option<String>,
    /// Its term, or `None` when unreachable.
    pub term: Option<u64>,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The server it voted for in its current term, if any.
    pub voted_for: Option<u64>,
    /// Milliseconds since it last heard from its leader.
    pub since_leader_ms: Option<u64>,
}

impl StatusReport {
    /// The report of a node's status, measured now.
    pub fn of(status: &raft::Status) -> StatusReport {
        StatusReport {
            id: status.id,
            role: status.role.as_str().to_string(),
            term: status.term,
            leader: status.leader,
            voted_for: status.voted_for,
            since_leader_ms: status.since_leader_heard().map(|d| d.as_millis() as u64),
        }
    }
}

/// Answers every connection on `listener` with one line of the protocol in the module
/// documentation, until the task is aborted. Nothing a client sends can panic it.
///
/// `faults` is the server's fault layer, `None` when the configuration leaves it off;
/// `tls` requires mutual TLS of every client.
pub async fn serve(
    listener: TcpListener,
    status: watch::Receiver<raft::Status>,
    handle: DriverHandle,
    faults: Option<Faults>,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let Ok((stream, addr)) = listener.accept().await else {
            continue;
        };
        let (status, handle, faults) = (status.clone(), handle.clone(), faults.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let answering = answer(stream, addr, tls, status, handle, faults);
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answering).await;
        });
    }
}

/// Reads one request (or none, for a legacy client) and writes its answer.
async fn answer(
    mut stream: TcpStream,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    status: watch::Receiver<raft::Status>,
    handle: DriverHandle,
    faults: Option<Faults>,
) -> std::io::Result<()> {
    if let Some(acceptor) = tls {
        let mut stream = match acceptor.accept(stream).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%addr, reason = %e, "status client refused");
                return Err(e);
            }
        };
        let request = read_request(&mut stream).await;
        return respond(stream, request, status, handle, faults).await;
    }

    // Peeking waits for the first byte of a request without consuming it; a client
    // that sends nothing (or closes at once) is a legacy status client.
    let mut first = [0u8; 1];
    let request = match tokio::time::timeout(LEGACY_GRACE, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => read_request(&mut stream).await,
        Ok(_) | Err(_) => Ok(String::new()),
    };
    respond(stream, request, status, handle, faults).await
}

/// Answers `request` on `stream` and closes it.
async fn respond<S>(
    mut stream: S,
    request: Result<String, &'static str>,
    status: watch::Receiver<raft::Status>,
    handle: DriverHandle,
    faults: Option<Faults>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = status.borrow().id;
    let mut line = match request.as_deref().map(str::trim) {
        Ok("" | "status") => to_json(&StatusReport::of(&status.borrow())),
        Ok("transfer") => transfer(id, &handle, None).await,
        Ok(other) if is_fault_command(other) => fault_command(id, faults.as_ref(), other),
        Ok(other) => match other.strip_prefix("transfer ").map(|n| n.trim().parse()) {
            Some(Ok(to)) => transfer(id, &handle, Some(to)).await,
            _ => error_line(&format!("unknown request {:?}", shorten(other))),
        },
        Err(problem) => error_line(problem),
    };
    line.push(b'\n');

    stream.write_all(&line).await?;
    stream.shutdown().await?;

    // Whatever the client sent beyond the request (an overlong line) is read and
    // dropped: closing with unread data would reset the connection and could destroy
    // the answer before the client reads it.
    let mut rest = (&mut stream).take(64 * 1024);
    tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
    Ok(())
}

/// The request line without its newline, or why it is unusable.
async fn read_request<S>(stream: &mut S) -> Result<String, &'static str>
where
    S: AsyncRead + Unpin,
{
    let mut reader = BufReader::new(stream).take(MAX_REQUEST);
    let mut bytes = Vec::new();
    match reader.read_until(b'\n', &mut bytes).await {
        Err(_) => return Err("the request could not be read"),
        Ok(_) if bytes.len() as u64 >= MAX_REQUEST && !bytes.ends_with(b"\n") => {
            return Err("request too long");
        }
        Ok(_) => {}
    }
    String::from_utf8(bytes).map_err(|_| "the request is not UTF-8")
}

async fn transfer(id: u64, handle: &DriverHandle, to: Option<u64>) -> Vec<u8> {
    let reply = match handle.transfer_leadership(to).await {
        Ok(to) => TransferReply {
            id,
            ok: true,
            to: Some(to),
            error: None,
            leader: None,
        },
        Err(error) => {
            let leader = match error {
                CommandError::Refused(TransferError::NotLeader { leader }) => leader,
                _ => None,
            };
            TransferReply {
                id,
                ok: false,
                to: None,
                error: Some(error.to_string()),
                leader,
            }
        }
    };
    to_json(&reply)
}

fn is_fault_command(line: &str) -> bool {
    let verb = line.split_whitespace().next().unwrap_or("");
    FAULT_COMMANDS.contains(&verb)
}

/// Carries out one fault command and answers with the faults it leaves in place.
fn fault_command(id: u64, faults: Option<&Faults>, line: &str) -> Vec<u8> {
    let result = match faults {
        None => Err(FAULTS_DISABLED.to_string()),
        Some(faults) => apply_fault(faults, line),
    };

    let reply = match result {
        Ok(()) => {
            tracing::info!(node = id, request = line, "fault command carried out");
            // Cannot be `None`: the command succeeded, so the layer is on.
            let links = faults.map(Faults::links).unwrap_or_default();
            FaultReply {
                id,
                ok: true,
                faults: Some(links.iter().map(|(p, l)| LinkReport::of(*p, l)).collect()),
                error: None,
            }
        }
        Err(error) => FaultReply {
            id,
            ok: false,
            faults: None,
            error: Some(error),
        },
    };
    to_json(&reply)
}

/// Parses a fault command (see the module documentation) and applies it. Every
/// argument is checked before anything changes.
fn apply_fault(faults: &Faults, line: &str) -> Result<(), String> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    let peer = |text: &str| -> Result<u64, String> {
        let peer = text
            .parse()
            .map_err(|_| format!("{:?} is not a server id", shorten(text)))?;
        faults.link(peer).map_err(|e| e.to_string())?;
        Ok(peer)
    };
    let number = |text: &str| -> Result<f64, String> {
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
            _ => Err(format!("{:?} is not a number of at least 0", shorten(text))),
        }
    };
    let usage = |form: &str| Err(format!("usage: {form}"));

    match (verb, args.as_slice()) {
        ("block" | "block-out" | "block-in", []) => usage(&format!("{verb} ID...")),
        ("block" | "block-out" | "block-in", ids) => {
            let peers = ids
                .iter()
                .map(|text| peer(text))
                .collect::<Result<Vec<_>, _>>()?;
            let (outgoing, incoming) = (verb != "block-in", verb != "block-out");
            for peer in peers {
                let blocked = faults.update(peer, |link| {
                    link.block_outgoing |= outgoing;
                    link.block_incoming |= incoming;
                });
                blocked.map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        ("delay", [to, min, max]) => {
            let to = peer(to)?;
            let (min, max) = (number(min)?, number(max)?);
            let (min, max) = (
                Duration::from_millis(min as u64),
                Duration::from_millis(max as u64),
            );
            faults.set_delay(to, min, max).map_err(|e| e.to_string())
        }
        ("delay", _) => usage("delay ID MIN_MS MAX_MS"),
        ("loss", [to, percent]) => {
            let to = peer(to)?;
            let percent = number(percent)?;
            if percent > 100.0 {
                return Err(format!("{percent} is not a percentage from 0 to 100"));
            }
            faults
                .set_loss(to, percent / 100.0)
                .map_err(|e| e.to_string())
        }
        ("loss", _) => usage("loss ID PERCENT"),
        ("heal", []) => {
            faults.heal();
            Ok(())
        }
        ("heal", _) => usage("heal"),
        ("faults", []) => Ok(()),
        _ => usage("faults"),
    }
}

fn error_line(problem: &str) -> Vec<u8> {
    to_json(&serde_json::json!({ "error": problem }))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Cannot fail: every answer is plain data with string keys.
    serde_json::to_vec(value).expect("answers serialise")
}

/// At most 40 characters of a client's text, for an error message.
fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// How long one server may take to answer before it counts as unreachable.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// How `raft-node status` and `transfer` reach the status addresses: plain TCP, or
/// with `[tls]` mutual TLS presenting the configuration's `client_cert` and checking
/// that each server's certificate is bound to the id asked.
#[derive(Clone, Debug)]
pub struct StatusClient {
    tls: Option<cluster::TlsIdentity>,
}

impl StatusClient {
    /// The client `config` asks for; fails, naming the file and the field, when its
    /// TLS files cannot be used.
    pub fn new(config: &NodeConfig) -> anyhow::Result<StatusClient> {
        let Some(tls) = &config.tls else {
            return Ok(StatusClient { tls: None });
        };
        let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) else {
            anyhow::bail!(
                "{}: tls.client_cert: needed to reach the status addresses over TLS \
                 (raft-node certs writes one)",
                config.source
            );
        };
        let identity = cluster::TlsIdentity::load(&tls.ca, cert, key, &config.cluster_name)
            .map_err(|e| client_field(e.to_string()))
            .with_context(|| config.source.clone())?;
        Ok(StatusClient {
            tls: Some(identity),
        })
    }

    /// Sends one request line to server `id` at `address` and returns the answer line.
    pub async fn request(
        &self,
        id: u64,
        address: SocketAddr,
        line: &str,
    ) -> anyhow::Result<String> {
        let Some(tls) = &self.tls else {
            return request(address, line).await;
        };
        let exchange = async {
            let stream = TcpStream::connect(address).await?;
            let connector = TlsConnector::from(tls.client_config());
            let stream = connector.connect(tls.name_of(id), stream).await?;
            exchange(stream, line).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("{address} did not answer within {REQUEST_TIMEOUT:?}"))?
    }
}

/// The status client's certificate and key are `client_cert` and `client_key` in the
/// file, though `cluster` calls every certificate `cert`.
fn client_field(message: String) -> anyhow::Error {
    let message = message
        .replacen("tls.cert:", "tls.client_cert:", 1)
        .replacen("tls.key:", "tls.client_key:", 1);
    anyhow::anyhow!(message)
}

/// Asks every server of `config` at once and returns one row per server, by id.
/// Fails only when the configuration's TLS files for the client cannot be used.
pub async fn query_all(config: &NodeConfig) -> anyhow::Result<Vec<StatusRow>> {
    let client = StatusClient::new(config)?;
    Ok(query_with(config, &client).await)
}

/// Asks every server of `config` at once through `client`.
pub async fn query_with(config: &NodeConfig, client: &StatusClient) -> Vec<StatusRow> {
    let queries = config.servers.iter().map(|server| {
        let (id, address) = (server.id, server.status_address);
        let client = client.clone();
        tokio::spawn(async move {
            let query = async {
                let text = client.request(id, address, "status").await?;
                anyhow::Ok(serde_json::from_str::<StatusReport>(&text)?)
            };
            let report = tokio::time::timeout(QUERY_TIMEOUT, query).await;
            let report = report
                .ok()
                .and_then(Result::ok)
                .filter(|report| report.id == id);
            row(id, address, report)
        })
    });

    let mut rows = Vec::new();
    for query in queries.collect::<Vec<_>>() {
        // Cannot fail: the query task neither panics nor is aborted.
        rows.push(query.await.expect("status query task"));
    }
    rows
}

/// Sends one request line to a status address over plain TCP and returns the answer
/// line.
pub async fn request(address: SocketAddr, line: &str) -> anyhow::Result<String> {
    let exchange = async { exchange(TcpStream::connect(address).await?, line).await };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{address} did not answer within {REQUEST_TIMEOUT:?}"))?
}

async fn exchange<S>(mut stream: S, line: &str) -> anyhow::Result<String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    stream.flush().await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

fn row(id: u64, address: SocketAddr, report: Option<StatusReport>) -> StatusRow {
    StatusRow {
        id,
        address: address.to_string(),
        reachable: report.is_some(),
        role: report.as_ref().map(|r| r.role.clone()),
        term: report.as_ref().map(|r| r.term),
        leader: report.as_ref().and_then(|r| r.leader),
        voted_for: report.as_ref().and_then(|r| r.voted_for),
        since_leader_ms: report.as_ref().and_then(|r| r.since_leader_ms),
    }
}

/// The rows as a table for a terminal.
pub fn table(rows: &[StatusRow]) -> String {
    let mut out = format!(
        "{:>3}  {:<21}  {:<9}  {:<13}  {:>5}  {:>6}  {:>5}  {:>10}\n",
        "ID", "ADDRESS", "REACHABLE", "ROLE", "TERM", "LEADER", "VOTED", "LAST HEARD"
    );
    let dash = || "-".to_string();
    for row in rows {
        let term = row.term.map_or_else(dash, |t| t.to_string());
        let leader = row.leader.map_or_else(dash, |l| l.to_string());
        let voted = row.voted_for.map_or_else(dash, |v| v.to_string());
        let heard = row
            .since_leader_ms
            .map_or_else(dash, |ms| format!("{ms} ms"));
        out.push_str(&format!(
            "{:>3}  {:<21}  {:<9}  {:<13}  {:>5}  {:>6}  {:>5}  {:>10}\n",
            row.id,
            row.address,
            if row.reachable { "yes" } else { "no" },
            row.role.as_deref().unwrap_or("-"),
            term,
            leader,
            voted,
            heard,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over TLS the status commands need a client certificate: without one the error
    /// names the file and the field; without `[tls]` they need nothing.
    #[test]
    fn a_tls_configuration_without_a_client_certificate_is_refused_naming_the_field() {
        let mut config = NodeConfig::embedded_default();
        assert!(StatusClient::new(&config).is_ok());

        config.tls = Some(crate::config::TlsSection {
            ca: "ca.pem".into(),
            cert: "server-{id}.pem".into(),
            key: "server-{id}-key.pem".into(),
            client_cert: None,
            client_key: None,
        });
        let error = StatusClient::new(&config).unwrap_err().to_string();
        assert!(
            error.starts_with("(embedded default): tls.client_cert: needed"),
            "{error}"
        );
    }

    /// A client certificate that cannot be read is named by its own field.
    #[test]
    fn an_unreadable_client_certificate_is_named_by_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::embedded_default();
        crate::certs::write(&config, dir.path(), 1).unwrap();
        let missing = dir.path().join("missing.pem");
        config.tls = Some(crate::config::TlsSection {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("server-{id}.pem"),
            key: dir.path().join("server-{id}-key.pem"),
            client_cert: Some(missing.clone()),
            client_key: Some(dir.path().join("client-key.pem")),
        });
        let error = format!("{:#}", StatusClient::new(&config).unwrap_err());
        assert!(error.contains("tls.client_cert: cannot read"), "{error}");
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }
}
