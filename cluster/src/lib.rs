//! Framed point-to-point messaging between numbered servers.

mod backoff;
mod codec;
mod config;
mod connection;
mod envelope;
mod error;
mod handshake;
mod listener;
mod memory;
mod server;
mod stats;

pub use codec::{decode_payload, encode_frame, FrameDecoder};
pub use config::{
    Config, Options, ServerAddress, ServerId, DEFAULT_CLUSTER_NAME, MAX_FRAME_SIZE_LIMIT,
    MIN_FRAME_SIZE_LIMIT,
};
pub use envelope::{Envelope, Incoming, PeerEvent};
pub use error::{ConfigError, FrameError, SendError, StartError};
pub use handshake::PROTOCOL_VERSION;
pub use memory::{LinkConditions, Network};
pub use server::{Sender, Server};
pub use stats::{PeerStats, ServerStats};
