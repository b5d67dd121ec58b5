//! A short chaos soak for CI: 30 s of random SIGKILL/restart and SIGSTOP/SIGCONT on
//! five `raft-node` processes, then the log checks. The long soak is the `chaos`
//! binary (see the README's robustness section).

use std::time::Duration;

use tests::chaos::{self, ChaosOptions};
use tests::Timing;

/// Under 30 s of seeded random crashes, restarts, pauses and resumptions, no term has
/// two leaders, no server votes twice in a term across restarts, every leader holds a
/// majority, and whenever a majority has been up for a few election timeouts a leader
/// follows within the bound.
#[test]
fn a_cluster_under_random_kills_and_pauses_stays_safe_and_elects_leaders() {
    let options = ChaosOptions {
        servers: 5,
        duration: Duration::from_secs(30),
        seed: 1,
        timing: Timing::FAST,
    };
    let summary = chaos::run(options, None);
    println!("{summary}");
    assert!(summary.is_clean(), "{summary}");
    assert!(summary.analysis.elections >= 1, "{summary}");
    assert!(summary.actions.values().sum::<usize>() >= 10, "{summary}");
}
