//! `raft-node demo`: a whole cluster in one command, to watch, break and heal.
//!
//! The demo starts N real `raft-node` servers as child processes of this executable,
//! on free loopback ports, with their configuration, data and JSON logs in a temporary
//! directory. It polls each server's status address five times a second and reads the
//! servers' logs as they grow, and shows one row per server and a log of elections and
//! actions. Commands kill (SIGKILL), restart, pause (SIGSTOP) and resume (SIGCONT)
//! servers, split the network and heal it through each server's fault layer, hand
//! leadership over and slow links.
//!
//! In a terminal the view is redrawn in place and keys act on it; with `--script FILE`,
//! or commands on standard input when it is not a terminal, the commands run one after
//! the other and the view is printed as plain text, so the demo runs unattended in CI.
//! However the demo ends (q, Ctrl-C, SIGTERM, the end of the script, a failed
//! expectation, a panic), every server is killed and the temporary directory removed;
//! the election timeline is written as an SVG first.
//!
//! Even a demo killed with SIGKILL takes its servers with it: each server's standard
//! input is a pipe the demo holds, and a server started with `--exit-with-stdin` exits
//! when it closes. A server paused at that moment is woken by the kernel (its process
//! group is orphaned) with SIGHUP, which ends it. Only the temporary directory stays.

mod command;
mod network;
mod observe;
mod servers;
mod session;
mod terminal;
mod view;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use tokio::sync::mpsc;

use self::servers::{DemoDir, Servers};
use self::session::{Flow, Output, Session, POLL};
use self::terminal::{Input, Terminal};
use crate::config::{NodeConfig, Timing};

/// The demo's default timing: about seven times slower than the paper's, so that a
/// person can follow an election as it happens.
const WATCHING_TIMING: Timing = Timing {
    tick_ms: 10,
    election_timeout_min_ms: 1000,
    election_timeout_max_ms: 2000,
    heartbeat_interval_ms: 250,
};

/// Options of `raft-node demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many servers to start (ids 1 to N).
    #[arg(long, default_value_t = 5, value_name = "N")]
    #[arg(value_parser = clap::value_parser!(u64).range(1..=26))]
    nodes: u64,

    /// Take the server ids, the timing and the election switches from this raft-node
    /// configuration. Its addresses are not used: the demo picks free loopback ports.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["nodes", "fast"])]
    config: Option<PathBuf>,

    /// Run at the Raft paper's timing (election timeout 150-300 ms, heartbeat 50 ms)
    /// instead of the demo's slower 1000-2000 ms and 250 ms.
    #[arg(long)]
    fast: bool,

    /// Run the commands of FILE, one a line, printing the view as text; exit 1 when a
    /// command or expectation fails. Without it, commands are read from standard input
    /// when that is not a terminal.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,

    /// Keep the servers' configuration, data and logs in DIR (created if missing)
    /// instead of a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Keep the temporary directory at the end and print its path.
    #[arg(long)]
    keep: bool,

    /// Where the election timeline (SVG) is written when the demo ends.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "raft-node-demo-timeline.svg"
    )]
    timeline: PathBuf,

    /// Write no timeline at the end.
    #[arg(long, conflicts_with = "timeline")]
    no_timeline: bool,
}

/// Runs the demo until the person or the script ends it.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (base, timing, timing_source) = match &args.config {
        Some(path) => {
            let config = NodeConfig::load(path)?;
            let source = format!("from {}", path.display());
            (config.clone(), config.timing, source)
        }
        None if args.fast => {
            let config = NodeConfig::embedded_default();
            let timing = config.timing;
            (config, timing, "of the Raft paper (--fast)".to_string())
        }
        None => (
            NodeConfig::embedded_default(),
            WATCHING_TIMING,
            "slowed down to follow".to_string(),
        ),
    };
    let ids: Vec<u64> = match &args.config {
        Some(_) => base.servers.iter().map(|s| s.id).collect(),
        None => (1..=args.nodes).collect(),
    };

    let dir = match &args.data_dir {
        Some(path) => {
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            DemoDir::Kept(path.clone())
        }
        None => DemoDir::Temporary(
            tempfile::Builder::new()
                .prefix("raft-node-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?,
        ),
    };
    let servers = Servers::prepare(dir, "raft-demo", timing, base.election, &ids)?;

    let interactive = args.script.is_none() && std::io::stdin().is_terminal();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (output, keys) = if interactive {
            let (terminal, keys) = Terminal::open()?;
            (Output::Terminal(terminal), Some(keys))
        } else {
            (Output::Script, None)
        };
        let mut session = Session::start(servers, timing_source, output).await?;

        let outcome = match keys {
            Some(keys) => watch(&mut session, keys, &args.timeline).await,
            None => run_script(&mut session, script_lines(args.script.as_ref())?).await,
        };

        session.leave_terminal();
        if let Err(error) = &outcome {
            session.say(format!("demo failed: {error:#}"));
        }
        let timeline = (!args.no_timeline).then_some(args.timeline.as_path());
        session.finish(timeline)?;
        if args.keep || args.data_dir.is_some() {
            let kept = session.keep_dir();
            session.say(format!("files kept in {}", kept.display()));
        }
        session.say("all servers stopped".to_string());
        outcome
    })
}

