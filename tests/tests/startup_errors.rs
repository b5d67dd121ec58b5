//! A server that cannot start says why, naming what to fix, and exits non-zero
//! instead of running half-configured.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::{run_to_exit, Cluster, ClusterSpec};

/// Long enough for any refusal; a server that starts after all is killed then.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs `command`, which must fail with one `raft-node: error: ...` line; returns the
/// message after the prefix.
fn refusal(command: &mut Command) -> String {
    let finished = run_to_exit(command, LIMIT);
    assert!(
        !finished.status.success(),
        "{command:?} succeeded; stderr:\n{}",
        finished.stderr
    );
    let line = finished
        .stderr
        .lines()
        .find(|line| line.starts_with("raft-node: error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{}", finished.stderr));
    line["raft-node: error: ".len()..].to_string()
}

/// `raft-node <id> --config <the cluster's file> --data-dir <dir>`.
fn server_command(cluster: &Cluster, id: u64, data_dir: &Path) -> Command {
    let mut command = cluster.command();
    command
        .arg(id.to_string())
        .arg("--config")
        .arg(cluster.config_path())
        .arg("--data-dir")
        .arg(data_dir);
    command
}

/// An id the configuration does not list is refused, naming the file and the ids.
#[test]
fn an_id_missing_from_the_configuration_is_refused_naming_the_known_ids() {
    let cluster = Cluster::new(ClusterSpec::new(3));
    let data_dir = cluster.dir().join("data-9");

    let error = refusal(&mut server_command(&cluster, 9, &data_dir));

    let config = cluster.config_path().display().to_string();
    assert_eq!(
        error,
        format!("{config}: servers: no server has id 9 (ids: 1, 2, 3)")
    );
}

/// The cluster's configuration with `address` replaced by the address of a listener
/// held here, so the server finds it taken. The listener comes from binding port 0, so
/// nothing else can have taken it between choosing and holding it.
fn with_address_held(cluster: &Cluster, address: SocketAddr) -> (PathBuf, TcpListener) {
    let holder = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    let held = holder.local_addr().expect("the held address");
    let text = std::fs::read_to_string(cluster.config_path()).expect("the written config");
    let quoted = format!("\"{address}\"");
    assert_eq!(
        text.matches(&quoted).count(),
        1,
        "{address} once in:\n{text}"
    );
    let path = cluster.dir().join("held.toml");
    std::fs::write(&path, text.replace(&quoted, &format!("\"{held}\""))).expect("write");
    (path, holder)
}

/// A server whose election address is taken exits, naming the address.
#[test]
fn an_election_address_in_use_is_refused_naming_the_address() {
    let cluster = Cluster::new(ClusterSpec::new(3));
    let (config, holder) = with_address_held(&cluster, cluster.address(1));
    let held = holder.local_addr().expect("the held address");

    let mut command = cluster.command();
    command.arg("1").arg("--config").arg(&config);
    command.arg("--data-dir").arg(cluster.data_dir(1));
    let error = refusal(&mut command);

    assert!(
        error.contains(&format!("cannot start server 1 on {held}")),
        "{error}"
    );
}

/// A server whose status address is taken exits, naming the address.
#[test]
fn a_status_address_in_use_is_refused_naming_the_address() {
    let cluster = Cluster::new(ClusterSpec::new(3));
    let (config, holder) = with_address_held(&cluster, cluster.status_address(2));
    let held = holder.local_addr().expect("the held address");

    let mut command = cluster.command();
    command.arg("2").arg("--config").arg(&config);
    command.arg("--data-dir").arg(cluster.data_dir(2));
    let error = refusal(&mut command);

    assert!(
        error.contains(&format!("cannot listen on status address {held}")),
        "{error}"
    );
}

