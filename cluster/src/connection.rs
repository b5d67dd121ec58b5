//! The sending side over TCP: one task per peer dials it, introduces itself, then
//! writes the peer's queued frames in batches; on loss it re-dials with backoff.
//!
//! While that writer is parked with nothing queued, a sender may write a frame
//! straight to the socket ([`DirectPath`]), sparing the hand-off to the writer task on
//! the round-trip path.
//!
//! Over TLS the dialer checks that the listener's certificate is bound to the peer it
//! dialled (see [`crate::tls`]) before introducing itself. The direct path is plain TCP
//! only: a TLS session encrypts under one lock that the writer task holds, so every
//! frame goes through the queue.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::backoff::Backoff;
use crate::config::{Config, ServerId};
use crate::envelope::PeerEvent;
use crate::handshake::{self, Hello, Refusal, PROTOCOL_VERSION};
use crate::server::{Core, EventSink, Wiring};
use crate::tls::TlsIdentity;

/// Most frames taken from the queue at once.
const BATCH: usize = 512;

/// Bytes gathered before a write is issued even if more frames are queued.
const WRITE_CHUNK: usize = 256 * 1024;

/// One peer's shortcut from the sender to its socket, shared by the senders and the
/// peer's writer task.
///
/// Order is kept because a frame may be written directly only while the writer is
/// parked with an empty queue (`idle`), under a lock that every frame put in the queue
/// also takes, after clearing `idle`. A short write queues its rest at once, still
/// under the lock, so it stays next on the wire.
///
/// A frame sent less than [`DIRECT_GAP`] after the previous one goes to the queue
/// instead: a sender in a burst would otherwise pay one system call per frame and lose
/// the writer's batching. A lone request or reply, the case that matters for latency,
/// comes after a pause and is written at once.
#[derive(Debug)]
pub(crate) struct DirectPath(Mutex<Direct>);

/// Shortest pause since the previous send for a frame to be written directly. Bursts
/// run at well under a microsecond per frame; a round trip on loopback takes several.
const DIRECT_GAP: Duration = Duration::from_micros(2);

#[derive(Debug)]
struct Direct {
    /// The open connection's write half; `None` while disconnected.
    half: Option<Arc<OwnedWriteHalf>>,
    /// The writer is parked and its queue empty.
    idle: bool,
    /// When a frame was last offered while the writer was idle, or when the writer
    /// last parked, whichever is later.
    last_offer: Instant,
}

impl Default for DirectPath {
    fn default() -> Self {
        DirectPath(Mutex::new(Direct {
            half: None,
            idle: false,
            last_offer: Instant::now(),
        }))
    }
}

/// What became of a frame offered to [`DirectGuard::offer`].
#[derive(Debug)]
pub(crate) enum Offered {
    /// Written whole to the socket.
    Written,
    /// Partly written, or not at all because the socket was full; the rest is queued.
    Queued,
    /// The direct path is closed (writer busy, no connection, queue full, or a burst):
    /// queue it.
    NotTaken(Bytes),
}

impl DirectPath {
    fn lock(&self) -> MutexGuard<'_, Direct> {
        // Nothing panics while holding this lock; should it ever, the state is two
        // plain fields and stays usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the lock under which a frame is offered and, if not written, queued.
    pub(crate) fn enter(&self) -> DirectGuard<'_> {
        DirectGuard(self.lock())
    }
}

/// Held while a sender offers a frame and queues what is left, so that the writer
/// cannot go idle in between.
pub(crate) struct DirectGuard<'a>(MutexGuard<'a, Direct>);

impl std::fmt::Debug for DirectGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DirectGuard").field(&*self.0).finish()
    }
}

