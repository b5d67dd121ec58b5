//! Error types: one enum per kind of operation, with variants the caller can act on.

use std::io;
use std::net::SocketAddr;

use crate::config::ServerId;
use crate::tls::TlsError;

/// A configuration was refused. Every variant names where it came from (a file path,
/// or `<code>` for a configuration built in code) and, where it applies, the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read file: {source}")]
    Read {
        /// The file's path.
        origin: String,
        /// The underlying failure.
        source: io::Error,
    },

    /// The file is not valid TOML or does not have the expected shape.
    #[error("{origin}: syntax error: {message}")]
    Syntax {
        /// The file's path.
        origin: String,
        /// The parser's description, with line and column.
        message: String,
    },

    /// A field holds a value that is not allowed.
    #[error("{origin}: field `{field}`: {reason}")]
    Invalid {
        /// The file's path, or `<code>`.
        origin: String,
        /// The field, e.g. `servers[2].address`.
        field: String,
        /// Why the value is refused.
        reason: String,
    },

    /// The server id asked for is not one of the configured servers.
    #[error("{origin}: field `servers`: server id {id} is not in the configuration")]
    UnknownServer {
        /// The file's path, or `<code>`.
        origin: String,
        /// The id that was asked for.
        id: ServerId,
    },
}

/// Starting a server failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid or does not name this server.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The server's own address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// The underlying failure.
        source: io::Error,
    },

    /// The TLS files could not be used (the message names the field and the file).
    #[error("{origin}: {source}")]
    Tls {
        /// The configuration's file path, or `<code>`.
        origin: String,
        /// What is wrong.
        source: TlsError,
    },

    /// In the in-process network, a server with this id is already running.
    #[error("server {0} is already running in this network")]
    AlreadyRunning(ServerId),
}

/// Sending failed because of something the caller did; a slow or dead peer is never
/// an error (the message is queued or dropped and counted instead).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The destination is not one of this server's peers.
    #[error("unknown peer {0}")]
    UnknownPeer(ServerId),

    /// The destination is this server itself.
    #[error("cannot send to self ({0})")]
    ToSelf(ServerId),

    /// The encoded message does not fit in one frame.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Encoded size in bytes, length prefix included.
        size: usize,
        /// The configured maximum frame size in bytes.
        max: usize,
    },

    /// The frame fits, but the message decodes to more than the receiver's decode limit
    /// allows: bincode counts in-memory sizes (8 bytes for every `u64` and every length,
    /// however short its varint), see [`crate::decode_limit`].
    #[error("message decodes to {size} bytes, above the decode limit of {max} bytes")]
    DecodedTooLarge {
        /// Decoded size as bincode counts it, message id included.
        size: usize,
        /// The decode limit for the configured maximum frame size.
        max: usize,
    },

    /// The message could not be encoded (its `Serialize` implementation failed).
    #[error("cannot encode message: {0}")]
    Encode(String),

    /// The server has been shut down.
    #[error("server is shut down")]
    Shutdown,
}

/// Input from a peer that does not follow the wire format. The connection that carried
/// it is closed; nothing else is affected.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the maximum frame size.
    #[error("frame length {len} exceeds the maximum of {max} bytes")]
    TooLong {
        /// Announced payload length in bytes.
        len: usize,
        /// The configured maximum frame size in bytes.
        max: usize,
    },

    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes received of the unfinished frame.
        buffered: usize,
    },

    /// The payload could not be decoded as an envelope.
    #[error("malformed payload: {0}")]
    Malformed(String),

    /// The payload decoded but was followed by extra bytes.
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),

    /// Reading from the socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}
