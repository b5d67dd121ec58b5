//! The accepting side over TCP: checks each inbound connection's handshake (inside TLS
//! when configured), then reads its frames and hands the decoded envelopes to the
//! server's handle.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{self, FrameDecoder};
use crate::config::{Config, ServerId};
use crate::envelope::Envelope;
use crate::error::FrameError;
use crate::handshake::{self, HelloError, Refusal};
use crate::inbox::{Delivered, Inbox};
use crate::server::{Core, Wiring};
use crate::tls::{certificate_ids, TlsIdentity};

/// Bytes asked of the socket per read; one read usually yields many small frames.
const READ_CHUNK: usize = 64 * 1024;

/// Envelopes' room a reader keeps in its batch between reads: what 64 KiB of the
/// smallest frames decode to, and more.
const KEPT_BATCH: usize = 16 * 1024;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);

/// Binds a listening socket with `SO_REUSEADDR`, so a restarted server can take its
/// port back while old connections linger in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The open inbound connection of each peer, so that a newer one replaces it.
#[derive(Debug, Default)]
struct Registry {
    open: Mutex<HashMap<ServerId, (u64, CancellationToken)>>,
    next_number: AtomicU64,
}

impl Registry {
    /// Records a new connection from `peer`, closing the one it replaces.
    fn register(&self, peer: ServerId, parent: &CancellationToken) -> (u64, CancellationToken) {
        let number = self.next_number.fetch_add(1, Ordering::Relaxed);
        let token = parent.child_token();

        // A poisoned lock means another connection task panicked mid-update; the map
        // is still usable, so carry on with it.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, older)) = open.insert(peer, (number, token.clone())) {
            tracing::info!(peer, "inbound connection replaced");
            older.cancel();
        }
        (number, token)
    }

    /// Forgets a connection unless a newer one has already replaced it.
    fn unregister(&self, peer: ServerId, number: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open
            .get(&peer)
            .is_some_and(|(current, _)| *current == number)
        {
            open.remove(&peer);
        }
    }
}

/// What every inbound connection task needs.
#[derive(Debug)]
struct Acceptor<M> {
    config: Arc<Config>,
    core: Arc<Core>,
    inbound: Arc<Inbox<M>>,
    registry: Registry,
    tasks: TaskTracker,
    /// Mutual TLS on every inbound connection, when configured.
    tls: Option<TlsIdentity>,
}

/// Spawns the accept loop on the server's task tracker.
pub(crate) fn spawn<M>(
    listener: TcpListener,
    config: Arc<Config>,
    tls: Option<TlsIdentity>,
    wiring: &Wiring<M>,
) where
    M: DeserializeOwned + Send + 'static,
{
    let acceptor = Arc::new(Acceptor {
        config,
        core: Arc::clone(&wiring.core),
        inbound: Arc::clone(&wiring.inbound),
        registry: Registry::default(),
        tasks: wiring.tasks.clone(),
        tls,
    });
    wiring.tasks.spawn(accept_loop(listener, acceptor));
}

async fn accept_loop<M>(listener: TcpListener, acceptor: Arc<Acceptor<M>>)
where
    M: DeserializeOwned + Send + 'static,
{
    let shutdown = acceptor.core.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let task = serve_inbound(stream, addr, Arc::clone(&acceptor));
                    acceptor.tasks.spawn(task);
                }
                Err(e) => {
                    tracing::warn!(reason = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
        }
    }
}

async fn serve_inbound<M>(stream: TcpStream, addr: SocketAddr, acceptor: Arc<Acceptor<M>>)
where
    M: DeserializeOwned + Send + 'static,
{
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%addr, reason = %e, "cannot set TCP_NODELAY");
    }
    let Some(tls) = &acceptor.tls else {
        return serve_peer(stream, addr, None, &acceptor).await;
    };

    // The TLS handshake checks the dialer's certificate against the authority; which
    // ids it is bound to is compared with the id it claims once it has introduced
    // itself.
    let shutdown = &acceptor.core.shutdown;
    let timeout = acceptor.config.options().handshake_timeout;
    let accepting = TlsAcceptor::from(tls.server_config()).accept(stream);
    let accepted = tokio::select! {
        _ = shutdown.cancelled() => return,
        accepted = tokio::time::timeout(timeout, accepting) => accepted,
    };
    let stream = match accepted {
        Err(_) => {
            tracing::warn!(%addr, reason = "TLS handshake timed out", "handshake refused");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(%addr, reason = %format_args!("TLS: {e}"), "handshake refused");
            return;
        }
        Ok(Ok(stream)) => stream,
    };
    let certified = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| certificate_ids(leaf, tls.cluster_name()))
        .unwrap_or_default();
    serve_peer(stream, addr, Some(certified), &acceptor).await;
}