impl DirectGuard<'_> {
    /// Writes `frame` to the socket if the writer is idle.
    ///
    /// A slot in `queue` is reserved first, because whatever the socket does not take
    /// must be queued at once to stay next in line.
    pub(crate) fn offer(&mut self, frame: Bytes, queue: &mpsc::Sender<Bytes>) -> Offered {
        let direct = &mut *self.0;
        if !direct.idle || direct.half.is_none() {
            return Offered::NotTaken(frame);
        }

        // Read the clock only here, not for frames queued while the writer is busy:
        // the writer stamps the time when it parks, which stands for those.
        let now = Instant::now();
        let pause = now.saturating_duration_since(direct.last_offer);
        direct.last_offer = now;
        if pause < DIRECT_GAP {
            return Offered::NotTaken(frame);
        }

        let Some(half) = &direct.half else {
            return Offered::NotTaken(frame);
        };
        let Ok(permit) = queue.try_reserve() else {
            return Offered::NotTaken(frame);
        };

        match half.try_write(&frame) {
            Ok(n) if n == frame.len() => Offered::Written,
            Ok(n) => {
                direct.idle = false;
                permit.send(frame.slice(n..));
                Offered::Queued
            }
            // Socket full or failing: the writer waits for room or finds the failure.
            Err(_) => {
                direct.idle = false;
                permit.send(frame);
                Offered::Queued
            }
        }
    }

    /// Marks a frame about to be queued, so that no direct write overtakes it.
    pub(crate) fn queueing(&mut self) {
        self.0.idle = false;
    }
}

/// Why one dial attempt failed.
#[derive(Debug)]
enum DialError {
    /// Nothing listens at the peer's address.
    Refused,
    /// The peer answered the handshake with a refusal.
    Handshake(Refusal),
    /// The TLS handshake failed: a certificate refused by either side, or a peer that
    /// does not speak TLS.
    Tls(io::Error),
    /// Anything else: timeout, reset, unreachable.
    Other(io::Error),
}

/// One peer's outbound link.
#[derive(Debug)]
struct Link {
    core: Arc<Core>,
    config: Arc<Config>,
    events: EventSink,
    index: usize,
    peer: ServerId,
    addr: SocketAddr,
    /// The local address to dial from; `None` lets the operating system choose.
    local: Option<SocketAddr>,
    /// Mutual TLS, when configured, with the name the peer's certificate must hold.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// An open, introduced outbound connection.
enum Established {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Spawns one outbound task per peer on the server's task tracker.
pub(crate) fn spawn_all<M>(config: Arc<Config>, tls: Option<TlsIdentity>, wiring: Wiring<M>) {
    let Wiring {
        core,
        queues,
        events,
        tasks,
        inbound,
    } = wiring;

    // Only the listener's readers may keep the inbound channel open, so that the
    // handle's recv() ends when they stop.
    drop(inbound);

    // Port 0: the operating system picks a free port on the chosen IP for each dial.
    let local = config
        .options()
        .dial_from_own_ip
        .then(|| config.address_of(core.id))
        .flatten()
        .map(|own| SocketAddr::new(own.ip(), 0));

    for (index, queue) in queues.into_iter().enumerate() {
        let peer = core.peers[index];
        let Some(addr) = config.address_of(peer) else {
            // Peers are derived from the same configuration, so this does not happen.
            tracing::error!(peer, "peer has no configured address");
            continue;
        };
        let link = Link {
            core: Arc::clone(&core),
            config: Arc::clone(&config),
            events: events.clone(),
            index,
            peer,
            addr,
            local,
            tls: tls
                .as_ref()
                .map(|tls| (tls.client_config(), tls.name_of(peer))),
        };
        tasks.spawn(run_link(link, queue));
    }
}

async fn run_link(link: Link, mut queue: mpsc::Receiver<Bytes>) {
    let Link {
        peer, addr, index, ..
    } = link;
    let shutdown = link.core.shutdown.clone();
    let counters = &link.core.counters[index];
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_name: link.config.cluster_name().to_owned(),
        sender: link.core.id,
    }
    .encode();

    let mut backoff = Backoff::new(link.config.options(), rand::random());
    let mut first = true;
    let mut refusal_reported = false;
    // A peer with the wrong certificate fails every dial the same way; say so once
    // per run of failures, not every backoff pause.
    let mut tls_failure_reported = false;

