//! A chat between servers of one cluster, to watch messages flow.
//!
//! Run in two or three terminals, one id each:
//!
//! ```text
//! cargo run -p cluster --example chat -- 1
//! cargo run -p cluster --example chat -- 2
//! cargo run -p cluster --example chat -- 3
//! ```
//!
//! Each server broadcasts a numbered greeting every second and prints what arrives
//! with the sender's id; lines typed on stdin are broadcast too. Without `--config`
//! the cluster is three servers on 127.0.0.1 ports 7100 to 7102.
//!
//! With `--count N` it sends N greetings, waits until it has N greetings from every
//! peer, prints `done`, and exits (used by the workspace test that runs it as three
//! processes).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cluster::{Config, Incoming, PeerEvent, Server, ServerId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Parser)]
#[command(about = "Chat between the servers of a cluster")]
struct Args {
    /// This server's id.
    id: ServerId,
    /// Cluster configuration file (TOML); default: 3 servers on 127.0.0.1:7100-7102.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Milliseconds between greetings.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Send this many greetings, wait for as many from every peer, then exit.
    #[arg(long)]
    count: Option<u64>,
    /// Give up (exit code 1) after this many seconds.
    #[arg(long)]
    deadline_secs: Option<u64>,
    /// With --count: keep running this long after finishing, so peers get our last
    /// greetings before we close.
    #[arg(long, default_value_t = 1000)]
    linger_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum Chat {
    Greeting { number: u64 },
    Line(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = match &args.config {
        Some(path) => Config::from_file_for(path, args.id)?,
        None => Config::loopback(3, 7100),
    };
    let mut server = Server::<Chat>::start(&config, args.id).await?;
    println!("server {} listening, peers {:?}", args.id, server.peers());

    let deadline = args.deadline_secs.map(Duration::from_secs);
    let outcome = match deadline {
        Some(limit) => tokio::time::timeout(limit, chat(&mut server, &args))
            .await
            .unwrap_or_else(|_| {
                println!("deadline reached");
                ExitCode::FAILURE
            }),
        None => chat(&mut server, &args).await,
    };
    server.shutdown().await;
    Ok(outcome)
}

async fn chat(server: &mut Server<Chat>, args: &Args) -> ExitCode {
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms));
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut sent = 0u64;
    let mut greetings: BTreeMap<ServerId, u64> = BTreeMap::new();
    let wanted = args.count.unwrap_or(u64::MAX);

    loop {
        let finished = sent >= wanted
            && server
                .peers()
                .iter()
                .all(|p| greetings.get(p).copied().unwrap_or(0) >= wanted);
        if finished {
            println!(
                "done: {wanted} greetings from each of {} peers",
                server.peers().len()
            );
            tokio::time::sleep(Duration::from_millis(args.linger_ms)).await;
            return ExitCode::SUCCESS;
        }

        tokio::select! {
            _ = ticker.tick(), if sent < wanted => {
                sent += 1;
                if let Err(e) = server.broadcast(sent, &Chat::Greeting { number: sent }) {
                    eprintln!("cannot send: {e}");
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if let Err(e) = server.broadcast(0, &Chat::Line(line)) {
                        eprintln!("cannot send: {e}");
                    }
                }
                _ => stdin_open = false,
            },
            incoming = server.next() => match incoming {
                Some(Incoming::Message(envelope)) => match envelope.message {
                    Chat::Greeting { number } => {
                        *greetings.entry(envelope.from).or_insert(0) += 1;
                        println!("[from {}] greeting #{number}", envelope.from);
                    }
                    Chat::Line(text) => println!("[from {}] {text}", envelope.from),
                },
                Some(Incoming::Event(event)) => match event {
                    PeerEvent::Connected(peer) => println!("* peer {peer} connected"),
                    PeerEvent::Disconnected(peer) => println!("* peer {peer} disconnected"),
                    PeerEvent::DialRefused(peer) => println!("* peer {peer} not reachable"),
                },
                None => return ExitCode::FAILURE,
            },
        }
    }
}
