//! `raft-node`: one server of a Raft cluster.
fn main() {}