    loop {
        let dialled = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            dialled = dial(&link, &hello) => dialled,
        };

        match dialled {
            Ok(stream) => {
                backoff.reset();
                refusal_reported = false;
                tls_failure_reported = false;
                counters.mark_connected(first);
                first = false;
                tracing::info!(peer, %addr, "peer connected");
                link.events.emit(PeerEvent::Connected(peer));

                let reason = write_frames(stream, &mut queue, &link).await;
                counters.mark_disconnected();
                if shutdown.is_cancelled() {
                    return;
                }
                tracing::info!(peer, %addr, reason = %reason, "peer connection lost");
                link.events.emit(PeerEvent::Disconnected(peer));
            }
            Err(DialError::Refused) => {
                if !refusal_reported {
                    refusal_reported = true;
                    tracing::info!(peer, %addr, "peer dial refused");
                    link.events.emit(PeerEvent::DialRefused(peer));
                }
            }
            Err(DialError::Handshake(refusal)) => {
                tracing::warn!(peer, %addr, reason = %refusal, "handshake refused by peer");
            }
            Err(DialError::Tls(e)) if !tls_failure_reported => {
                tls_failure_reported = true;
                tracing::warn!(peer, %addr, reason = %e, "TLS handshake failed");
            }
            Err(DialError::Tls(e)) => {
                tracing::debug!(peer, %addr, reason = %e, "TLS handshake failed");
            }
            Err(DialError::Other(e)) => {
                tracing::debug!(peer, %addr, reason = %e, "dial failed");
            }
        }

        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_pause()) => {}
        }
    }
}

async fn dial(link: &Link, hello: &[u8]) -> Result<Established, DialError> {
    let options = link.config.options();
    let socket = if link.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(DialError::Other)?;
    if let Some(local) = link.local {
        socket.bind(local).map_err(DialError::Other)?;
    }

    let connecting = tokio::time::timeout(options.connect_timeout, socket.connect(link.addr));
    let mut stream = match connecting.await {
        Err(_) => return Err(DialError::Other(io::ErrorKind::TimedOut.into())),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(DialError::Refused)
        }
        Ok(Err(e)) => return Err(DialError::Other(e)),
        Ok(Ok(stream)) => stream,
    };
    stream.set_nodelay(true).map_err(DialError::Other)?;

    let Some((tls, name)) = &link.tls else {
        introduce(&mut stream, hello, options.handshake_timeout).await?;
        return Ok(Established::Plain(stream));
    };

    // The name asked for binds the listener's certificate to the peer dialled.
    let connecting = TlsConnector::from(Arc::clone(tls)).connect(name.clone(), stream);
    let mut stream = match tokio::time::timeout(options.handshake_timeout, connecting).await {
        Err(_) => return Err(DialError::Other(io::ErrorKind::TimedOut.into())),
        Ok(Err(e)) => return Err(DialError::Tls(e)),
        Ok(Ok(stream)) => stream,
    };
    introduce(&mut stream, hello, options.handshake_timeout).await?;
    Ok(Established::Tls(Box::new(stream)))
}

