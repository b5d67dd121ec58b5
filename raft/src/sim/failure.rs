//! The report a failed run produces: what broke, when, how to replay it, the trace.

use std::fmt;

use super::clock::{format_time, Micros};
use super::invariants::Violation;

/// How many trace lines a failure report carries; the replay command prints them all.
pub const REPORT_TRACE_LINES: usize = 300;

/// A failed simulation: the broken invariant, the seed and the command that replays it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed of the simulation that failed.
    pub seed: u64,
    /// The virtual time of the failing step.
    pub time: Micros,
    /// What broke.
    pub violation: Violation,
    /// A shell command that replays this run alone and prints its full trace.
    pub replay: String,
    /// The last lines of the trace, oldest first.
    pub trace_tail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulation failed: seed {} at {}",
            self.seed,
            format_time(self.time)
        )?;
        writeln!(f, "invariant: {}", self.violation)?;
        writeln!(f, "replay:    {}", self.replay)?;
        writeln!(f, "trace (last {REPORT_TRACE_LINES} lines):")?;
        f.write_str(&self.trace_tail)?;
        writeln!(f, "invariant: {}", self.violation)?;
        write!(f, "replay:    {}", self.replay)
    }
}

impl std::error::Error for Failure {}
