//! The failover benchmark's quick mode, so that the documented command cannot rot: the
//! simulator back end on two ranges and the process back end on a few trials, each
//! checked for the report's shape and for downtimes that are positive and bounded.

use std::path::Path;
use std::process::{Command, Stdio};

use tests::bench::stats::Summary;
use tests::raft_node_binary;

fn run_failover(out: &Path, args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_failover"))
        .args(args)
        .arg("--out")
        .arg(out)
        // The tables would only clutter the test's output; the files are checked.
        .stdout(Stdio::null())
        .status()
        .expect("cannot run failover");
    assert!(status.success(), "failover {args:?} failed: {status}");
}

fn read_summaries(path: &Path) -> Vec<Summary> {
    let text = std::fs::read_to_string(path).expect("the raw trials were written");
    serde_json::from_str(&text).expect("the raw trials parse")
}

/// Every trial ended with a new leader, after the crash and within `bound_ms`.
fn assert_bounded(summary: &Summary, bound_ms: f64) {
    for trial in &summary.trials {
        let downtime = trial.downtime_ms.expect("no trial hits the cap");
        assert!(
            downtime > 0.0 && downtime < bound_ms,
            "{}: downtime {downtime} ms outside (0, {bound_ms})",
            summary.label
        );
    }
}

#[test]
fn quick_simulation_reports_two_ranges_of_twenty_trials() {
    let out = tempfile::tempdir().expect("temporary directory");
    run_failover(out.path(), &["--backend", "sim", "--quick"]);

    let summaries = read_summaries(&out.path().join("failover-sim.json"));
    let labels: Vec<&str> = summaries.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["150-300", "12-24"]);
    for summary in &summaries {
        assert_eq!(summary.count(), 20);
        // A leader within ten maximum timeouts; one round takes about one.
        let max_ms = if summary.label == "12-24" {
            24.0
        } else {
            300.0
        };
        assert_bounded(summary, 10.0 * max_ms);
    }

    let table = std::fs::read_to_string(out.path().join("failover-sim.md")).expect("table");
    assert_eq!(
        table.lines().count(),
        4,
        "header, rule and two rows:\n{table}"
    );
    let svg = std::fs::read_to_string(out.path().join("failover-sim.svg")).expect("chart");
    assert!(
        svg.starts_with("<svg") && svg.contains("150-300"),
        "{svg:.200}"
    );
}

#[test]
fn quick_process_run_measures_a_few_leader_kills() {
    let out = tempfile::tempdir().expect("temporary directory");
    let binary = raft_node_binary()
        .to_str()
        .expect("a UTF-8 path")
        .to_string();
    let args = [
        "--backend",
        "process",
        "--quick",
        "--trials",
        "3",
        "--raft-node",
        &binary,
    ];
    run_failover(out.path(), &args);

    let summaries = read_summaries(&out.path().join("failover-process.json"));
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].label, "3 × 150-300 SIGKILL");
    assert_eq!(summaries[0].count(), 3);
    assert_bounded(&summaries[0], 10.0 * 300.0);
}
