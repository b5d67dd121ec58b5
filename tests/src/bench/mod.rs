//! The failover benchmark: how long a cluster is without a leader after its leader
//! fails, measured the way the Raft paper does (extended version, §9.3, Figure 16).
//!
//! Two back ends measure the same thing: [`sim`] runs the paper's experiment on the
//! deterministic simulator (virtual time, one seed decides everything), and [`process`]
//! runs `raft-node` processes on 127.0.0.1 and takes the leader away with SIGKILL,
//! SIGSTOP or SIGTERM, reading the downtime from the servers' JSON logs. [`idle`]
//! measures what an idle cluster costs. [`stats`] holds the trials and their figures,
//! [`report`] writes tables and [`chart`] the cumulative distributions as SVG. The
//! `failover` binary (`tests/src/bin/failover.rs`) runs them; BENCHMARKS.md has the
//! command and the results.

pub mod chart;
pub mod events;
pub mod idle;
pub mod process;
pub mod report;
pub mod servers;
pub mod sim;
pub mod stats;
