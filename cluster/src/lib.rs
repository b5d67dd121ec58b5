//! Framed point-to-point messaging between numbered servers.
//!
//! `cluster` connects a fixed set of servers, each known by a number ([`ServerId`])
//! and an address, and lets each send messages of one serde type to any other, or to
//! all others at once. It knows nothing of Raft; a consensus layer sits on top.
//!
//! # Model
//!
//! - A [`Config`] names every server: id and address, plus a cluster name and
//!   [`Options`]. It is read from a TOML file ([`Config::from_file`]) or built in code
//!   ([`Config::new`], [`Config::loopback`]).
//! - A [`Server<M>`] is started with its own id. It binds its address, dials every
//!   peer and offers [`send`](Server::send) to one peer, [`broadcast`](Server::broadcast)
//!   to every peer but itself, [`recv`](Server::recv), [`next_event`](Server::next_event),
//!   [`stats`](Server::stats), [`peers`](Server::peers) and
//!   [`shutdown`](Server::shutdown). [`Server::sender`] gives a cloneable [`Sender`]
//!   for sending from other tasks.
//! - An [`Envelope<M>`] carries the sender's id (set by the receiving side from the
//!   connection's handshake, so it cannot be forged per message), an opaque `u64`
//!   message id of the caller's choosing, and the message `M`
//!   (`Serialize + DeserializeOwned + Send + 'static`).
//!
//! # Connections
//!
//! Each server dials one outbound connection per peer and sends only on it; the
//! connections its peers dial to it are used only for receiving. A lost outbound
//! connection is dialled again with capped exponential backoff and jitter (10 ms
//! doubling to 200 ms by default, each pause shortened by up to half at random), so a
//! restarted peer is reached within a fraction of a second. Listening sockets set
//! `SO_REUSEADDR`, so a server closed and started again gets its port back at once.
//! Every connection sets `TCP_NODELAY`.
//!
//! Sending encodes the message into a buffer of the calling thread's and copies the
//! frame to the end of the peer's queue, a byte buffer: no allocation and no hand-off
//! per message. Each peer's outbound connection has a writer task that takes the whole
//! buffer at once, leaving an empty one in its place, and writes it; frames queued
//! meanwhile wait for its next turn, so a burst is written in few system calls. When
//! that writer is parked with nothing queued and the previous send was at least 2 µs
//! ago, `send` writes the frame to the socket itself with a non-blocking write, sparing
//! the wake-up of the writer on a request/reply round trip; whatever the socket does
//! not take at once is queued ahead of anything else, so per-peer order holds either
//! way. Received envelopes reach the handle the same way: each connection's reader
//! appends what one socket read yielded, and `recv` takes everything waiting at once.
//!
//! # Frame layout
//!
//! Every frame is a big-endian `u32` payload length followed by the payload:
//!
//! ```text
//!  0       4                                    4 + len
//! +-------+--------------------------------------+
//! |  len  | payload (len bytes)                   |
//! +-------+--------------------------------------+
//!  u32 BE   bincode 2, standard config: (message id: u64, message: M)
//! ```
//!
//! The maximum frame size (default 1 MiB) counts the 4 length bytes. It is enforced on
//! send ([`SendError::FrameTooLarge`]) and on receive: a length above it is refused
//! from the 4-byte header alone, before any room is reserved. A payload followed by
//! extra bytes is malformed.
//!
//! The payload decoder has a size limit no larger than the maximum frame size:
//! [`decode_limit`], the largest power of two not above it (the maximum itself when it
//! is a power of two, as the default is; 1000 bytes gives 512). Bincode counts toward
//! that limit the in-memory size of what it decodes, not the bytes on the wire: 8 bytes
//! for the message id and for every `u64`, `usize` and length prefix however short its
//! varint, 16 for a `u128`, the bytes of every string and byte buffer. A message whose
//! decoded size so counted exceeds the limit is refused as malformed, even when its
//! frame is within the maximum; a string or byte buffer claiming more than the limit
//! is refused before anything is reserved for it. A sequence or map (a plain `Vec<u8>`
//! included) is reserved nothing from the length it claims: it grows only as its
//! elements are decoded and charged, a `Vec` by doubling, so its buffer is at most
//! twice what its decoded elements occupy; for vectors of integers, whose in-memory
//! size is what bincode charges, that is at most twice the limit for all of a message's
//! vectors together, and a vector of `u8` or `u64` never exceeds the limit itself (see
//! the known limitations for types that occupy more than they are charged). For a
//! `Vec<u8>` or `String` message the decoded size is its length plus 16, so the
//! largest that passes is the limit minus 16 bytes. [`encode_frame`], and so every
//! send, applies the same count and refuses such a message with
//! [`SendError::DecodedTooLarge`], so a sender never emits a frame its receivers
//! (configured with the same maximum) would refuse for its size.
//!
//! Decoding recurses once per level of nesting, so it refuses as malformed any value
//! nested deeper than 128 levels (the message itself is level 1; each element, field,
//! map entry, `Some`, newtype and enum variant contents one level deeper than its
//! container, a `Box` no level), before descending into it. A recursive message type
//! (an enum holding `Box<Self>`) therefore cannot make a frame overflow the stack,
//! whatever its size. 128 levels is ample for any sane message.
//!
//! Malformed input closes that one connection with a warning; the server and its other
//! connections carry on.
//!
//! # Handshake
//!
//! The dialer opens with an introduction frame of fixed layout (not bincode, so any
//! version can read it):
//!
//! ```text
//! +-------+--------+---------+-----------+----------+------------------+
//! |  len  | "CLST" | version | sender id | name len | cluster name     |
//! +-------+--------+---------+-----------+----------+------------------+
//!  u32 BE  4 bytes   u16 BE     u64 BE       u8       name len bytes, UTF-8
//! ```
//!
//! The acceptor answers with a one-byte frame `00 00 00 01 <status>`: 0 accepted,
//! 1 malformed, 2 wrong [`PROTOCOL_VERSION`], 3 wrong cluster name, 4 sender id not in
//! the configuration, 5 sender claims the acceptor's own id, 6 (over TLS) sender id not
//! bound to its certificate. A refusal is logged as a warning (`handshake refused`)
//! with the remote address and the reason, and the connection is closed. A second
//! accepted connection from the same id replaces the first, which is closed.
//!
//! # TLS
//!
//! With a `[tls]` section ([`Config::with_tls`], [`TlsFiles`]) every link runs over
//! mutual TLS 1.3 (rustls with the *ring* provider), and the handshake above runs
//! inside it. Both sides present a certificate of the cluster's authority, bound to a
//! server id by the DNS name `server-<id>.<cluster name>` ([`server_name`]):
//!
//! - the dialer asks for the name of the peer it dials, so a listener holding another
//!   server's certificate fails the TLS handshake (`TLS handshake failed`, a warning
//!   with the peer and the reason);
//! - the acceptor refuses a dialer whose certificate the authority did not sign, or
//!   that has expired (`handshake refused`, reason `TLS: …`), and one that claims an id
//!   its certificate does not name (status 6; the warning adds `claimed` and the
//!   `certificate`'s ids);
//! - a peer without TLS is refused the same way, and a TLS server dialling a plain
//!   one is refused by it as malformed.
//!
//! The files are read when a server starts; a file that is missing or unreadable, a
//! certificate out of its validity or not bound to the server, and a key that is not
//! the certificate's fail the start with [`StartError::Tls`], naming the field and the
//! file. Without TLS a server logs one warning at start that its links are plain TCP.
//! Over TLS every frame goes through the writer's queue (no direct write; see
//! Connections), which costs some latency on a lone request.
//!
//! # Delivery contract
//!
//! - Sending never waits on a peer and never fails because a peer is slow or down.
//!   Each peer has a bounded queue ([`Options::queue_capacity`]); when it is full the
//!   message is dropped and counted in [`PeerStats::dropped`]. Messages queued while a
//!   peer is unreachable are sent once it is reached again, if they still fit.
//! - Errors are for the caller's mistakes only: unknown peer, sending to self, a frame
//!   above the maximum size, a server shut down (see [`SendError`]).
//! - Messages from one sender to one receiver arrive in the order sent while a
//!   connection holds. Messages can be lost when a connection breaks (those the
//!   writer has taken but not yet written, and those in flight) and when a queue
//!   overflows. The library never duplicates a message.
//! - A receiver that does not call `recv` fills its inbound buffer, then its sockets,
//!   then its senders' queues, which then drop; other peers are unaffected.
//!
//! # Connection events
//!
//! [`Server::next_event`] (or [`Server::next`], which interleaves events with
//! messages) reports [`PeerEvent::Connected`] when an outbound connection's handshake
//! is accepted, [`PeerEvent::Disconnected`] when it is lost, and
//! [`PeerEvent::DialRefused`] when dialling a peer is refused because nothing listens
//! at its address, which means its process is gone; it is reported once per run of
//! refusals. A consensus layer can treat `Disconnected` followed by `DialRefused` from
//! its leader as a reason to start an election early. Events are buffered (1024); if
//! nobody reads them, newer ones are dropped.
//!
//! With [`Options::dial_from_own_ip`] a server dials from the IP of its own configured
//! address (any port) rather than one the operating system picks, so that servers
//! sharing a host on several loopback addresses (127.0.0.2, 127.0.0.3, …) can be told
//! apart, and cut apart, by firewall rules on source and destination address.
//!
//! # Fault layer
//!
//! For tests and soaks on machines without `tc netem`, [`Options::fault_injection`]
//! switches on a fault layer (off by default; then it costs one branch per message).
//! [`Server::faults`] returns a cloneable [`Faults`] handle that sets, per peer, a
//! block of outgoing messages, a block of incoming messages, an extra delay drawn
//! uniformly from a range for each message (so messages may reorder) and a loss
//! probability; [`Faults::heal`] clears them all. Faults drop or delay messages, not
//! connections, so a blocked link raises no connection event, as with a real
//! partition. It works the same over TCP and the in-process network.
//!
//! # In-process network
//!
//! [`Network<M>`] runs servers inside one process with the same [`Server<M>`] handle,
//! for testing the layers above: partitions into groups ([`Network::partition`], servers
//! not named form one more group), [`Network::heal`], one-way cuts ([`Network::cut`]),
//! per-link loss and delay ([`LinkConditions`]; different delays reorder messages),
//! and crashes ([`Network::crash`]) after which a server can be started again; its
//! peers then see the same events as over TCP. Every random choice comes from a seed
//! (ChaCha), one stream per link, so a run can be replayed, and everything works under
//! tokio's paused clock (`#[tokio::test(start_paused = true)]`). Messages still travel
//! as encoded frames, so encoding errors show up here too.
//!
//! # Example
//!
//! Two servers on free loopback ports exchange one message:
//!
//! ```
//! use cluster::{Config, PeerEvent, Server};
//! use tokio::net::TcpListener;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let a = TcpListener::bind("127.0.0.1:0").await?;
//! let b = TcpListener::bind("127.0.0.1:0").await?;
//! let config = Config::new([(1, a.local_addr()?), (2, b.local_addr()?)]);
//!
//! let one = Server::<String>::start_with_listener(&config, 1, a).await?;
//! let mut two = Server::<String>::start_with_listener(&config, 2, b).await?;
//!
//! one.send(2, 42, &"hello".to_owned())?;
//! let envelope = two.recv().await.expect("server running");
//! assert_eq!((envelope.from, envelope.message_id), (1, 42));
//! assert_eq!(envelope.message, "hello");
//!
//! // Server 2 also dialled server 1; its connection events say so.
//! assert_eq!(two.next_event().await, Some(PeerEvent::Connected(1)));
//!
//! one.shutdown().await;
//! two.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! With a configuration file, start a server by id with
//! `Server::start(&Config::from_file_for(path, id)?, id)`.
//!
//! # Known limitations
//!
//! - Without `[tls]`, no encryption or authentication: the handshake's sender id is
//!   trusted. With it, any holder of a valid certificate for an id is trusted as that
//!   server; there is no revocation list, so a leaked key is only shut out by a new
//!   authority (rotation) or by the certificate's expiry. Files are read at start:
//!   renewed certificates take effect when a server restarts.
//! - Frames are capped at 64 MiB; large transfers need chunking above this layer.
//! - Loss is silent apart from counters and connection events; there is no
//!   acknowledgement or retransmission.
//! - The in-process network models partitions as silent loss without connection
//!   events, which is what a real partition looks like until timeouts fire.
//! - The payload decoder's limit is a power-of-two bucket (the maximum frame size rounded
//!   down), because bincode's limit is a compile-time constant; with a maximum that is
//!   not a power of two, up to half of it is unusable. Messages of many small integers
//!   reach the limit before their frame reaches the maximum, since bincode counts 8
//!   bytes per `u64`.
//! - The decode limit bounds what bincode charges, not what the decoded message
//!   occupies: boxes, nested vectors and strings (24 bytes each for a charge of 8) and
//!   enums with large variants occupy more than they are charged, so a message of such
//!   a type can occupy a multiple of the limit. Sequences of elements that take no
//!   bytes on the wire (`()`, `Box<()>`) are bounded only by the length they claim.
//!   Sequences start empty rather than at their claimed length, so a 64-byte `Vec<u8>`
//!   takes four allocations (8, 16, 32, 64 bytes) instead of one. Carry byte
//!   payloads as `bytes::Bytes` (with its `serde` feature) or another type that serde
//!   encodes as bytes: those decode in one allocation, checked against the limit first.
//! - Sending does not check the nesting depth (see the decoding rules above), unlike
//!   the decoded size: a message nested deeper than 128 levels is encoded and sent,
//!   then refused as malformed by its receiver, which closes the connection.
//! - Queues keep the room of their largest burst: a peer's outgoing buffer up to 1 MiB
//!   (beyond that it is replaced after each write), and the received envelopes' queue
//!   as many envelopes as the largest burst held ([`Options::inbound_capacity`] reads'
//!   worth at most). Giving room back at every pause cost throughput under steady
//!   load.
//! - Each direction between two servers has its own connection. On Linux a
//!   connection carrying data one way acknowledges in separate segments and takes the
//!   kernel's slower receive path, so a lone round trip costs about a third more than
//!   over one connection carrying both ways (measured in the crate's benchmark).

mod backoff;
mod codec;
mod config;
mod connection;
mod envelope;
mod error;
mod faults;
mod handshake;
mod inbox;
mod listener;
mod memory;
mod outbox;
mod server;
mod stats;
mod tls;

pub use codec::{decode_limit, decode_payload, encode_frame, FrameDecoder};
pub use config::{
    Config, Options, ServerAddress, ServerId, DEFAULT_CLUSTER_NAME, MAX_FRAME_SIZE_LIMIT,
    MIN_FRAME_SIZE_LIMIT,
};
pub use envelope::{Envelope, Incoming, PeerEvent};
pub use error::{ConfigError, FrameError, SendError, StartError};
pub use faults::{FaultError, Faults, LinkFaults};
pub use handshake::PROTOCOL_VERSION;
pub use memory::{LinkConditions, Network};
pub use server::{Sender, Server};
pub use stats::{PeerStats, ServerStats};
pub use tls::{certificate_ids, server_name, TlsError, TlsFiles, TlsIdentity};