/// Runs the handshake on an open connection, then reads its frames. `certified` holds
/// the ids the dialer's certificate is bound to, over TLS.
async fn serve_peer<S, M>(
    mut stream: S,
    addr: SocketAddr,
    certified: Option<Vec<ServerId>>,
    acceptor: &Acceptor<M>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    M: DeserializeOwned + Send + 'static,
{
    let shutdown = &acceptor.core.shutdown;
    let timeout = acceptor.config.options().handshake_timeout;
    let hello = tokio::select! {
        _ = shutdown.cancelled() => return,
        read = tokio::time::timeout(timeout, handshake::read_hello(&mut stream)) => read,
    };
    let hello = match hello {
        Err(_) => {
            tracing::warn!(%addr, reason = "handshake timed out", "handshake refused");
            return;
        }
        Ok(Err(HelloError::Io(e))) => {
            tracing::debug!(%addr, reason = %e, "connection closed before handshake");
            return;
        }
        Ok(Err(HelloError::Refused(refusal))) => return refuse(stream, addr, refusal).await,
        Ok(Ok(hello)) => hello,
    };
    if let Err(refusal) = hello.check(&acceptor.config, acceptor.core.id) {
        return refuse(stream, addr, refusal).await;
    }
    if let Some(ids) = certified.filter(|ids| !ids.contains(&hello.sender)) {
        let refusal = Refusal::CertificateMismatch;
        tracing::warn!(
            %addr,
            claimed = hello.sender,
            certificate = ?ids,
            reason = %refusal,
            "handshake refused"
        );
        return answer_refusal(stream, refusal).await;
    }

    let peer = hello.sender;
    let Some(index) = acceptor.core.peer_index(peer) else {
        // check() accepted the id, so it is a configured server other than this one,
        // hence a peer; refuse rather than panic should that ever change.
        return refuse(stream, addr, Refusal::UnknownId).await;
    };
    if let Err(e) = handshake::write_answer(&mut stream, Ok(())).await {
        tracing::debug!(peer, %addr, reason = %e, "connection closed during handshake");
        return;
    }

    let (number, token) = acceptor.registry.register(peer, shutdown);
    tracing::debug!(peer, %addr, "inbound connection accepted");
    let outcome = read_frames(stream, peer, index, &token, acceptor).await;
    acceptor.registry.unregister(peer, number);

    match outcome {
        Ok(()) => tracing::debug!(peer, %addr, "inbound connection closed"),
        Err(FrameError::Io(e)) => {
            tracing::debug!(peer, %addr, reason = %e, "inbound connection closed")
        }
        Err(e) => tracing::warn!(peer, %addr, reason = %e, "malformed input, connection closed"),
    }
}

async fn refuse<S: AsyncWrite + Unpin>(stream: S, addr: SocketAddr, refusal: Refusal) {
    tracing::warn!(%addr, reason = %refusal, "handshake refused");
    answer_refusal(stream, refusal).await;
}

async fn answer_refusal<S: AsyncWrite + Unpin>(mut stream: S, refusal: Refusal) {
    // Tell the dialer why, but never wait long on a peer that is misbehaving anyway.
    let answer = handshake::write_answer(&mut stream, Err(refusal));
    let _ = tokio::time::timeout(Duration::from_millis(500), answer).await;
}

/// Reads frames until the peer closes, the connection is replaced or the server stops.
/// Everything decoded from one read is delivered to the inbox as one batch.
async fn read_frames<S, M>(
    mut stream: S,
    peer: ServerId,
    index: usize,
    token: &CancellationToken,
    acceptor: &Acceptor<M>,
) -> Result<(), FrameError>
where
    S: AsyncRead + Unpin,
    M: DeserializeOwned,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let max_frame_size = acceptor.core.max_frame_size;
    let decoder = FrameDecoder::new(max_frame_size);
    let counters = &acceptor.core.counters[index];
    // Reused for every read: delivering moves the envelopes out and keeps the room.
    let mut batch = Vec::new();

    // Registered once: a fresh cancellation future per read would take a lock each time.
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);

    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        // The read first: looking at the token costs two locks, which a read that is
        // ready spares. A peer that never pauses still lets the token be seen, since
        // the read yields once the task's budget is spent.
        let read = tokio::select! {
            biased;
            read = stream.read_buf(&mut buf) => read?,
            _ = &mut cancelled => return Ok(()),
        };
        if read == 0 {
            // Every whole frame was taken after the previous read; what is left is a
            // frame cut by the end of the stream, if anything.
            if buf.is_empty() {
                return Ok(());
            }
            return Err(FrameError::Truncated {
                buffered: buf.len(),
            });
        }

        // Frames before a malformed one are delivered before the connection closes.
        let decoded = decode_frames(&mut buf, &decoder, peer, max_frame_size, &mut batch);
        if batch.is_empty() {
            decoded?;
            continue;
        }

        counters.add_received(batch.len() as u64);
        tracing::trace!(peer, count = batch.len(), "frames received");
        loop {
            match acceptor.inbound.deliver(&mut batch) {
                Delivered::Taken => break,
                // The handle is gone; nobody will read further messages.
                Delivered::Closed => return Ok(()),
                Delivered::Full => {}
            }
            tokio::select! {
                biased;
                _ = &mut cancelled => return Ok(()),
                _ = acceptor.inbound.room() => {}
            }
        }
        // Only a read far larger than the usual 64 KiB makes a batch this big; do not
        // keep its room.
        batch.shrink_to(KEPT_BATCH);
        decoded?;
    }
}

/// Decodes every whole frame at the start of `buf` into `batch`, removing them from
/// `buf`; stops at the first malformed frame.
fn decode_frames<M: DeserializeOwned>(
    buf: &mut BytesMut,
    decoder: &FrameDecoder,
    peer: ServerId,
    max_frame_size: usize,
    batch: &mut Vec<Envelope<M>>,
) -> Result<(), FrameError> {
    while let Some(len) = decoder.whole_frame(buf)? {
        let frame_end = codec::HEADER_LEN + len;
        let (message_id, message) =
            codec::decode_payload::<M>(&buf[codec::HEADER_LEN..frame_end], max_frame_size)?;
        buf.advance(frame_end);
        batch.push(Envelope {
            from: peer,
            message_id,
            message,
        });
    }
    Ok(())
}
