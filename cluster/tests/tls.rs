//! Mutual TLS on the links: servers holding certificates of the cluster's authority
//! exchange messages, and every other party is refused while they carry on: another
//! authority, a certificate bound to another id, an expired certificate, a peer
//! without TLS. Bad files stop a server from starting, naming the file.
//!
//! Certificates are made at test time with rcgen; no key is committed.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cluster::{Config, Server, ServerId, StartError, TlsFiles, PROTOCOL_VERSION};
use common::{capture_logs, hello, note, Captured, Note, PATIENCE};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The cluster name the certificates are bound to (the default of `Config::new`).
const CLUSTER: &str = "cluster";

/// A certificate authority and the directory its files are written to.
struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    dir: PathBuf,
}

impl Authority {
    /// A fresh authority; writes `<label>-ca.pem` into `dir`.
    fn new(dir: &Path, label: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{label} test authority"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed authority");
        std::fs::write(dir.join(format!("{label}-ca.pem")), cert.pem()).expect("write ca");
        Authority {
            cert,
            key,
            dir: dir.to_owned(),
        }
    }

    /// Issues a certificate for the DNS name of server `id`, valid from `days.0` to
    /// `days.1` days from now; writes `<file>.pem` and `<file>-key.pem`.
    fn issue(&self, file: &str, id: ServerId, days: (i64, i64)) -> (PathBuf, PathBuf) {
        let name = cluster::server_name(CLUSTER, id);
        let mut params = CertificateParams::new(vec![name.clone()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days.0);
        params.not_after = now + time::Duration::days(days.1);

        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed certificate");
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// A temporary directory with an authority `good` that has issued `server-<id>.pem`
/// for ids 1 to `n`.
fn pki(n: u64) -> (TempDir, Authority) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let authority = Authority::new(dir.path(), "good");
    for id in 1..=n {
        authority.issue(&format!("server-{id}"), id, (-1, 30));
    }
    (dir, authority)
}

/// The `[tls]` files of the good authority's servers in `dir`.
fn good_files(dir: &Path) -> TlsFiles {
    TlsFiles::new(
        dir.join("good-ca.pem"),
        dir.join("server-{id}.pem"),
        dir.join("server-{id}-key.pem"),
    )
}

/// Waits until the captured logs hold a line with every one of `parts`.
async fn wait_for_log(logs: &Captured, parts: &[&str]) -> String {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            let text = logs.text();
            if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no log line with {parts:?} in:\n{}", logs.text()))
}

/// Servers 1 and 2 (of `servers`) broadcast one note each and each receives the
/// other's: the cluster carries on.
async fn assert_one_and_two_exchange(servers: &mut [Server<Note>]) {
    servers[0].broadcast(1, &note(1)).expect("broadcast");
    servers[1].broadcast(2, &note(2)).expect("broadcast");
    for (index, from) in [(0, 2), (1, 1)] {
        let envelope = tokio::time::timeout(PATIENCE, servers[index].recv())
            .await
            .expect("a note in time")
            .expect("server running");
        assert_eq!(envelope.from, from);
        assert_eq!(envelope.message, note(from));
    }
}

/// Three servers over TLS connect to each other and deliver every broadcast, each
/// envelope marked with its sender; none warns that its links are plain TCP.
#[tokio::test]
async fn servers_of_one_authority_deliver_over_tls() {
    let (logs, _guard) = capture_logs();
    let (dir, _authority) = pki(3);
    let (config, listeners) = common::loopback_cluster(3);
    let config = config.with_tls(good_files(dir.path()));
    let (_, mut servers) = common::start_on::<Note>(config, listeners).await;

    for server in &servers {
        server
            .broadcast(server.id(), &note(server.id()))
            .expect("broadcast");
    }
    for server in &mut servers {
        let envelopes = common::recv_n(server, 2).await;
        let senders: BTreeSet<ServerId> = envelopes.iter().map(|e| e.from).collect();
        let others: BTreeSet<ServerId> = server.peers().iter().copied().collect();
        assert_eq!(senders, others);
        assert!(envelopes.iter().all(|e| e.message == note(e.from)));
    }
    assert!(!logs.text().contains("plain TCP"), "{}", logs.text());
    common::shutdown_all(servers).await;
}

/// During a rotation the `ca` file holds the old and the new authority: servers with
/// certificates of either connect to each other and deliver.
#[tokio::test]
async fn a_ca_file_with_two_authorities_admits_certificates_of_both() {
    let (dir, _old) = pki(2);
    let new = Authority::new(dir.path(), "new");
    new.issue("server-3", 3, (-1, 30));
    let bundle = dir.path().join("bundle.pem");
    let both = [
        dir.path().join("good-ca.pem"),
        dir.path().join("new-ca.pem"),
    ]
    .map(|path| std::fs::read_to_string(path).expect("read authority"))
    .concat();
    std::fs::write(&bundle, both).expect("write bundle");

    let files = TlsFiles {
        ca: bundle,
        ..good_files(dir.path())
    };
    let (config, listeners) = common::loopback_cluster(3);
    let (_, mut servers) = common::start_on::<Note>(config.with_tls(files), listeners).await;

    servers[2].broadcast(3, &note(3)).expect("broadcast");
    for server in &mut servers[..2] {
        let envelope = common::recv_n(server, 1).await.remove(0);
        assert_eq!((envelope.from, envelope.message), (3, note(3)));
    }
    common::shutdown_all(servers).await;
}

/// A server whose certificate comes from another authority is refused by the others
/// (its client certificate is not trusted), and refuses nothing it could use: servers
/// 1 and 2 keep exchanging messages.
#[tokio::test]
async fn a_server_of_another_authority_is_refused_while_the_others_carry_on() {
    let (logs, _guard) = capture_logs();
    let (dir, _good) = pki(2);
    let other = Authority::new(dir.path(), "other");
    let (cert, key) = other.issue("impostor-3", 3, (-1, 30));

    let (config, mut listeners) = common::loopback_cluster(3);
    let impostor_listener = listeners.pop().expect("three listeners");
    let good = config.clone().with_tls(good_files(dir.path()));
    // It trusts the good authority, so that only its own certificate is at fault.
    let impostor = config.with_tls(TlsFiles::new(dir.path().join("good-ca.pem"), cert, key));

    let mut servers = Vec::new();
    for (id, listener) in (1..).zip(listeners) {
        let server = Server::<Note>::start_with_listener(&good, id, listener).await;
        servers.push(server.expect("server starts"));
    }
    let mut three = Server::<Note>::start_with_listener(&impostor, 3, impostor_listener)
        .await
        .expect("the impostor starts: its files are consistent");

    let refusal = wait_for_log(&logs, &["handshake refused", "TLS", "UnknownIssuer"]).await;
    assert!(refusal.contains("WARN"), "{refusal}");
    let failure = wait_for_log(&logs, &["TLS handshake failed", "peer=3"]).await;
    assert!(failure.contains("UnknownIssuer"), "{failure}");

    three.broadcast(3, &note(3)).expect("broadcast");
    assert_one_and_two_exchange(&mut servers).await;
    for server in &servers {
        assert!(!server.stats().peers[&3].connected);
    }
    assert!(three.try_recv().is_none());
    three.shutdown().await;
    common::shutdown_all(servers).await;
}

/// A dialer's TLS configuration built by hand, without the checks of `TlsIdentity`
/// (which refuses an expired certificate): it trusts the good authority and presents
/// `cert` and `key`.
fn client_config(dir: &Path, cert: &Path, key: &Path) -> Arc<rustls::ClientConfig> {
    let read = |path: &Path| std::fs::read(path).expect("read PEM");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&dir.join("good-ca.pem"))) {
        roots.add(ca.expect("PEM")).expect("authority");
    }
    let chain = CertificateDer::pem_slice_iter(&read(cert))
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM");
    let key = PrivateKeyDer::from_pem_slice(&read(key)).expect("PEM key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client configuration");
    Arc::new(config)
}

