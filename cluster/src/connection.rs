//! The sending side over TCP: one task per peer dials it, introduces itself, then
//! writes the peer's queued frames in batches; on loss it re-dials with backoff.
//!
//! Frames wait in the peer's [`Outbox`]; while the writer is parked with nothing
//! queued, a sender may write a frame straight to the socket instead (see
//! [`crate::outbox`]).
//!
//! Over TLS the dialer checks that the listener's certificate is bound to the peer it
//! dialled (see [`crate::tls`]) before introducing itself. Direct writes are plain TCP
//! only: a TLS session encrypts under one lock that the writer task holds.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::backoff::Backoff;
use crate::config::{Config, ServerId};
use crate::envelope::PeerEvent;
use crate::handshake::{self, Hello, Refusal, PROTOCOL_VERSION};
use crate::outbox::Outbox;
use crate::server::{Core, EventSink, Wiring};
use crate::tls::TlsIdentity;

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
    // The inbox is the listener's: writers only send.
    let Wiring {
        core,
        events,
        tasks,
        inbound: _,
    } = wiring;

    // Port 0: the operating system picks a free port on the chosen IP for each dial.
    let local = config
        .options()
        .dial_from_own_ip
        .then(|| config.address_of(core.id))
        .flatten()
        .map(|own| SocketAddr::new(own.ip(), 0));

    for (index, &peer) in core.peers.iter().enumerate() {
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
        tasks.spawn(run_link(link));
    }
}

async fn run_link(link: Link) {
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

                let reason = write_frames(stream, &link).await;
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
/// it stopped. Frames taken from the outbox but not written are lost.
async fn write_frames(stream: Established, link: &Link) -> String {
    let stream = match stream {
        Established::Plain(stream) => stream,
        Established::Tls(stream) => {
            let (mut reader, writer) = tokio::io::split(*stream);
            let mut sink = TlsSink(writer);
            return write_queued(&mut reader, &mut sink, link).await;
        }
    };

    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(writer);
    let outbox = &link.core.outboxes[link.index];
    outbox.attach(Arc::clone(&writer));

    let reason = write_queued(&mut reader, &mut &*writer, link).await;

    // Senders must not write to a connection given up on; the last reference to the
    // write half goes with this task, which closes it.
    outbox.detach();
    reason
}

async fn write_queued<R, W>(reader: &mut R, writer: &mut W, link: &Link) -> String
where
    R: AsyncRead + Unpin,
    W: FrameSink,
{
    let shutdown = &link.core.shutdown;
    let counters = &link.core.counters[link.index];
    let outbox = &link.core.outboxes[link.index];
    let mut taken = BytesMut::new();

    // The acceptor never sends after its handshake answer, so any read completing
    // means the connection is gone (or the peer misbehaves): notice it while idle.
    let mut probe = [0u8; 16];

    // Registered once: a fresh cancellation future per batch would take a lock each time.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);

    loop {
        let frames = outbox.take(&mut taken);
        if frames == 0 {
            // Parked: senders may now write directly until one queues a frame.
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
                _ = outbox.queued() => continue,
            }
        }

        let written = tokio::select! {
            biased;
            _ = &mut cancelled => return "shut down".into(),
            written = writer.write_all_frames(&taken) => written,
        };
        if let Err(e) = written {
            return e.to_string();
        }
        Outbox::recycle(&mut taken);
        counters.add_sent(frames as u64);
        tracing::trace!(peer = link.peer, count = frames, "frames written");
    }
}

/// Where the writer task puts the bytes it gathered.
trait FrameSink {
    /// Writes all of `buf` and pushes it onto the wire.
    async fn write_all_frames(&mut self, buf: &[u8]) -> io::Result<()>;
}

/// A plain TCP write half shared with the senders' direct writes.
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
