//! `chaos`: runs a real cluster of `raft-node` processes under a seeded schedule of
//! random faults, then checks the servers' logs and prints a summary. Exits 1 when a
//! rule was broken. See the `tests::chaos` docs for what is checked.
//!
//! ```sh
//! cargo run --release -p tests --bin chaos -- --servers 5 --duration 30m --seed 1
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use tests::chaos::{self, ChaosOptions};
use tests::Timing;

/// Runs a cluster of raft-node processes under random SIGKILL/restart,
/// SIGSTOP/SIGCONT, partitions/heals (through the fault commands of the status ports)
/// and leadership hand-overs, and checks their logs afterwards.
#[derive(Debug, Parser)]
struct Args {
    /// Number of servers.
    #[arg(long, default_value_t = 5)]
    servers: u64,
    /// How long to inject faults, such as 90s, 30m or 1h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule; the same seed injects the same faults. Default: the
    /// current time, printed so the run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// The servers' timing.
    #[arg(long, value_enum, default_value_t = TimingArg::Fast)]
    timing: TimingArg,
    /// Copy the logs, the configuration and the schedule to this directory.
    #[arg(long)]
    keep: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TimingArg {
    /// 100-200 ms election timeouts, 30 ms heartbeats.
    Fast,
    /// The embedded default: 150-300 ms, 50 ms heartbeats.
    Default,
}

/// Parses `90`, `90s`, `30m` or `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 90s, 30m or 1h)"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    });
    let timing = match args.timing {
        TimingArg::Fast => Timing::FAST,
        TimingArg::Default => Timing::DEFAULT,
    };
    let options = ChaosOptions {
        servers: args.servers,
        duration: args.duration,
        seed,
        timing,
    };
    eprintln!(
        "chaos: seed {seed}, {:?} of faults on {} servers",
        args.duration, args.servers
    );

    let summary = chaos::run(options, args.keep.as_deref());
    print!("{summary}");
    if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
