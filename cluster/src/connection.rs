//! The sending side over TCP: one task per peer dials it, introduces itself, then
//! writes the peer's queued frames in batches; on loss it re-dials with backoff.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::config::{Config, ServerId};
use crate::envelope::PeerEvent;
use crate::handshake::{self, Hello, Refusal, PROTOCOL_VERSION};
use crate::server::{Core, EventSink, Wiring};

/// Most frames taken from the queue at once.
const BATCH: usize = 512;

/// Bytes gathered before a write is issued even if more frames are queued.
const WRITE_CHUNK: usize = 256 * 1024;

/// Why one dial attempt failed.
#[derive(Debug)]
enum DialError {
    /// Nothing listens at the peer's address.
    Refused,
    /// The peer answered the handshake with a refusal.
    Handshake(Refusal),
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
}

/// Spawns one outbound task per peer on the server's task tracker.
pub(crate) fn spawn_all<M>(config: Arc<Config>, wiring: Wiring<M>) {
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

async fn dial(link: &Link, hello: &[u8]) -> Result<TcpStream, DialError> {
    let options = link.config.options();
    let socket = if link.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(DialError::Other)?;

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

    let exchange = async {
        stream.write_all(hello).await?;
        handshake::read_answer(&mut stream).await
    };
    match tokio::time::timeout(options.handshake_timeout, exchange).await {
        Err(_) => Err(DialError::Other(io::ErrorKind::TimedOut.into())),
        Ok(Err(e)) => Err(DialError::Other(e)),
        Ok(Ok(Err(refusal))) => Err(DialError::Handshake(refusal)),
        Ok(Ok(Ok(()))) => Ok(stream),
    }
}

/// Writes queued frames until the connection fails or the server stops; returns why
/// it stopped. Frames taken from the queue but not written are lost.
async fn write_frames(stream: TcpStream, queue: &mut mpsc::Receiver<Bytes>, link: &Link) -> String {
    let (mut reader, mut writer) = stream.into_split();
    let shutdown = &link.core.shutdown;
    let counters = &link.core.counters[link.index];
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH);
    let mut out = BytesMut::with_capacity(WRITE_CHUNK);

    // The acceptor never sends after its handshake answer, so any read completing
    // means the connection is gone (or the peer misbehaves): notice it while idle.
    let mut probe = [0u8; 16];

    // Registered once: a fresh cancellation future per batch would take a lock each time.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);

    loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => return "shut down".into(),
            read = reader.read(&mut probe) => {
                return match read {
                    Ok(0) => "closed by peer".into(),
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
                    written = writer.write_all(&out) => written,
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
