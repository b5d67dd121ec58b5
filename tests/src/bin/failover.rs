//! `failover`: how long a Raft cluster is without a leader after its leader fails.
//!
//! ```sh
//! cargo run --release -p tests --bin failover -- --backend sim|process|idle|all \
//!     [--quick] [--trials N] [--ranges 150-300,12-24] [--sizes 3,5,7] \
//!     [--modes kill,stop,term] [--set election.crash_hint=true] [--name SUFFIX] [--out DIR]
//! cargo run --release -p tests --bin failover -- --redraw tests/benchmarks/NAME.json
//! ```
//!
//! Tables go to standard output and, with the raw trials (JSON) and SVG charts, to
//! `--out` (default `tests/benchmarks`). See the `tests::bench` module and
//! BENCHMARKS.md for what is measured and how.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use tests::bench::chart::{write_svg, Panel};
use tests::bench::idle::{self, IdleCost};
use tests::bench::process::{run_setting, Mode, Setting};
use tests::bench::report::markdown;
use tests::bench::servers::Shape;
use tests::bench::sim::{self, parse_range, SimOptions, PAPER_RANGES};
use tests::bench::stats::Summary;

/// Which back end runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// The deterministic simulator on virtual time.
    Sim,
    /// Real raft-node processes on 127.0.0.1.
    Process,
    /// The idle cost of a five-server cluster of processes.
    Idle,
    /// All three.
    All,
}

/// Measures leader failover, on the simulator and on real processes.
#[derive(Debug, Parser)]
struct Args {
    /// Which back end to run.
    #[arg(long, value_enum, default_value = "sim")]
    backend: Backend,
    /// A few trials of two settings, for a check that the command works.
    #[arg(long)]
    quick: bool,
    /// Trials per setting (default: 1000 on the simulator, 200 with processes).
    #[arg(long)]
    trials: Option<usize>,
    /// Timeout ranges MIN-MAX in ms, comma-separated (default: the paper's ten on the
    /// simulator, 150-300,12-24 with processes).
    #[arg(long, value_delimiter = ',')]
    ranges: Vec<String>,
    /// Cluster sizes with processes.
    #[arg(long, value_delimiter = ',', default_value = "3,5,7")]
    sizes: Vec<u64>,
    /// How the leader fails with processes: kill (SIGKILL), stop (SIGSTOP), term
    /// (SIGTERM), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "kill,stop,term")]
    modes: Vec<String>,
    /// An extra configuration key for every process setting, as section.key=VALUE
    /// (a TOML value); may be repeated.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Simulator: give the survivors a crash hint when the leader crashes.
    #[arg(long)]
    sim_crash_hint: bool,
    /// A suffix for the output files, to keep runs apart.
    #[arg(long)]
    name: Option<String>,
    /// Where tables, raw trials and charts go.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The seed of the simulator and of the pauses between process trials.
    #[arg(long, default_value_t = 2014)]
    seed: u64,
    /// Virtual ms after which a simulated trial counts as capped.
    #[arg(long, default_value_t = 10_000)]
    cap_ms: u64,
    /// The raft-node binary (default: the one next to this program, built first when
    /// run through cargo).
    #[arg(long)]
    raft_node: Option<PathBuf>,
    /// Seconds over which the idle cost is measured.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Measure nothing: rewrite the table and the chart of an earlier run from its raw
    /// trials (the `.json` file it wrote), into `--out`.
    #[arg(long, value_name = "JSON")]
    redraw: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks"));
    std::fs::create_dir_all(&out)?;

    if let Some(json) = &args.redraw {
        return redraw(json, &out);
    }
    if matches!(args.backend, Backend::Sim | Backend::All) {
        run_sim(&args, &out)?;
    }
    if matches!(args.backend, Backend::Process | Backend::All) {
        run_processes(&args, &out)?;
    }
    if matches!(args.backend, Backend::Idle | Backend::All) {
        run_idle(&args, &out)?;
    }
    Ok(())
}