/// A configuration that is missing, not TOML, or lists an id twice is refused by the
/// server and by `raft-node status`, naming the file (and the field where there is one).
#[test]
fn an_unreadable_or_invalid_configuration_is_refused_naming_file_and_field() {
    let cluster = Cluster::new(ClusterSpec::new(3));
    let dir = cluster.dir();
    let good = std::fs::read_to_string(cluster.config_path()).expect("the written config");
    let run = |config: &Path| {
        let mut server = cluster.command();
        server.arg("1").arg("--config").arg(config);
        server.arg("--data-dir").arg(dir.join("data"));
        let mut status = cluster.command();
        status.args(["status", "--json", "--config"]).arg(config);
        let from_server = refusal(&mut server);
        assert_eq!(
            refusal(&mut status),
            from_server,
            "server and status differ"
        );
        from_server
    };

    let missing = dir.join("missing.toml");
    let error = run(&missing);
    let expected = format!("{}: cannot read the file: ", missing.display());
    assert!(error.starts_with(&expected), "{error}");

    let not_toml = dir.join("not-toml.toml");
    std::fs::write(&not_toml, "cluster_name = \"e2e\"\n[timing\n").expect("write");
    let error = run(&not_toml);
    assert!(
        error.starts_with(&format!("{}: ", not_toml.display())),
        "{error}"
    );

    // The first server entry again, under the same id but with other ports.
    let duplicate = dir.join("duplicate.toml");
    let first = good.find("[[servers]]").expect("a server entry");
    let copy = good[first..]
        .split("\n\n")
        .next()
        .expect("the first entry")
        .replace("address = \"127.0.0.1:", "address = \"127.0.0.2:");
    std::fs::write(&duplicate, format!("{good}\n{copy}\n")).expect("write");
    let error = run(&duplicate);
    assert_eq!(
        error,
        format!(
            "{}: servers[3].id: id 1 is listed twice",
            duplicate.display()
        )
    );
}

/// A data directory that cannot be created (its parent is a regular file; the tests
/// may run as root, where permissions would not stop a write) is refused by path.
#[test]
fn a_data_directory_that_cannot_be_created_is_refused_naming_it() {
    let cluster = Cluster::new(ClusterSpec::new(3));
    let file = cluster.dir().join("a-file");
    std::fs::write(&file, "not a directory").expect("write");
    let data_dir = file.join("data");

    let error = refusal(&mut server_command(&cluster, 1, &data_dir));

    let expected = format!("data directory {}: cannot create it", data_dir.display());
    assert!(error.starts_with(&expected), "{error}");
}

/// A second server on the data directory of a running one is refused, naming the
/// directory and the pid that holds it; the running server is unharmed.
#[test]
fn a_data_directory_used_by_a_running_server_is_refused_naming_its_pid() {
    let mut cluster = Cluster::new(ClusterSpec::new(3));
    cluster.start_server(1);
    let pid = cluster.pid(1).expect("server 1 runs");

    let data_dir = cluster.data_dir(1);
    let error = refusal(&mut server_command(&cluster, 2, &data_dir));

    let expected = format!(
        "data directory {} is already used by a running server (pid {pid})",
        data_dir.display()
    );
    assert!(error.starts_with(&expected), "{error}");
    let seen = cluster.observe();
    assert!(seen.iter().any(|s| s.id == 1), "server 1 stopped answering");
    cluster.finish();
}

/// A state file of garbage is refused by path rather than replaced by a fresh state,
/// which could let the server vote twice in a term; the file is left as it was.
#[test]
fn a_corrupt_state_file_is_refused_naming_it_and_left_untouched() {
    let cluster = Cluster::new(ClusterSpec::new(3));
    let state = cluster.state_file(1);
    std::fs::create_dir_all(cluster.data_dir(1)).expect("create the data directory");
    let garbage: Vec<u8> = (0..33u8).map(|byte| byte.wrapping_mul(37)).collect();
    std::fs::write(&state, &garbage).expect("write");

    let error = refusal(&mut server_command(&cluster, 1, &cluster.data_dir(1)));

    let expected = format!("{}: not a valid state file", state.display());
    assert!(error.contains(&expected), "{error}");
    assert!(
        error.contains("refusing to start with a fresh state"),
        "{error}"
    );
    assert_eq!(std::fs::read(&state).expect("read"), garbage);
}
