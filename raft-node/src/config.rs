//! The node's configuration file: the servers of the cluster, the timing and the
//! election switches. Without `--config` the embedded default in `default_config.toml`
//! is used.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The configuration `raft-node` uses when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// A parsed and checked configuration file.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the configuration came from: a file path, or `(embedded default)`.
    pub source: String,
    /// The name every connection of the cluster presents in its handshake.
    pub cluster_name: String,
    /// The timing, already checked.
    pub timing: Timing,
    /// The election switches.
    pub election: Election,
    /// The fault layer's switch.
    pub faults: FaultsSection,
    /// Mutual TLS on the links and status addresses; `None` for plain TCP.
    pub tls: Option<TlsSection>,
    /// Every server, ordered by id.
    pub servers: Vec<ServerEntry>,
}

/// One server of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEntry {
    /// The server's id.
    pub id: u64,
    /// The address that carries election traffic.
    pub address: SocketAddr,
    /// The address that answers `raft-node status`.
    pub status_address: SocketAddr,
}

/// How fast the election runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Length of one tick of the core's logical clock, in milliseconds.
    pub tick_ms: u64,
    /// Shortest election timeout, in milliseconds (inclusive).
    pub election_timeout_min_ms: u64,
    /// Longest election timeout, in milliseconds (exclusive).
    pub election_timeout_max_ms: u64,
    /// Interval between two heartbeats of a leader, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

impl Timing {
    /// The tick as a duration.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// `ms` in whole ticks, rounded to the nearest tick.
    fn ticks(&self, ms: u64) -> u64 {
        (ms + self.tick_ms / 2) / self.tick_ms
    }
}

/// The safeguards and fail-over switches of the election, all on by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Election {
    /// Poll peers with a pre-vote before starting an election.
    #[serde(default = "yes")]
    pub pre_vote: bool,
    /// Step down as leader without a majority's recent contact; refuse votes while a
    /// leader is fresh.
    #[serde(default = "yes")]
    pub check_quorum: bool,
    /// When a follower's connection to its leader closes or a re-dial is refused, it
    /// campaigns at once or a few ticks later (its slot among the survivors) instead
    /// of after a whole timeout. Acted on only with pre-vote and check-quorum on.
    #[serde(default = "yes")]
    pub crash_hint: bool,
    /// On Ctrl-C or SIGTERM a leader first hands its leadership to a connected
    /// follower and waits (at most an election timeout) to see it lead.
    #[serde(default = "yes")]
    pub transfer_on_stop: bool,
}

fn yes() -> bool {
    true
}

/// The `[faults]` section: whether the status address takes the fault commands
/// (`block`, `delay`, `loss`, `heal`, …) that make this server drop or delay messages
/// to and from chosen peers. For tests and demonstrations; off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsSection {
    /// Switches `cluster`'s fault layer on.
    #[serde(default)]
    pub enabled: bool,
}

/// The `[tls]` section: the files of mutual TLS. Relative paths are taken from the
/// configuration file's directory; `{id}` in `cert` and `key` becomes the server's id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The cluster's certificate authority (PEM; several for a rotation).
    pub ca: PathBuf,
    /// Each server's certificate, bound to `server-<id>.<cluster_name>`.
    pub cert: PathBuf,
    /// Each server's private key.
    pub key: PathBuf,
    /// The certificate `raft-node status` and `transfer` present to the status
    /// addresses, signed by the same authority.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl TlsSection {
    /// The files of the peer links, for `cluster`.
    pub fn files(&self) -> cluster::TlsFiles {
        cluster::TlsFiles::new(self.ca.clone(), self.cert.clone(), self.key.clone())
    }

    fn relative_to(self, base: &Path) -> TlsSection {
        let resolve = |path: PathBuf| base.join(path);
        TlsSection {
            ca: resolve(self.ca),
            cert: resolve(self.cert),
            key: resolve(self.key),
            client_cert: self.client_cert.map(resolve),
            client_key: self.client_key.map(resolve),
        }
    }
}

impl Default for Election {
    fn default() -> Self {
        Election {
            pre_vote: true,
            check_quorum: true,
            crash_hint: true,
            transfer_on_stop: true,
        }
    }
}

/// What the file holds, before checking.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster_name: String,
    timing: Timing,
    #[serde(default)]
    election: Election,
    #[serde(default)]
    faults: FaultsSection,
    tls: Option<TlsSection>,
    servers: Vec<RawServer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    id: u64,
    address: String,
    status_address: String,
}