/// The script's lines, from its file or from standard input as they are typed.
fn script_lines(script: Option<&PathBuf>) -> anyhow::Result<mpsc::UnboundedReceiver<String>> {
    let (send, lines) = mpsc::unbounded_channel();
    match script {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read script {}", path.display()))?;
            for line in text.lines() {
                let _ = send.send(line.to_string());
            }
        }
        None => {
            // A thread, because reading standard input blocks; it ends at end of input.
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
    }
    Ok(lines)
}

/// Runs the script's commands in order; stops at the first that fails, at `quit`, at
/// the end of the script, or on a stop signal.
async fn run_script(
    session: &mut Session,
    mut lines: mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<()> {
    let script = async {
        let mut number = 0;
        while let Some(line) = lines.recv().await {
            number += 1;
            let text = line.trim();
            let command = command::parse(text).map_err(|e| anyhow!("script line {number}: {e}"))?;
            let Some(command) = command else { continue };

            session.say(format!("> {text}"));
            let flow = session
                .execute(command)
                .await
                .with_context(|| format!("script line {number} ({text})"))?;
            session.frame(&format!("after: {text}"));
            if flow == Flow::Quit {
                break;
            }
        }
        anyhow::Ok(())
    };

    tokio::select! {
        outcome = script => outcome,
        signal = stop_signal() => Err(anyhow!("interrupted by {signal}")),
    }
}

/// The live view: redraws five times a second and acts on keys until q or Ctrl-C.
async fn watch(
    session: &mut Session,
    mut keys: mpsc::UnboundedReceiver<crossterm::event::Event>,
    timeline: &std::path::Path,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(POLL);
    let stop = stop_signal();
    tokio::pin!(stop);

    loop {
        let event = tokio::select! {
            _ = tick.tick() => {
                session.refresh().await;
                continue;
            }
            event = keys.recv() => event,
            _ = &mut stop => return Ok(()),
        };
        let Some(event) = event else { return Ok(()) };

        let input = match session.terminal() {
            Some(terminal) => terminal.on_event(event),
            None => Input::Nothing,
        };
        let line = match input {
            Input::Nothing => {
                session.draw();
                continue;
            }
            Input::Quit => return Ok(()),
            Input::Line(line) => line,
            Input::Shortcut(key) => match shortcut(session, key, timeline) {
                Some(line) => line,
                None => continue,
            },
        };

        let message = match command::parse(&line) {
            Ok(None) => String::new(),
            Ok(Some(command)) => match session.execute(command).await {
                Ok(Flow::Quit) => return Ok(()),
                Ok(Flow::Continue) => format!("done: {line}"),
                Err(error) => format!("{line}: {error:#}"),
            },
            Err(error) => error.to_string(),
        };
        if let Some(terminal) = session.terminal() {
            terminal.set_message(message);
        }
        session.draw();
    }
}

/// The command a shortcut key stands for, or `None` when it means nothing now.
fn shortcut(session: &mut Session, key: char, timeline: &std::path::Path) -> Option<String> {
    let line = match key {
        'k' => "kill leader".to_string(),
        'p' => "pause leader".to_string(),
        'r' => "restart".to_string(),
        'c' => "resume".to_string(),
        's' => format!("partition {}", network::ids(&session.split_around_leader())),
        'h' => "heal".to_string(),
        't' => "transfer".to_string(),
        'w' => format!("timeline {}", timeline.display()),
        '?' => "help".to_string(),
        _ => return None,
    };
    Some(line)
}

/// Completes on Ctrl-C, SIGTERM or SIGHUP and names the signal.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};

    let wait = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        () = wait(SignalKind::terminate()) => "SIGTERM",
        () = wait(SignalKind::hangup()) => "SIGHUP",
    }
}
