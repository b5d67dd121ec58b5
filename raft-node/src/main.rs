//! `raft-node`: one server of a Raft cluster, electing a leader with its peers over TCP.
//!
//! `raft-node <ID>` runs server ID of the cluster described by `--config FILE`, or by an
//! embedded default of five servers on 127.0.0.1 when no file is given, so that
//! `raft-node 1` to `raft-node 5` in five terminals form a cluster. `raft-node status`
//! asks every configured server how it is doing; `raft-node transfer` asks the leader to
//! hand its leadership over. `raft-node demo` starts a whole cluster on this machine to
//! watch, break and heal; `raft-node timeline` draws the election timeline from logs.

// A binary has no public API: `pub` marks what one module offers the others.
#![allow(unreachable_pub)]

mod certs;
mod config;
mod data_dir;
// The demo drives its servers with Unix signals and process groups.
#[cfg(unix)]
mod demo;
mod handover;
mod logging;
mod run;
mod status;
mod timeline;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::NodeConfig;
use crate::logging::LogFormat;

/// One server of a Raft cluster: elects a leader with its peers over TCP.
///
/// To see a whole cluster at once, run `raft-node demo`.
///
/// Start `raft-node 1` to `raft-node 5` in five terminals: with no --config they form
/// the embedded default cluster of five servers on 127.0.0.1 (ports 7001-7005, status
/// on 7101-7105). Stop one with Ctrl-C and watch the others elect a new leader.
#[derive(Debug, Parser)]
#[command(name = "raft-node", version, args_conflicts_with_subcommands = true)]
#[command(subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask every configured server for its status and print a table.
    ///
    /// Every server is asked at once and given half a second to answer; one that does
    /// not is shown as unreachable.
    Status(StatusArgs),
    /// Ask the leader to hand its leadership to another server, then wait to see it.
    ///
    /// The leader is found through the status addresses; it sends the target a
    /// TimeoutNow and the target wins an election at once. Without --to the leader
    /// picks the connected server it heard from most recently.
    Transfer(TransferArgs),
    /// Start a whole cluster on this machine, watch it elect, break it and heal it.
    ///
    /// Starts N real servers (child processes of this executable) on free loopback
    /// ports, with their state in a temporary directory, and shows a live view: one
    /// row per server (process, network, role, term, leader, vote, time since the
    /// leader was heard) and a log of elections and actions. Keys and typed commands
    /// (after ':') kill, restart, pause and resume servers, partition the network and
    /// heal it, hand leadership over and slow links; type 'help' for the list.
    /// Timeouts are slowed down so that elections can be followed (--fast for the
    /// paper's). q or Ctrl-C ends the demo: every server is stopped, the temporary
    /// directory removed and the election timeline written as an SVG.
    ///
    /// With --script FILE, or commands on standard input when it is not a terminal,
    /// the commands run unattended and the view is printed as text.
    #[cfg(unix)]
    Demo(demo::DemoArgs),
    /// Draw the election timeline (SVG) from servers' JSON logs.
    ///
    /// One lane per server coloured by role over time, with terms marked. Give the
    /// logs of servers run with --log-format json (and a demo's demo.log, if any,
    /// for its kills, pauses and partitions).
    Timeline(TimelineArgs),
    /// Create a development certificate authority and a certificate per server.
    ///
    /// Writes ca.pem and ca-key.pem (the authority), server-<ID>.pem and
    /// server-<ID>-key.pem for every configured server, and client.pem and
    /// client-key.pem for `raft-node status` and `transfer`, then prints the [tls]
    /// section to paste into the configuration. For trying TLS; use your own
    /// authority in production.
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
struct CertsArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Directory to write the files to (created if missing; existing files are not
    /// overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// How many days the certificates are valid.
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: u32,
}

#[derive(Debug, Args)]
struct TimelineArgs {
    /// JSON log files, one per server (any order).
    #[arg(required = true, value_name = "LOG")]
    logs: Vec<PathBuf>,

    /// Where to write the SVG.
    #[arg(long, value_name = "FILE", default_value = "timeline.svg")]
    out: PathBuf,
}

/// Options of the server itself.
#[derive(Debug, Args)]
struct RunArgs {
    /// The id of this server, as listed in the configuration.
    #[arg(required = true)]
    id: Option<u64>,

    #[command(flatten)]
    common: CommonArgs,

    /// Directory for this server's state (its term and vote) [default: ./raft-node-data/<ID>]
    ///
    /// Created if missing. Only one running server may use a directory at a time.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// How log lines are written to standard error. The level comes from RUST_LOG
    /// (default info; debug shows every message).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    log_format: LogFormat,

    /// Exit at once when standard input reaches its end. `raft-node demo` starts its
    /// servers with a pipe it holds as their standard input, so that they end with the
    /// demo even when it is killed with SIGKILL and cannot stop them itself.
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Print one JSON array of objects instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TransferArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// The server to hand leadership to [default: the leader's choice]
    #[arg(long, value_name = "ID")]
    to: Option<u64>,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// Cluster configuration (TOML): the servers with their ids and addresses, the
    /// timing, and the pre-vote and check-quorum switches. Without it, the embedded
    /// default of five servers on 127.0.0.1 is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl CommonArgs {
    fn load(&self) -> anyhow::Result<NodeConfig> {
        Ok(match &self.config {
            Some(path) => NodeConfig::load(path)?,
            None => NodeConfig::embedded_default(),
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    let result = match cli.command {
        Some(Command::Status(args)) => status_command(&args),
        Some(Command::Transfer(args)) => transfer_command(&args),
        #[cfg(unix)]
        Some(Command::Demo(args)) => demo::run(args),
        Some(Command::Certs(args)) => args.common.load().and_then(|config| {
            print!("{}", certs::write(&config, &args.out, args.days)?);
            Ok(())
        }),
        Some(Command::Timeline(args)) => timeline::write_from_logs(&args.logs, None, &args.out)
            .map(|summary| {
                println!("{summary}");
            }),
        None => run_command(cli.run),
    };

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("raft-node: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(args: RunArgs) -> anyhow::Result<()> {
    logging::init(args.log_format);
    if args.exit_with_stdin {
        exit_when_stdin_closes();
    }

    let config = args.common.load()?;
    // Cannot fail: clap requires the id when no subcommand is given.
    let id = args.id.expect("clap requires the id");
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from("raft-node-data").join(id.to_string()));

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run::run(config, id, &data_dir))
}

/// Watches standard input on a thread of its own and ends the process, as abruptly as
/// SIGKILL would, once it closes: the state on disk is written crash-safely anyway.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        tracing::info!("standard input closed, exiting");
        std::process::exit(0);
    });
}

fn status_command(args: &StatusArgs) -> anyhow::Result<()> {
    let config = args.common.load()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(status::query_all(&config))?;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", status::table(&rows));
    }
    Ok(())
}

fn transfer_command(args: &TransferArgs) -> anyhow::Result<()> {
    let config = args.common.load()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let account = runtime.block_on(transfer::transfer(&config, args.to))?;
    println!("{account}");
    Ok(())
}
