//! Raft leader election as a pure state machine.
//!
//! (Crate documentation: to be written with the core — how a driver uses it.)

mod config;
mod crc32;
mod file_storage;
mod memory_storage;
mod message;
mod node;
mod output;
mod storage;

pub mod sim;

pub use config::{Config, ConfigError};
pub use file_storage::FileStorage;
pub use memory_storage::MemoryStorage;
pub use message::{
    AppendRequest, AppendResponse, LogIndex, LogPosition, Message, NodeId, Term, VoteRequest,
    VoteResponse,
};
pub use node::Node;
pub use output::{Event, Outbound, Output, RefusalReason, Role};
pub use storage::{HardState, Storage, StorageError};