fn run_sim(args: &Args, out: &Path) -> anyhow::Result<()> {
    let ranges = if args.quick {
        vec![(150, 300), (12, 24)]
    } else if args.ranges.is_empty() {
        PAPER_RANGES.to_vec()
    } else {
        args.ranges
            .iter()
            .map(|r| parse_range(r))
            .collect::<anyhow::Result<_>>()?
    };
    let options = SimOptions {
        trials: args.trials.unwrap_or(if args.quick { 20 } else { 1000 }),
        seed: args.seed,
        cap: args.cap_ms * 1000,
        crash_hint: args.sim_crash_hint,
        ..SimOptions::default()
    };

    let summaries = run_ranges_in_parallel(&ranges, &options)?;
    let table = markdown(&summaries, true);
    let hint = if options.crash_hint {
        ", crash hints on"
    } else {
        ""
    };
    let trials = options.trials;
    println!("## Simulator: 5 servers, {trials} trials per range{hint}\n\n{table}");
    write_outputs(out, &stem("failover-sim", args), &summaries, &table)
}

/// Ranges are independent and deterministic, so they may run on every core at once
/// without changing any result.
fn run_ranges_in_parallel(
    ranges: &[(u64, u64)],
    options: &SimOptions,
) -> anyhow::Result<Vec<Summary>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<anyhow::Result<Summary>>>> =
        ranges.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&range) = ranges.get(index) else {
                    break;
                };
                let started = Instant::now();
                let result = sim::run_range(range, options);
                let seconds = started.elapsed().as_secs_f64();
                eprintln!("sim {}: {seconds:.1} s", sim::label(range));
                if let Ok(mut slot) = slots[index].lock() {
                    *slot = Some(result);
                }
            });
        }
    });

    let mut summaries = Vec::with_capacity(ranges.len());
    for slot in slots {
        let result = slot.into_inner().ok().flatten();
        summaries.push(result.context("a simulator worker died")??);
    }
    Ok(summaries)
}