/// Sends the introduction and reads the acceptor's answer.
async fn introduce<S>(stream: &mut S, hello: &[u8], timeout: Duration) -> Result<(), DialError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exchange = async {
        stream.write_all(hello).await?;
        stream.flush().await?;
        handshake::read_answer(stream).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(DialError::Other(io::ErrorKind::TimedOut.into())),
        // In TLS 1.3 the listener checks the dialer's certificate after the dialer's
        // side of the handshake is done, so its refusal arrives here, as an alert.
        Ok(Err(e)) if is_tls_error(&e) => Err(DialError::Tls(e)),
        Ok(Err(e)) => Err(DialError::Other(e)),
        Ok(Ok(Err(refusal))) => Err(DialError::Handshake(refusal)),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// Writes queued frames until the connection fails or the server stops; returns why
/// it stopped. Frames taken from the queue but not written are lost.
async fn write_frames(
    stream: Established,
    queue: &mut mpsc::Receiver<Bytes>,
    link: &Link,
) -> String {
    let stream = match stream {
        Established::Plain(stream) => stream,
        Established::Tls(stream) => {
            let (mut reader, writer) = tokio::io::split(*stream);
            let mut sink = TlsSink(writer);
            return write_queued(&mut reader, &mut sink, queue, link).await;
        }
    };

    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(writer);
    let direct = &link.core.direct[link.index];
    direct.lock().half = Some(Arc::clone(&writer));

    let reason = write_queued(&mut reader, &mut &*writer, queue, link).await;

    // Senders must not write to a connection given up on; the last reference to the
    // write half goes with this task, which closes it.
    let mut state = direct.lock();
    state.half = None;
    state.idle = false;
    drop(state);
    reason
}

async fn write_queued<R, W>(
    reader: &mut R,
    writer: &mut W,
    queue: &mut mpsc::Receiver<Bytes>,
    link: &Link,
) -> String
where
    R: AsyncRead + Unpin,
    W: FrameSink,
{
    let shutdown = &link.core.shutdown;
    let counters = &link.core.counters[link.index];
    let direct = &link.core.direct[link.index];
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    let mut out = BytesMut::with_capacity(WRITE_CHUNK);

    // The acceptor never sends after its handshake answer, so any read completing
    // means the connection is gone (or the peer misbehaves): notice it while idle.
    let mut probe = [0u8; 16];

    // Registered once: a fresh cancellation future per batch would take a lock each time.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);

    loop {
        // Parking with nothing queued: senders may now write directly until one does.
        {
            let mut state = direct.lock();
            if queue.is_empty() {
                state.idle = true;
                state.last_offer = Instant::now();
            }
        }

        tokio::select! {
            biased;
            _ = &mut cancelled => return "shut down".into(),
            read = reader.read(&mut probe) => {
                return match read {
                    Ok(0) => "closed by peer".into(),
                    // A TLS peer that closes without a close_notify alert, as a
                    // killed process does.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        "closed by peer".into()
                    }
                    Ok(_) => "unexpected bytes from peer".into(),
                    Err(e) => e.to_string(),
                };
            }
            taken = queue.recv_many(&mut batch, BATCH) => {
                if taken == 0 {
                    return "queue closed".into();
                }
            }
        }

        // Gather everything queued into as few writes as possible.
        let mut gathered = 0u64;
        loop {
            let mut used = 0;
            for frame in &batch {
                if out.len() >= WRITE_CHUNK {
                    break;
                }
                out.extend_from_slice(frame);
                used += 1;
            }
            batch.drain(..used);
            gathered += used as u64;

            let more = !batch.is_empty() || !queue.is_empty();
            if out.len() >= WRITE_CHUNK || !more {
                let written = tokio::select! {
                    biased;
                    _ = &mut cancelled => return "shut down".into(),
                    written = writer.write_all_frames(&out) => written,
                };
                out.clear();
                if let Err(e) = written {
                    return e.to_string();
                }
                counters.add_sent(gathered);
                tracing::trace!(peer = link.peer, count = gathered, "frames written");
                gathered = 0;
            }
            if !more {
                break;
            }
            if batch.is_empty() {
                queue.recv_many(&mut batch, BATCH).await;
            }
        }
    }
}

/// Where the writer task puts the bytes it gathered.
trait FrameSink {
    /// Writes all of `buf` and pushes it onto the wire.
    async fn write_all_frames(&mut self, buf: &[u8]) -> io::Result<()>;
}

/// A plain TCP write half shared with the senders' direct path.
impl FrameSink for &OwnedWriteHalf {
    async fn write_all_frames(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.try_write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The writing half of a TLS session, which only the writer task uses.
struct TlsSink(WriteHalf<TlsStream<TcpStream>>);

impl FrameSink for TlsSink {
    async fn write_all_frames(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).await?;
        // rustls holds encrypted records until flushed.
        self.0.flush().await
    }
}