/// Opens a TLS connection to `addr` presenting `cert` and `key`, asking for the name
/// of server `to`, introduces itself as `claimed` and returns the answer's status
/// byte, or the error that ended the exchange.
async fn dial_as(
    addr: std::net::SocketAddr,
    dir: &Path,
    cert: &Path,
    key: &Path,
    to: ServerId,
    claimed: ServerId,
) -> std::io::Result<u8> {
    let connector = tokio_rustls::TlsConnector::from(client_config(dir, cert, key));
    let name = ServerName::try_from(cluster::server_name(CLUSTER, to)).expect("DNS name");
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = connector.connect(name, tcp).await?;
    stream
        .write_all(&hello(PROTOCOL_VERSION, CLUSTER, claimed))
        .await?;
    stream.flush().await?;
    let mut answer = [0u8; 5];
    stream.read_exact(&mut answer).await?;
    assert_eq!(answer[..4], [0, 0, 0, 1], "answer is a one-byte frame");
    Ok(answer[4])
}

/// A dialer with a valid certificate of server 2 that claims to be server 3 is refused
/// with status 6, and the refusal is logged with its address, the claimed id and the
/// certificate's id. The same certificate claiming 2 is accepted.
#[tokio::test]
async fn a_certificate_for_another_id_is_refused_with_both_ids_logged() {
    let (logs, _guard) = capture_logs();
    let (dir, good) = pki(3);
    let (config, listeners) = common::loopback_cluster(3);
    let config = config.with_tls(good_files(dir.path()));
    let (config, mut servers) = common::start_on::<Note>(config, listeners).await;
    let addr = config.address_of(1).expect("server 1");
    let (cert, key) = good.issue("another-2", 2, (-1, 30));

    let status = dial_as(addr, dir.path(), &cert, &key, 1, 3).await;
    assert_eq!(
        status.expect("an answer"),
        6,
        "refused: id not in the certificate"
    );
    let line = wait_for_log(&logs, &["handshake refused", "claimed=3"]).await;
    assert!(line.contains("certificate=[2]"), "{line}");
    assert!(
        line.contains("sender id not bound to its certificate"),
        "{line}"
    );
    assert!(line.contains("addr=127.0.0.1:"), "{line}");

    let status = dial_as(addr, dir.path(), &cert, &key, 1, 2).await;
    assert_eq!(
        status.expect("an answer"),
        0,
        "accepted: the id it is bound to"
    );

    // A dialer asking for server 1's name at server 2's address finds 2's certificate.
    let two = config.address_of(2).expect("server 2");
    let wrong_name = dial_as(two, dir.path(), &cert, &key, 1, 2).await;
    let error = wrong_name.expect_err("a listener's certificate must match the id dialled");
    assert!(error.to_string().contains("certificate"), "{error}");

    assert_one_and_two_exchange(&mut servers).await;
    common::shutdown_all(servers).await;
}