fn run_processes(args: &Args, out: &Path) -> anyhow::Result<()> {
    let binary = raft_node(args)?;
    let (ranges, sizes, modes, trials) = if args.quick {
        (
            vec![(150, 300)],
            vec![3],
            vec![Mode::Kill],
            args.trials.unwrap_or(5),
        )
    } else {
        let ranges = if args.ranges.is_empty() {
            vec![(150, 300), (12, 24)]
        } else {
            args.ranges
                .iter()
                .map(|r| parse_range(r))
                .collect::<anyhow::Result<_>>()?
        };
        let modes = args
            .modes
            .iter()
            .map(|m| Mode::parse(m))
            .collect::<anyhow::Result<_>>()?;
        (
            ranges,
            args.sizes.clone(),
            modes,
            args.trials.unwrap_or(200),
        )
    };
    let extra = args
        .set
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .context("--set wants section.key=VALUE")?;
            Ok((key.trim().to_string(), value.trim().to_string()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let stem = stem("failover-process", args);
    let mut summaries = Vec::new();
    let mut failures = Vec::new();
    for &mode in &modes {
        for &range in &ranges {
            for &servers in &sizes {
                let mut setting = Setting::new(servers, range, mode);
                setting.shape.extra = extra.clone();
                let label = setting.label();
                let started = Instant::now();
                let result = run_setting(&binary, &setting, trials, args.seed, |n, trial| {
                    if (n + 1) % 50 == 0 {
                        eprintln!("{label}: {} trials, last {:?}", n + 1, trial.downtime_ms);
                    }
                });
                match result {
                    Ok(summary) => {
                        let seconds = started.elapsed().as_secs_f64();
                        eprintln!("{label}: done in {seconds:.0} s");
                        summaries.push(summary);
                    }
                    // One setting that cannot run (a switch the binary does not know
                    // yet) must not cost the others: report it and go on.
                    Err(error) => {
                        eprintln!("{label}: FAILED: {error:#}");
                        failures.push(format!("{label}: {error:#}"));
                    }
                }
                // Rewritten after every setting, so that a long run interrupted
                // midway still leaves what it measured.
                let mut table = markdown(&summaries, false);
                for failure in &failures {
                    table.push_str(&format!("\nNot run: {failure}\n"));
                }
                write_outputs(out, &stem, &summaries, &table)?;
            }
        }
    }
    let mut table = markdown(&summaries, false);
    for failure in &failures {
        table.push_str(&format!("\nNot run: {failure}\n"));
    }
    println!("## Processes: {trials} trials per setting\n\n{table}");
    Ok(())
}

/// The name of a back end's output files, with the run's `--name` if it has one.
fn stem(base: &str, args: &Args) -> String {
    match &args.name {
        Some(name) => format!("{base}-{name}"),
        None => base.to_string(),
    }
}

fn run_idle(args: &Args, out: &Path) -> anyhow::Result<()> {
    let binary = raft_node(args)?;
    let shape = Shape {
        servers: 5,
        tick_ms: 10,
        min_ms: 150,
        max_ms: 300,
        heartbeat_ms: 50,
        extra: Vec::new(),
    };
    let costs = idle::measure(&binary, &shape, Duration::from_secs(args.idle_seconds))?;
    let table = idle_table(&costs, args.idle_seconds);
    println!("## Idle five-server cluster\n\n{table}");
    std::fs::write(out.join("failover-idle.md"), table)?;
    Ok(())
}

fn idle_table(costs: &[IdleCost], seconds: u64) -> String {
    let mut table = format!(
        "Window {seconds} s; default timing (150-300 ms, heartbeat 50 ms, tick 10 ms).\n\n\
         | server | role | CPU % of a core | RSS MiB | role (trace run) | messages sent / s |\n\
         | ---: | --- | ---: | ---: | --- | ---: |\n"
    );
    for cost in costs {
        let role = |leader| if leader { "leader" } else { "follower" };
        table.push_str(&format!(
            "| {} | {} | {:.2} | {:.1} | {} | {:.1} |\n",
            cost.id,
            role(cost.leader),
            cost.cpu_percent,
            cost.rss_mib,
            role(cost.leader_in_trace_run),
            cost.sent_per_second
        ));
    }
    table
}

/// The raft-node binary: given, or the one of this program's profile, brought up to
/// date first (a stale binary would measure old code).
fn raft_node(args: &Args) -> anyhow::Result<PathBuf> {
    match &args.raft_node {
        Some(path) => Ok(path.clone()),
        None => Ok(tests::raft_node_binary().to_path_buf()),
    }
}

/// Writes `<stem>.md` (the table), `<stem>.json` (every trial) and `<stem>.svg`.
fn write_outputs(out: &Path, stem: &str, summaries: &[Summary], table: &str) -> anyhow::Result<()> {
    std::fs::write(out.join(format!("{stem}.md")), table)?;
    std::fs::write(
        out.join(format!("{stem}.json")),
        serde_json::to_string(summaries)?,
    )?;

    write_svg(&out.join(format!("{stem}.svg")), &panels(stem, summaries))
}

/// Like Figure 16: the slow ranges above, the fast ones below; and, for processes, one
/// panel per way of failing, since a timeout path's curves lie ten times further
/// right than a crash path's and would leave a shared panel.
fn panels<'a>(stem: &str, summaries: &'a [Summary]) -> Vec<Panel<'a>> {
    let mut panels = Vec::new();
    for (slow, ranges) in [(true, "minimum timeout 150 ms"), (false, "other ranges")] {
        for mode in ["SIGKILL", "SIGSTOP", "SIGTERM", ""] {
            let group: Vec<&Summary> = summaries
                .iter()
                .filter(|s| (s.min_timeout_ms >= 150.0) == slow)
                .filter(|s| match mode {
                    "" => !["SIGKILL", "SIGSTOP", "SIGTERM"]
                        .iter()
                        .any(|m| s.label.contains(m)),
                    mode => s.label.contains(mode),
                })
                .collect();
            if group.is_empty() {
                continue;
            }
            let title = match mode {
                "" => format!("{stem}: {ranges}"),
                mode => format!("{stem}: {ranges}, {mode}"),
            };
            panels.push(Panel {
                title,
                summaries: group,
            });
        }
    }
    panels
}

/// Rewrites the table and the chart of a finished run from its raw trials, under the
/// JSON file's own name.
fn redraw(json: &Path, out: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("cannot read {}", json.display()))?;
    let summaries: Vec<Summary> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the raw trials of a run", json.display()))?;
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the raw trials' file needs a name")?;
    let with_paper = summaries.iter().all(|s| !s.label.contains('×'));
    let table = markdown(&summaries, with_paper);
    println!("{table}");
    write_outputs(out, stem, &summaries, &table)
}
