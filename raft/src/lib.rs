//! Raft leader election as a pure state machine.
//!
//! This crate is the election core of a Raft toolkit: the part of the protocol that
//! decides which server leads each term (Raft paper §5.1, §5.2 and §5.4.1), with the
//! pre-vote and check-quorum extensions of Ongaro's thesis (§9.6, §6.2, §4.2.3). A
//! [`Node`] holds no clock, socket, thread or async runtime: the program around it (the
//! *driver*) feeds it ticks and messages and carries out what it returns. Because every
//! input is explicit, a seeded random generator makes a whole cluster reproducible,
//! which the simulator in [`sim`] relies on.
//!
//! # Roles
//!
//! Every server starts as a **follower** that knows no leader. When it has heard from no
//! leader for a randomized election timeout it becomes a **pre-candidate** (with
//! [`Config::pre_vote`], the default) and polls the other voters for the next term
//! without changing its own; with a majority of pre-votes it becomes a **candidate**:
//! it enters the next term, votes for itself and asks for votes. A majority of votes
//! makes it **leader**, which sends heartbeats every [`Config::heartbeat_interval`]
//! ticks. Any message from a higher term sends a server back to follower, and with
//! [`Config::check_quorum`] (the default) a leader that no longer hears from a majority
//! steps down by itself.
//!
//! # Driving a node
//!
//! Call [`Node::tick`] once per tick of logical time, [`Node::step`] for each message
//! received, and [`Node::campaign`] to start an election on request. Two more inputs
//! make fail-over faster: [`Node::leader_unreachable`] when the transport sees the
//! leader's connection close (a crash hint, [`Config::crash_hint`]) and
//! [`Node::transfer_leadership`] to hand a leader's role to another server (thesis
//! §3.10). Each call returns
//! an [`Output`] to carry out **in order**: persist [`Output::hard_state`] when it is
//! set, then send [`Output::messages`], then report [`Output::events`].
//!
//! ```
//! use std::collections::VecDeque;
//!
//! use rand::SeedableRng;
//! use rand_chacha::ChaCha8Rng;
//! use raft::{
//!     Config, LogPosition, MemoryStorage, Node, NodeId, Outbound, Output, Role, Storage,
//!     StorageError,
//! };
//!
//! /// Carries out one output: persist first, then send.
//! fn handle(
//!     from: NodeId,
//!     output: Output,
//!     storage: &mut impl Storage,
//!     network: &mut VecDeque<(NodeId, Outbound)>,
//! ) -> Result<(), StorageError> {
//!     if let Some(state) = output.hard_state {
//!         storage.save(&state)?;
//!     }
//!     network.extend(output.messages.into_iter().map(|message| (from, message)));
//!     Ok(())
//! }
//!
//! let ids: [NodeId; 3] = [1, 2, 3];
//! let mut storages = vec![MemoryStorage::new(); ids.len()];
//! let mut nodes = Vec::new();
//! for (&id, storage) in ids.iter().zip(&mut storages) {
//!     let state = storage.load()?.unwrap_or_default();
//!     let rng = ChaCha8Rng::seed_from_u64(id);
//!     nodes.push(Node::new(Config::new(id, ids), state, LogPosition::default(), rng)?);
//! }
//!
//! let mut network = VecDeque::new();
//! let mut ticks = 0;
//! while !nodes.iter().any(|node| node.role() == Role::Leader) {
//!     for (index, node) in nodes.iter_mut().enumerate() {
//!         let output = node.tick();
//!         handle(node.id(), output, &mut storages[index], &mut network)?;
//!     }
//!     while let Some((from, Outbound { to, message })) = network.pop_front() {
//!         let index = ids.iter().position(|&id| id == to).expect("a known server");
//!         let output = nodes[index].step(from, message);
//!         handle(to, output, &mut storages[index], &mut network)?;
//!     }
//!     ticks += 1;
//!     assert!(ticks < 1_000, "a healthy cluster elects a leader quickly");
//! }
//!
//! let leader = nodes.iter().find(|node| node.role() == Role::Leader).expect("elected");
//! assert_eq!(storages[0].get().map(|state| state.term), Some(leader.term()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Persist before send
//!
//! A server must never reveal a term or a vote that a crash could make it forget: a
//! server that votes, crashes and restarts without its vote could vote again in the
//! same term and let two leaders be elected (§5.2). So whenever a call changes the term
//! or the vote, its [`Output::hard_state`] holds the new state, in the same output as
//! every message that depends on it, and the driver must store it durably before
//! sending anything.
//!
//! # Storage
//!
//! A [`Storage`] keeps a server's [`HardState`] (term and vote). [`Storage::save`] must
//! be durable when it returns; [`Storage::load`] returns `Ok(None)` only for a server that
//! never saved anything, and an error — never a fresh start — when the stored state is
//! unreadable. Two implementations are provided: [`FileStorage`], which replaces a small
//! checksummed file atomically, and [`MemoryStorage`], for tests and simulations.
//!
//! # Known shortcomings
//!
//! - No log replication yet: each server's last log position is fixed when the [`Node`]
//!   is created and only serves the up-to-date check of vote requests (§5.4.1); a
//!   heartbeat carries no entries and its consistency check is not made.
//! - No membership change: the voters are fixed by the [`Config`]; a server outside them
//!   is a non-voter that never campaigns and receives no heartbeats.

mod config;
mod crc32;
#[cfg(feature = "driver")]
mod driver;
mod file_storage;
mod memory_storage;
mod message;
mod node;
mod output;
mod storage;
mod transfer;

pub mod sim;

pub use config::{Config, ConfigError};
#[cfg(feature = "driver")]
pub use driver::{CommandError, Driver, DriverError, DriverHandle, Status};
pub use file_storage::FileStorage;
pub use memory_storage::MemoryStorage;
pub use message::{
    AppendRequest, AppendResponse, LogIndex, LogPosition, Message, NodeId, Term, VoteRequest,
    VoteResponse,
};
pub use node::Node;
pub use output::{Event, Outbound, Output, RefusalReason, Role};
pub use storage::{HardState, Storage, StorageError};
pub use transfer::TransferError;