/// An expired certificate fails the TLS handshake on the listener's side, and the
/// server logs the refusal.
#[tokio::test]
async fn an_expired_certificate_is_refused_at_the_handshake() {
    let (logs, _guard) = capture_logs();
    let (dir, good) = pki(2);
    let (config, listeners) = common::loopback_cluster(2);
    let config = config.with_tls(good_files(dir.path()));
    let (config, servers) = common::start_on::<Note>(config, listeners).await;
    let (cert, key) = good.issue("expired-2", 2, (-30, -1));

    let addr = config.address_of(1).expect("server 1");
    let outcome = dial_as(addr, dir.path(), &cert, &key, 1, 2).await;
    assert!(
        outcome.is_err(),
        "an expired certificate was answered: {outcome:?}"
    );
    let line = wait_for_log(&logs, &["handshake refused", "TLS", "certificate expired"]).await;
    assert!(line.contains("WARN"), "{line}");
    common::shutdown_all(servers).await;
}

/// A server without TLS among TLS servers is refused by them (its introduction is not
/// a TLS handshake), while they keep exchanging messages; it receives nothing.
#[tokio::test]
async fn a_plain_tcp_peer_is_refused_while_the_others_carry_on() {
    let (logs, _guard) = capture_logs();
    let (dir, _good) = pki(2);
    let (config, mut listeners) = common::loopback_cluster(3);
    let plain_listener = listeners.pop().expect("three listeners");
    let tls = config.clone().with_tls(good_files(dir.path()));

    let mut servers = Vec::new();
    for (id, listener) in (1..).zip(listeners) {
        let server = Server::<Note>::start_with_listener(&tls, id, listener).await;
        servers.push(server.expect("server starts"));
    }
    let mut plain = Server::<Note>::start_with_listener(&config, 3, plain_listener)
        .await
        .expect("the plain server starts");
    wait_for_log(&logs, &["WARN", "peer links are plain TCP", "node=3"]).await;

    plain.broadcast(3, &note(3)).expect("broadcast");
    let line = wait_for_log(&logs, &["handshake refused", "TLS"]).await;
    assert!(line.contains("addr=127.0.0.1:"), "{line}");
    assert_one_and_two_exchange(&mut servers).await;
    for server in &servers {
        assert!(!server.stats().peers[&3].connected);
    }
    assert!(plain.try_recv().is_none());
    plain.shutdown().await;
    common::shutdown_all(servers).await;
}

