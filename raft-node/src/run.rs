//! Running one server: open its data directory and state, bind its addresses, then let
//! the driver run the election until Ctrl-C or SIGTERM (after handing leadership over,
//! with `transfer_on_stop`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use raft::{Driver, FileStorage, HardState, LogPosition, Node, Storage};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;

use crate::config::NodeConfig;
use crate::data_dir::DataDir;
use crate::{handover, status};

/// Runs server `id` of `config` with its state in `data_dir` until it is told to stop.
pub async fn run(config: NodeConfig, id: u64, data_dir: &Path) -> anyhow::Result<()> {
    let me = config.server(id)?.clone();
    let data = DataDir::open(data_dir)?;

    let mut storage = FileStorage::open(data.state_file())?;
    let state = storage.load()?.unwrap_or_default();
    let rng = ChaCha8Rng::from_os_rng();
    let node = Node::new(config.raft_config(id), state, LogPosition::default(), rng)
        .with_context(|| format!("{}: invalid election settings", config.source))?;

    // The status address speaks TLS with the server's own certificate. Loading it here
    // also fails a start on bad files before any address is bound.
    let status_tls = match &config.tls {
        Some(tls) => {
            let identity = cluster::TlsIdentity::for_server(&tls.files(), &config.cluster_name, id)
                .with_context(|| config.source.clone())?;
            Some(tokio_rustls::TlsAcceptor::from(identity.server_config()))
        }
        None => None,
    };

    // Bind the status address first: it fails fast, before any peer sees us.
    let status_listener = TcpListener::bind(me.status_address)
        .await
        .with_context(|| {
            format!(
                "cannot listen on status address {} (in use?)",
                me.status_address
            )
        })?;
    let server = cluster::Server::start(&config.cluster_config(), id)
        .await
        .with_context(|| format!("cannot start server {id} on {}", me.address))?;
    // Taken before the driver owns the server: the status address changes the faults.
    let faults = server.faults();

    print_banner(&config, id, &data, &state);

    let driver = Driver::new(node, storage, server, config.timing.tick());
    let handle = driver.handle();
    let status_task = tokio::spawn(status::serve(
        status_listener,
        driver.status(),
        handle.clone(),
        faults,
        status_tls,
    ));

    // The driver keeps running while the shutdown future hands leadership over: it is
    // polled inside the driver's loop, which also carries out the command.
    let transfer_on_stop = config.election.transfer_on_stop;
    let limit = Duration::from_millis(config.timing.election_timeout_max_ms);
    let status = driver.status();
    let shutdown = async move {
        stop_signal().await;
        if transfer_on_stop {
            handover::hand_over(&handle, status, limit).await;
        }
    };

    let outcome = driver.run(shutdown).await;
    status_task.abort();
    outcome.context("the server stopped")?;

    tracing::info!(node = id, "stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };

    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, stopping"),
        () = term => tracing::info!("sigterm received, stopping"),
    }
}

/// The short block printed at start: who we are, where we listen, peers, state.
fn print_banner(config: &NodeConfig, id: u64, data: &DataDir, state: &HardState) {
    let me = config.servers.iter().find(|server| server.id == id);
    let t = &config.timing;
    let on_off = |on: bool| if on { "on" } else { "off" };

    let mut peers = Vec::new();
    for server in config.servers.iter().filter(|server| server.id != id) {
        peers.push(format!("{}={}", server.id, server.address));
    }
    let vote = state
        .voted_for
        .map_or("nobody".to_string(), |v| v.to_string());

    println!(
        "raft-node {id} of cluster {:?} ({} servers, config {})",
        config.cluster_name,
        config.servers.len(),
        config.source
    );
    if let Some(me) = me {
        println!("  listening  {} (status {})", me.address, me.status_address);
    }
    println!("  peers      {}", peers.join(" "));
    println!(
        "  state      {} (term {}, voted for {vote})",
        data.state_file().display(),
        state.term
    );
    println!(
        "  timing     election timeout {}-{} ms, heartbeat {} ms, tick {} ms, \
         pre-vote {}, check-quorum {}",
        t.election_timeout_min_ms,
        t.election_timeout_max_ms,
        t.heartbeat_interval_ms,
        t.tick_ms,
        on_off(config.election.pre_vote),
        on_off(config.election.check_quorum)
    );
    println!(
        "  failover   crash-hint {}, transfer-on-stop {}",
        on_off(config.election.crash_hint),
        on_off(config.election.transfer_on_stop)
    );
    match &config.tls {
        Some(tls) => println!(
            "  tls        on, peer links and status address (ca {})",
            tls.ca.display()
        ),
        None => println!("  tls        off: links and status address are plain TCP"),
    }
    if config.faults.enabled {
        println!("  faults     on: the status address takes fault commands (tests only)");
    }
}