/// A configuration that could not be used; the message names the source and the field.
#[derive(Debug)]
pub struct ConfigError {
    source: String,
    field: Option<String>,
    problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}: {}", self.source, field, self.problem),
            None => write!(f, "{}: {}", self.source, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

impl NodeConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            source: source.clone(),
            field: None,
            problem: format!("cannot read the file: {error}"),
        })?;
        let mut config = NodeConfig::parse(&text, source)?;
        // Path::join keeps an absolute path as it is.
        let base = path.parent().unwrap_or(Path::new(""));
        config.tls = config.tls.map(|tls| tls.relative_to(base));
        Ok(config)
    }

    /// The embedded default: five servers on 127.0.0.1.
    pub fn embedded_default() -> NodeConfig {
        // Cannot fail: a unit test parses the same text.
        NodeConfig::parse(DEFAULT_CONFIG, "(embedded default)".to_string())
            .expect("the embedded default configuration is valid")
    }

    /// Parses and checks `text`; `source` names it in errors.
    pub fn parse(text: &str, source: String) -> Result<NodeConfig, ConfigError> {
        let fail = |field: Option<String>, problem: String| ConfigError {
            source: source.clone(),
            field,
            problem,
        };

        let raw: RawConfig = toml::from_str(text)
            .map_err(|error| fail(None, error.to_string().trim_end().to_string()))?;

        if let Some(tls) = &raw.tls {
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                let problem = "client_cert and client_key go together".to_string();
                return Err(fail(Some("tls.client_key".into()), problem));
            }
        }
        if raw.servers.is_empty() {
            return Err(fail(Some("servers".into()), "no server is listed".into()));
        }

        let mut servers = Vec::with_capacity(raw.servers.len());
        let mut ids = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for (position, server) in raw.servers.iter().enumerate() {
            let field = |name: &str| Some(format!("servers[{position}].{name}"));

            if !ids.insert(server.id) {
                let problem = format!("id {} is listed twice", server.id);
                return Err(fail(field("id"), problem));
            }

            let parse_address = |name: &str, text: &str| {
                text.parse::<SocketAddr>().map_err(|_| {
                    let problem = format!("{text:?} is not an address such as 127.0.0.1:7001");
                    fail(field(name), problem)
                })
            };
            let address = parse_address("address", &server.address)?;
            let status_address = parse_address("status_address", &server.status_address)?;

            for (name, addr) in [("address", address), ("status_address", status_address)] {
                if !addresses.insert(addr) {
                    let problem = format!("{addr} is used twice in the file");
                    return Err(fail(field(name), problem));
                }
            }

            servers.push(ServerEntry {
                id: server.id,
                address,
                status_address,
            });
        }
        servers.sort_by_key(|server| server.id);

        let config = NodeConfig {
            source: source.clone(),
            cluster_name: raw.cluster_name,
            timing: raw.timing,
            election: raw.election,
            faults: raw.faults,
            tls: raw.tls,
            servers,
        };
        config
            .check_timing()
            .map_err(|(field, problem)| fail(Some(field), problem))?;
        Ok(config)
    }

    /// Checks the timing section in milliseconds, then once more in ticks.
    fn check_timing(&self) -> Result<(), (String, String)> {
        let t = &self.timing;
        let field = |name: &str| format!("timing.{name}");

        if t.tick_ms == 0 {
            return Err((field("tick_ms"), "must be at least 1".into()));
        }
        if t.election_timeout_max_ms <= t.election_timeout_min_ms {
            let problem = format!(
                "must be above election_timeout_min_ms ({} ms)",
                t.election_timeout_min_ms
            );
            return Err((field("election_timeout_max_ms"), problem));
        }
        if t.heartbeat_interval_ms >= t.election_timeout_min_ms {
            let problem = format!(
                "must be below election_timeout_min_ms ({} ms)",
                t.election_timeout_min_ms
            );
            return Err((field("heartbeat_interval_ms"), problem));
        }

        // Rounding to ticks may still squeeze a valid range empty: say which field to fix.
        if let Err(error) = self.raft_config(self.servers[0].id).validate() {
            let problem = format!("too coarse for the timeouts ({error})");
            return Err((field("tick_ms"), problem));
        }
        Ok(())
    }

    /// The `cluster` configuration: every server's election address, the cluster name,
    /// and the fault layer when `[faults]` enables it.
    ///
    /// Servers dial their peers from the IP they listen on when every address is a
    /// specific IP of one family, so that firewall rules between addresses (as the
    /// partition tests set up) see each server's own address as the source. Otherwise
    /// the operating system picks the source address.
    pub fn cluster_config(&self) -> cluster::Config {
        let addresses = || self.servers.iter().map(|server| server.address);
        let first = self.servers[0].address;
        let dial_from_own_ip =
            addresses().all(|a| !a.ip().is_unspecified() && a.is_ipv4() == first.is_ipv4());

        let options = cluster::Options {
            dial_from_own_ip,
            fault_injection: self.faults.enabled,
            ..cluster::Options::default()
        };
        let servers = self
            .servers
            .iter()
            .map(|server| (server.id, server.address));
        let config = cluster::Config::new(servers)
            .with_cluster_name(self.cluster_name.clone())
            .with_options(options);
        match &self.tls {
            Some(tls) => config.with_tls(tls.files()),
            None => config,
        }
    }

    /// The election settings of server `id`, in ticks.
    pub fn raft_config(&self, id: u64) -> raft::Config {
        let t = &self.timing;
        let mut config = raft::Config::new(id, self.servers.iter().map(|server| server.id));
        config.election_timeout_min = t.ticks(t.election_timeout_min_ms);
        config.election_timeout_max = t.ticks(t.election_timeout_max_ms);
        config.heartbeat_interval = t.ticks(t.heartbeat_interval_ms);
        config.pre_vote = self.election.pre_vote;
        config.check_quorum = self.election.check_quorum;
        config.crash_hint = self.election.crash_hint;
        // Survivor slots at least 5 ms and 2 ticks apart: the first survivor's pre-vote
        // crosses loopback in well under a millisecond, and the second tick covers
        // the servers' tick phases, which differ by up to one tick.
        config.crash_hint_stagger = t.ticks(5).max(2);
        config
    }

    /// The entry of server `id`, or an error naming the ids the file holds.
    pub fn server(&self, id: u64) -> Result<&ServerEntry, ConfigError> {
        self.servers
            .iter()
            .find(|server| server.id == id)
            .ok_or_else(|| {
                let known: Vec<String> = self.servers.iter().map(|s| s.id.to_string()).collect();
                ConfigError {
                    source: self.source.clone(),
                    field: Some("servers".into()),
                    problem: format!("no server has id {id} (ids: {})", known.join(", ")),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded default parses: five servers, the paper's timeouts, both switches on.
    #[test]
    fn embedded_default_is_five_local_servers_with_paper_timeouts() {
        let config = NodeConfig::embedded_default();

        assert_eq!(config.servers.len(), 5);
        assert!(config.servers.iter().all(|s| s.address.ip().is_loopback()));
        assert_eq!(config.timing.election_timeout_min_ms, 150);
        assert_eq!(config.timing.election_timeout_max_ms, 300);
        assert!(config.election.pre_vote && config.election.check_quorum);

        let raft = config.raft_config(3);
        assert_eq!(
            (raft.election_timeout_min, raft.election_timeout_max),
            (15, 30)
        );
        assert_eq!(raft.heartbeat_interval, 5);
    }

    fn with_servers(servers: &str) -> String {
        let head = DEFAULT_CONFIG.split("[[servers]]").next().unwrap();
        format!("{head}{servers}")
    }

    fn error_of(text: &str) -> String {
        NodeConfig::parse(text, "test.toml".into())
            .unwrap_err()
            .to_string()
    }

    /// A duplicate id is refused, naming the file and the field.
    #[test]
    fn duplicate_id_names_file_and_field() {
        let text = with_servers(
            "[[servers]]\nid = 1\naddress = \"127.0.0.1:1\"\nstatus_address = \"127.0.0.1:2\"\n\
             [[servers]]\nid = 1\naddress = \"127.0.0.1:3\"\nstatus_address = \"127.0.0.1:4\"\n",
        );
        assert_eq!(
            error_of(&text),
            "test.toml: servers[1].id: id 1 is listed twice"
        );
    }

    /// A duplicate address is refused, naming the field.
    #[test]
    fn duplicate_address_names_field() {
        let text = with_servers(
            "[[servers]]\nid = 1\naddress = \"127.0.0.1:1\"\nstatus_address = \"127.0.0.1:2\"\n\
             [[servers]]\nid = 2\naddress = \"127.0.0.1:1\"\nstatus_address = \"127.0.0.1:4\"\n",
        );
        let error = error_of(&text);
        assert!(
            error.starts_with("test.toml: servers[1].address: "),
            "{error}"
        );
    }

    /// An unparsable address is refused, naming the field.
    #[test]
    fn unparsable_address_names_field() {
        let text = with_servers(
            "[[servers]]\nid = 1\naddress = \"localhost\"\nstatus_address = \"127.0.0.1:2\"\n",
        );
        let error = error_of(&text);
        assert!(
            error.starts_with("test.toml: servers[0].address: "),
            "{error}"
        );
    }

    /// Timing that breaks the election's rules is refused, naming the field.
    #[test]
    fn heartbeat_not_below_min_timeout_names_field() {
        let text =
            DEFAULT_CONFIG.replace("heartbeat_interval_ms = 50", "heartbeat_interval_ms = 150");
        let error = error_of(&text);
        assert!(
            error.starts_with("test.toml: timing.heartbeat_interval_ms: "),
            "{error}"
        );
    }

    /// The fault layer is off unless `[faults]` says `enabled = true`; a misspelt key
    /// in that section is refused.
    #[test]
    fn faults_are_off_by_default_and_switched_on_by_their_section() {
        let config = NodeConfig::embedded_default();
        assert!(!config.faults.enabled);
        assert!(!config.cluster_config().options().fault_injection);
        assert!(config.cluster_config().options().dial_from_own_ip);

        let text = DEFAULT_CONFIG.replace("enabled = false", "enabled = true");
        let config = NodeConfig::parse(&text, "test.toml".into()).unwrap();
        assert!(config.cluster_config().options().fault_injection);

        let text = DEFAULT_CONFIG.replace("enabled = false", "enable = true");
        let error = error_of(&text);
        assert!(error.contains("unknown field `enable`"), "{error}");
    }

    /// Servers listening on every interface cannot dial from their own address.
    #[test]
    fn unspecified_addresses_dial_from_whatever_the_system_picks() {
        let text = with_servers(
            "[[servers]]\nid = 1\naddress = \"0.0.0.0:1\"\nstatus_address = \"127.0.0.1:2\"\n",
        );
        let config = NodeConfig::parse(&text, "test.toml".into()).unwrap();
        assert!(!config.cluster_config().options().dial_from_own_ip);
        config.cluster_config().validate().unwrap();
    }

    /// A misspelt key is a TOML error that names the key, not a silent default.
    #[test]
    fn unknown_key_is_refused() {
        let text = DEFAULT_CONFIG.replace("pre_vote = true", "prevote = true");
        let error = error_of(&text);
        assert!(error.contains("prevote"), "{error}");
    }

    /// A `[tls]` section reaches `cluster` with its paths relative to the file, and a
    /// client certificate without its key is refused naming the field.
    #[test]
    fn tls_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let tls = "[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/server-{id}.pem\"\n\
                   key = \"certs/server-{id}-key.pem\"\nclient_cert = \"/abs/client.pem\"\n\
                   client_key = \"/abs/client-key.pem\"\n";
        std::fs::write(&path, with_servers(&format!("{tls}{}", one_server()))).unwrap();

        let config = NodeConfig::load(&path).unwrap();
        let section = config.tls.as_ref().unwrap();
        assert_eq!(section.ca, dir.path().join("certs/ca.pem"));
        assert_eq!(section.client_cert, Some(PathBuf::from("/abs/client.pem")));
        let files = config.cluster_config().tls().cloned().unwrap();
        assert_eq!(files.cert_for(1), dir.path().join("certs/server-1.pem"));
        assert!(NodeConfig::embedded_default().tls.is_none());

        let text = with_servers(&format!(
            "[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\nclient_cert = \"d\"\n{}",
            one_server()
        ));
        assert_eq!(
            error_of(&text),
            "test.toml: tls.client_key: client_cert and client_key go together"
        );
    }

    fn one_server() -> &'static str {
        "[[servers]]\nid = 1\naddress = \"127.0.0.1:1\"\nstatus_address = \"127.0.0.1:2\"\n"
    }

    /// Asking for an id the file does not hold is an error naming the known ids.
    #[test]
    fn unknown_id_lists_known_ids() {
        let config = NodeConfig::embedded_default();
        let error = config.server(9).unwrap_err().to_string();
        assert_eq!(
            error,
            "(embedded default): servers: no server has id 9 (ids: 1, 2, 3, 4, 5)"
        );
    }
}
