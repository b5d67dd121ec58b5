//! A cluster of `raft-node` processes over mutual TLS, with certificates made by
//! `raft-node certs`: it elects a leader and replaces a killed one as over plain TCP,
//! its status ports refuse a client without TLS, and a server whose key is not its
//! certificate's does not start.

use std::time::Duration;

use tests::{read_log, run_to_exit, Cluster, ClusterSpec};

/// Three servers over TLS elect a leader; after it is killed with SIGKILL the other
/// two elect a new one in a later term. Every server logged that its links use TLS,
/// none that they are plain TCP.
#[test]
fn a_cluster_over_tls_elects_and_fails_over() {
    let mut cluster = Cluster::start(ClusterSpec::new(3).tls(true));

    let (leader, term) = cluster.wait_for_leader();
    cluster.kill(leader);
    let (successor, successor_term) = cluster.wait_for_leader();
    assert_ne!(successor, leader);
    assert!(successor_term > term, "term {successor_term} after {term}");

    // A client without TLS gets no answer from a status port.
    assert_eq!(cluster.request(successor, "status"), None);

    for id in cluster.ids() {
        let messages: Vec<String> = read_log(&cluster.log_path(id))
            .into_iter()
            .map(|event| event.message)
            .collect();
        assert!(
            messages.iter().any(|m| m == "peer links use TLS"),
            "server {id}"
        );
        assert!(
            !messages.iter().any(|m| m.contains("plain TCP")),
            "server {id}"
        );
    }
    cluster.finish();
}

/// A configuration whose key is another server's: the server exits at once with an
/// error naming the field and the key file.
#[test]
fn a_server_with_the_wrong_key_does_not_start() {
    let cluster = Cluster::new(ClusterSpec::new(3).tls(true));
    let text = std::fs::read_to_string(cluster.config_path()).expect("configuration");
    let wrong = text.replace("server-{id}-key.pem", "server-1-key.pem");
    assert_ne!(wrong, text, "the [tls] section names a key per server");
    let path = cluster.dir().join("wrong-key.toml");
    std::fs::write(&path, wrong).expect("write configuration");

    let mut command = cluster.command();
    command
        .arg("2")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(cluster.data_dir(2));
    let finished = run_to_exit(&mut command, Duration::from_secs(10));

    assert!(!finished.status.success());
    let stderr = finished.stderr;
    assert!(stderr.contains("wrong-key.toml: tls.key:"), "{stderr}");
    assert!(
        stderr.contains("server-1-key.pem: does not match"),
        "{stderr}"
    );
}
