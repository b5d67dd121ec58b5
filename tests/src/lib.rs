//! Helpers shared by the workspace-level tests that run whole clusters as processes.
//!
//! Each test builds a [`Cluster`]: a temporary directory holding a configuration file
//! with freshly chosen loopback ports, one data directory and one log file per server,
//! and the `raft-node` processes themselves (started with `--log-format json`, stderr
//! appended to `server-<ID>.log`). The cluster starts, kills (SIGKILL), terminates
//! (SIGTERM), pauses (SIGSTOP), resumes (SIGCONT) and restarts servers, and kills every
//! process it started when it is dropped, also when the test panics; after a failure
//! it keeps the directory and prints its path so the logs can be read.
//!
//! Every status read through the cluster, by `raft-node status --json`
//! ([`Cluster::status`], [`Cluster::poll_with_status_command`]) or from the status
//! ports directly ([`Cluster::observe`], [`Cluster::poll_status_ports`]), goes through
//! one [`History`] that fails the test when two servers claim leadership of the same
//! term or a server's term goes down. A [`Poller`] also fails it when a leader is
//! expected and none is seen for [`MAX_LEADERLESS`]. [`Cluster::finish`] then checks
//! the JSON logs: no term has two different "became leader" nodes, every leader a poll
//! saw is one the logs recorded, every leader had a majority of votes, and no server
//! voted for two candidates in one term.
//!
//! With [`ClusterSpec::faults`] the servers take the fault commands of their status
//! ports ([`Cluster::request`], [`Cluster::fault`]); with
//! [`ClusterSpec::address_per_server`] each listens on an address of its own, which
//! the partition tests combine with a [`Netns`] to cut links with iptables.
//!
//! Ports are chosen below the kernel's ephemeral range (see [`free_ports`]), so that
//! no outgoing connection can take the port of a server while it is down.
//!
//! Waits poll every 50 ms for an event (a status answer, a process state in `/proc`)
//! with limits of seconds ([`SETTLE_LIMIT`]); the only timed stretches are the ones
//! the tests observe, such as "no leader for 2 s".
//!
//! # Finding the binary
//!
//! `raft-node` is a binary-only package, so this crate cannot depend on it, and Cargo
//! only offers `CARGO_BIN_EXE_<name>` for binaries of the package under test. The tests
//! therefore run the binary Cargo put next to themselves: a test executable lives in
//! `<target-dir>/<profile>/deps/` (the `chaos` and `failover` binaries in
//! `<target-dir>/<profile>/` itself), so `<target-dir>/<profile>/raft-node` is the
//! binary of the same profile, wherever `CARGO_TARGET_DIR` points. Before the first
//! use in a test process, [`raft_node_binary`] runs `cargo build -p raft-node` once
//! for that target directory and profile (guarded by a `OnceLock`, so parallel tests
//! build once): `cargo test -p tests` alone does not build other packages' binaries,
//! and a stale binary would test old code. When the build is already up to date this
//! costs well under a second.

mod binary;
mod cluster;
mod history;
mod logs;
mod netns;
mod ports;
mod process;
mod status;

pub use binary::raft_node_binary;
pub use cluster::{agreed_leader, Cluster, ClusterSpec, Timing, SETTLE_LIMIT};
pub use history::{History, Poller, MAX_LEADERLESS};
pub use logs::{leaders_in_log, read_log, LogEvent};
pub use netns::Netns;
pub use ports::free_ports;
pub use process::{run_to_exit, Finished};
pub use status::{Observation, StatusRow};
pub mod bench;
pub mod chaos;