async fn start_error(config: &Config, id: ServerId) -> String {
    let listener = common::free_listener();
    match Server::<Note>::start_with_listener(config, id, listener).await {
        Ok(_) => panic!("server {id} started with bad TLS files"),
        Err(error @ StartError::Tls { .. }) => error.to_string(),
        Err(other) => panic!("not a TLS error: {other}"),
    }
}

/// A key that is not the certificate's, an expired certificate, a certificate of
/// another server, and a missing file each stop the server from starting, with an
/// error naming the field and the file.
#[tokio::test]
async fn bad_files_stop_a_server_from_starting_naming_the_file() {
    let (dir, good) = pki(2);
    let (config, _listeners) = common::loopback_cluster(2);
    let files = good_files(dir.path());

    let wrong_key = TlsFiles {
        key: dir.path().join("server-2-key.pem"),
        ..files.clone()
    };
    let error = start_error(&config.clone().with_tls(wrong_key), 1).await;
    assert!(error.contains("tls.key"), "{error}");
    assert!(error.contains("server-2-key.pem"), "{error}");
    assert!(error.contains("does not match the certificate"), "{error}");

    good.issue("expired-1", 1, (-30, -1));
    let expired = TlsFiles {
        cert: dir.path().join("expired-1.pem"),
        key: dir.path().join("expired-1-key.pem"),
        ..files.clone()
    };
    let error = start_error(&config.clone().with_tls(expired), 1).await;
    assert!(error.contains("tls.cert"), "{error}");
    assert!(
        error.contains("expired-1.pem: certificate expired"),
        "{error}"
    );

    good.issue("future-1", 1, (2, 30));
    let future = TlsFiles {
        cert: dir.path().join("future-1.pem"),
        key: dir.path().join("future-1-key.pem"),
        ..files.clone()
    };
    let error = start_error(&config.clone().with_tls(future), 1).await;
    assert!(
        error.contains("future-1.pem: certificate not valid before"),
        "{error}"
    );

    let (cert, key) = (files.cert_for(2), files.key_for(2));
    let other_id = TlsFiles::new(files.ca.clone(), cert, key);
    let error = start_error(&config.clone().with_tls(other_id), 1).await;
    assert!(error.contains("tls.cert"), "{error}");
    assert!(error.contains("not a certificate of server 1"), "{error}");

    let missing = TlsFiles {
        ca: dir.path().join("missing-ca.pem"),
        ..files
    };
    let error = start_error(&config.with_tls(missing), 1).await;
    assert!(error.contains("tls.ca: cannot read"), "{error}");
    assert!(error.contains("missing-ca.pem"), "{error}");
}

/// A `[tls]` section in a configuration file is read with its paths relative to the
/// file's directory and `{id}` in the certificate and key.
#[test]
fn the_tls_section_of_a_file_is_relative_to_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("cluster.toml");
    let text = "[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/server-{id}.pem\"\n\
                key = \"/keys/{id}.pem\"\n\n[[servers]]\nid = 1\naddress = \"127.0.0.1:7001\"\n";
    std::fs::write(&path, text).expect("write configuration");

    let config = Config::from_file(&path).expect("configuration parses");
    let tls = config.tls().expect("a [tls] section");
    assert_eq!(tls.ca, dir.path().join("certs/ca.pem"));
    assert_eq!(tls.cert_for(2), dir.path().join("certs/server-2.pem"));
    assert_eq!(tls.key_for(2), PathBuf::from("/keys/2.pem"));

    let plain = Config::from_toml("[[servers]]\nid = 1\naddress = \"127.0.0.1:1\"\n", "t");
    assert!(plain.expect("parses").tls().is_none());
}
