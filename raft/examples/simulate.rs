//! Runs the deterministic election simulator over many seeds, or replays one.
//!
//! ```text
//! cargo run -p raft --release --example simulate -- --seeds 1000000 [--start N] [--size N]
//! cargo run -p raft --release --example simulate -- --seed 1234 [--size N] --trace
//! ```
//!
//! Many seeds: prints a summary every 10,000 seeds and stops at the first failure with
//! its report (seed, invariant, replay command, trace tail); exit code 1 on failure.
//! One seed: runs it and, with `--trace`, prints its whole trace.

use std::process::ExitCode;
use std::time::Instant;

use raft::sim::{run_seed, run_seed_keeping_simulation, RunOptions, SimStats, MILLI};

const USAGE: &str =
    "usage: simulate [--seeds N] [--start N] [--size N] | --seed N [--size N] [--trace]";

#[derive(Debug, Default)]
struct Args {
    seeds: u64,
    start: u64,
    size: Option<usize>,
    seed: Option<u64>,
    trace: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seeds: 10_000,
        ..Args::default()
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = words.next().ok_or(format!("{name} needs a value"))?;
            text.replace('_', "")
                .parse()
                .map_err(|_| format!("{name}: not a number: {text}"))
        };
        match word.as_str() {
            "--seeds" => args.seeds = value("--seeds")?,
            "--start" => args.start = value("--start")?,
            "--size" => {
                let size = value("--size")?;
                if !(1..=64).contains(&size) {
                    return Err(format!("--size: {size} is not between 1 and 64"));
                }
                args.size = Some(size as usize);
            }
            "--seed" => args.seed = Some(value("--seed")?),
            "--trace" => args.trace = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };

    match args.seed {
        Some(seed) => replay(seed, &args),
        None => sweep(&args),
    }
}

fn replay(seed: u64, args: &Args) -> ExitCode {
    let options = RunOptions {
        size: args.size,
        // Keep every line of a single replay: it is the point of replaying.
        trace_capacity: args.trace.then_some(usize::MAX / 2),
        replay: None,
    };
    let (result, sim) = run_seed_keeping_simulation(seed, &options);
    if args.trace {
        if let Some(sim) = &sim {
            print!("{}", sim.trace());
        }
    }

    match result {
        Ok(report) => {
            let outcome = match (report.leader, report.elected_after) {
                (Some((leader, term)), Some(after)) => format!(
                    "leader s{leader} in term {term} agreed {} ms after faults stopped",
                    after / MILLI
                ),
                _ => "aggressive timing: safety checked only".to_string(),
            };
            println!(
                "seed {seed}: ok — {} servers, pre_vote {}, check_quorum {}, {} faults, \
                 {outcome}",
                report.size, report.pre_vote, report.check_quorum, report.faults
            );
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}

fn sweep(args: &Args) -> ExitCode {
    let started = Instant::now();
    let options = RunOptions {
        size: args.size,
        ..RunOptions::default()
    };
    let mut worst_election = 0;
    let mut steps = 0;
    let mut total = SimStats::default();

    for seed in args.start..args.start.saturating_add(args.seeds) {
        match run_seed(seed, &options) {
            Ok(report) => {
                worst_election = worst_election.max(report.elected_after.unwrap_or(0));
                steps += report.steps;
                add(&mut total, &report.stats);
            }
            Err(failure) => {
                eprintln!("{failure}");
                return ExitCode::FAILURE;
            }
        }

        let done = seed - args.start + 1;
        if done.is_multiple_of(10_000) || done == args.seeds {
            println!(
                "{done} seeds ok ({}..={seed}), {steps} steps, slowest election {} ms \
                 after faults stopped, {:.1} s",
                args.start,
                worst_election / MILLI,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("{total:?}");
    ExitCode::SUCCESS
}

fn add(total: &mut SimStats, run: &SimStats) {
    total.delivered += run.delivered;
    total.dropped += run.dropped;
    total.duplicated += run.duplicated;
    total.cut += run.cut;
    total.to_dead_server += run.to_dead_server;
    total.crashes += run.crashes;
    total.crashes_after_persist += run.crashes_after_persist;
    total.restarts += run.restarts;
    total.elections_won += run.elections_won;
    total.hints_acted_on += run.hints_acted_on;
    total.transfers_started += run.transfers_started;
}
