//! A short chaos soak for CI: 30 s of random SIGKILL/restart, SIGSTOP/SIGCONT,
//! partitions/heals and leadership hand-overs on five `raft-node` processes, then the
//! log checks. The long soak is the `chaos`
//! binary (see the README's robustness section).

use std::time::Duration;

use tests::chaos::{self, ChaosOptions};
use tests::Timing;

/// Under 30 s of seeded random crashes, restarts, pauses, resumptions, partitions,
/// heals and hand-overs, no term has two leaders, no server votes twice in a term
/// across restarts, every leader holds a majority, and whenever a connected majority
/// has been up for a few election timeouts a leader follows within the bound.
#[test]
fn a_cluster_under_random_faults_and_hand_overs_stays_safe_and_elects_leaders() {
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
    // Seed 1 draws every kind of fault and some hand-overs; a change to the schedule
    // that loses one of them should be noticed here.
    for kind in ["SIGKILL", "SIGSTOP", "isolate", "mute", "heal", "transfer"] {
        assert!(summary.actions.contains_key(kind), "no {kind}: {summary}");
    }
}
