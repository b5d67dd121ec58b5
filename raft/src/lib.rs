//! Raft leader election as a pure state machine.
