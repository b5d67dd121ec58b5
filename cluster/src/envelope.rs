//! What the layer above receives: envelopes and connection events.

use crate::config::ServerId;

/// A message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<M> {
    /// The peer that sent it, as established by the connection's handshake.
    pub from: ServerId,
    /// The sender's opaque message id, carried unchanged.
    pub message_id: u64,
    /// The message itself.
    pub message: M,
}

/// A change in the connection from this server to one peer.
///
/// Events concern the outbound connection (the one this server dials and sends on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerEvent {
    /// The connection to the peer is open and its handshake accepted.
    Connected(ServerId),
    /// The open connection to the peer was lost.
    Disconnected(ServerId),
    /// Dialling the peer was refused outright: nothing listens on its address, so its
    /// process is most likely gone. Reported once per run of refusals.
    DialRefused(ServerId),
}

impl PeerEvent {
    /// The peer the event is about.
    pub fn peer(&self) -> ServerId {
        match *self {
            PeerEvent::Connected(id) | PeerEvent::Disconnected(id) | PeerEvent::DialRefused(id) => {
                id
            }
        }
    }
}

/// Either a message or a connection event, as returned by [`crate::Server::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming<M> {
    /// A message from a peer.
    Message(Envelope<M>),
    /// A connection event.
    Event(PeerEvent),
}
