//! Cluster configuration: which servers exist, where they listen, and tuning options.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ConfigError;
use crate::tls::TlsFiles;

/// A server's number, unique within one cluster.
pub type ServerId = u64;

/// Where a configuration came from when it was built in code rather than read from a file.
const ORIGIN_CODE: &str = "<code>";

/// Cluster name used when the file or the code does not give one.
pub const DEFAULT_CLUSTER_NAME: &str = "cluster";

/// Largest maximum frame size accepted (64 MiB); larger frames belong in a different
/// transport.
pub const MAX_FRAME_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// Smallest maximum frame size accepted, so that handshakes and small envelopes fit.
pub const MIN_FRAME_SIZE_LIMIT: usize = 64;

/// One server of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerAddress {
    /// The server's id.
    pub id: ServerId,
    /// The address it listens on and its peers dial.
    pub address: SocketAddr,
}

/// Tuning options. Every field has a documented default (see [`Options::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Largest frame, in bytes, including the 4-byte length prefix. Default 1 MiB.
    /// Enforced on send (an error to the caller) and on receive (the connection closes).
    pub max_frame_size: usize,
    /// Messages that may wait for one peer before further ones are dropped. Default 8192.
    pub queue_capacity: usize,
    /// Batches of received envelopes buffered before readers stop reading from their
    /// sockets (back-pressure). A batch is what one socket read yielded. Default 256.
    pub inbound_capacity: usize,
    /// First pause before re-dialling a peer. Default 10 ms.
    pub reconnect_initial: Duration,
    /// Longest pause between dial attempts (the backoff doubles up to this). Default 200 ms.
    pub reconnect_max: Duration,
    /// Fraction in `0.0..=1.0` of each pause that is taken away at random, so that
    /// servers do not dial in lock step. Default 0.5.
    pub reconnect_jitter: f64,
    /// How long a dial may take before it counts as failed. Default 1 s.
    pub connect_timeout: Duration,
    /// How long either side waits for the other's handshake. Default 2 s.
    pub handshake_timeout: Duration,
    /// Dial peers from the IP address this server listens on (its configured address,
    /// any port) instead of one the operating system picks. Needed when servers share
    /// a host on several loopback addresses and a firewall tells them apart by source
    /// address. Every configured address must then be a specific IP (not `0.0.0.0` or
    /// `::`) of one family. Default false.
    pub dial_from_own_ip: bool,
    /// Switch the fault layer on (see [`Faults`](crate::Faults)): per-peer blocks, delay
    /// and loss, changed while running through [`Server::faults`](crate::Server::faults).
    /// For tests only. Default false, which costs one branch per message.
    pub fault_injection: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_frame_size: 1024 * 1024,
            queue_capacity: 8192,
            inbound_capacity: 256,
            reconnect_initial: Duration::from_millis(10),
            reconnect_max: Duration::from_millis(200),
            reconnect_jitter: 0.5,
            connect_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(2),
            dial_from_own_ip: false,
            fault_injection: false,
        }
    }
}

/// The whole cluster as every server sees it: name, members, options.
///
/// Build it in code ([`Config::new`], [`Config::loopback`]) or read it from a TOML file
/// ([`Config::from_file`]):
///
/// ```toml
/// cluster_name = "demo"          # optional, default "cluster"
///
/// [options]                      # optional; every key optional
/// max_frame_size = 1048576       # bytes
/// queue_capacity = 8192          # messages per peer
/// inbound_capacity = 256         # batches
/// reconnect_initial_ms = 10
/// reconnect_max_ms = 200
/// reconnect_jitter = 0.5
/// connect_timeout_ms = 1000
/// handshake_timeout_ms = 2000
/// dial_from_own_ip = false       # dial from the IP of this server's own address
/// fault_injection = false        # switch the fault layer on (tests only)
///
/// [tls]                          # optional: mutual TLS on every link
/// ca = "certs/ca.pem"            # relative paths start at the file's directory
/// cert = "certs/server-{id}.pem" # {id} becomes the server's id
/// key = "certs/server-{id}-key.pem"
///
/// [[servers]]
/// id = 1
/// address = "127.0.0.1:7001"
///
/// [[servers]]
/// id = 2
/// address = "127.0.0.1:7002"
/// ```
///
/// Without `[tls]` links are plain TCP, and a server says so in a warning at start.
#[derive(Debug, Clone)]
pub struct Config {
    cluster_name: String,
    servers: Vec<ServerAddress>,
    options: Options,
    tls: Option<TlsFiles>,
    origin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    cluster_name: Option<String>,
    #[serde(default)]
    options: FileOptions,
    #[serde(default)]
    servers: Vec<FileServer>,
    tls: Option<FileTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    id: ServerId,
    address: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileOptions {
    max_frame_size: Option<usize>,
    queue_capacity: Option<usize>,
    inbound_capacity: Option<usize>,
    reconnect_initial_ms: Option<u64>,
    reconnect_max_ms: Option<u64>,
    reconnect_jitter: Option<f64>,
    connect_timeout_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    dial_from_own_ip: Option<bool>,
    fault_injection: Option<bool>,
}

impl FileOptions {
    fn into_options(self) -> Options {
        let defaults = Options::default();
        let millis = |value: Option<u64>, default: Duration| {
            value.map(Duration::from_millis).unwrap_or(default)
        };
        Options {
            max_frame_size: self.max_frame_size.unwrap_or(defaults.max_frame_size),
            queue_capacity: self.queue_capacity.unwrap_or(defaults.queue_capacity),
            inbound_capacity: self.inbound_capacity.unwrap_or(defaults.inbound_capacity),
            reconnect_initial: millis(self.reconnect_initial_ms, defaults.reconnect_initial),
            reconnect_max: millis(self.reconnect_max_ms, defaults.reconnect_max),
            reconnect_jitter: self.reconnect_jitter.unwrap_or(defaults.reconnect_jitter),
            connect_timeout: millis(self.connect_timeout_ms, defaults.connect_timeout),
            handshake_timeout: millis(self.handshake_timeout_ms, defaults.handshake_timeout),
            dial_from_own_ip: self.dial_from_own_ip.unwrap_or(defaults.dial_from_own_ip),
            fault_injection: self.fault_injection.unwrap_or(defaults.fault_injection),
        }
    }
}

impl Config {
    /// A configuration of the given servers with the default name and options.
    /// It is checked when a server starts; call [`Config::validate`] to check earlier.
    pub fn new(servers: impl IntoIterator<Item = (ServerId, SocketAddr)>) -> Config {
        Config {
            cluster_name: DEFAULT_CLUSTER_NAME.to_owned(),
            servers: servers
                .into_iter()
                .map(|(id, address)| ServerAddress { id, address })
                .collect(),
            options: Options::default(),
            tls: None,
            origin: ORIGIN_CODE.to_owned(),
        }
    }

    /// Servers `1..=n` on 127.0.0.1, server `i` on port `base_port + i - 1`.
    pub fn loopback(n: u64, base_port: u16) -> Config {
        Config::new((1..=n).map(|id| {
            let port = base_port.saturating_add((id - 1) as u16);
            (id, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        }))
    }

    /// Replaces the cluster name (checked in every handshake).
    pub fn with_cluster_name(mut self, name: impl Into<String>) -> Config {
        self.cluster_name = name.into();
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: Options) -> Config {
        self.options = options;
        self
    }

    /// Switches the links to mutual TLS with these files (see [`TlsFiles`]); they are
    /// read when a server starts.
    pub fn with_tls(mut self, files: TlsFiles) -> Config {
        self.tls = Some(files);
        self
    }

    /// Reads and checks a TOML file (format in the type's documentation). Relative
    /// paths in its `[tls]` section are taken from the file's directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            origin: origin.clone(),
            source,
        })?;
        let mut config = Config::from_toml(&text, &origin)?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.tls = config.tls.map(|files| files.relative_to(base));
        Ok(config)
    }

    /// Parses and checks TOML text; `origin` names it in errors (usually a file path).
    /// Relative paths in `[tls]` stay relative to the working directory.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;

        let mut servers = Vec::with_capacity(file.servers.len());
        for (index, server) in file.servers.into_iter().enumerate() {
            let address =
                server
                    .address
                    .parse::<SocketAddr>()
                    .map_err(|e| ConfigError::Invalid {
                        origin: origin.to_owned(),
                        field: format!("servers[{index}].address"),
                        reason: format!("cannot parse {:?} as ip:port: {e}", server.address),
                    })?;
            servers.push(ServerAddress {
                id: server.id,
                address,
            });
        }

        let config = Config {
            cluster_name: file
                .cluster_name
                .unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_owned()),
            servers,
            options: file.options.into_options(),
            tls: file.tls.map(|tls| TlsFiles::new(tls.ca, tls.cert, tls.key)),
            origin: origin.to_owned(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads a file and checks that it names server `id`.
    pub fn from_file_for(path: impl AsRef<Path>, id: ServerId) -> Result<Config, ConfigError> {
        let config = Config::from_file(path)?;
        config.require_member(id)?;
        Ok(config)
    }

    /// Checks the configuration: at least one server, unique ids, unique addresses,
    /// a non-empty cluster name of at most 255 bytes, and sane options.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid {
            origin: self.origin.clone(),
            field,
            reason,
        };

        if self.servers.is_empty() {
            return Err(invalid("servers".into(), "no servers configured".into()));
        }
        if self.cluster_name.is_empty() || self.cluster_name.len() > 255 {
            return Err(invalid(
                "cluster_name".into(),
                "must be 1 to 255 bytes long".into(),
            ));
        }

        let mut ids = HashSet::new();
        let mut addresses = HashMap::new();
        for (index, server) in self.servers.iter().enumerate() {
            if !ids.insert(server.id) {
                return Err(invalid(
                    format!("servers[{index}].id"),
                    format!("duplicate id {}", server.id),
                ));
            }
            if server.address.port() == 0 {
                return Err(invalid(
                    format!("servers[{index}].address"),
                    "port 0 cannot be dialled by peers".into(),
                ));
            }
            if let Some(first) = addresses.insert(server.address, index) {
                return Err(invalid(
                    format!("servers[{index}].address"),
                    format!(
                        "duplicate address {} (also servers[{first}])",
                        server.address
                    ),
                ));
            }
        }

        self.validate_dial_from()?;
        self.validate_options()
    }

    /// With [`Options::dial_from_own_ip`], every server dials from its own IP, so each
    /// must have one, and of the same family as the peers it dials.
    fn validate_dial_from(&self) -> Result<(), ConfigError> {
        if !self.options.dial_from_own_ip {
            return Ok(());
        }

        let first = self.servers[0].address;
        for (index, server) in self.servers.iter().enumerate() {
            let reason = if server.address.ip().is_unspecified() {
                format!(
                    "{} is not a specific IP, which options.dial_from_own_ip needs",
                    server.address.ip()
                )
            } else if server.address.is_ipv4() != first.is_ipv4() {
                format!(
                    "{} is not of the same IP family as servers[0].address {first}, \
                     which options.dial_from_own_ip needs",
                    server.address
                )
            } else {
                continue;
            };
            return Err(ConfigError::Invalid {
                origin: self.origin.clone(),
                field: format!("servers[{index}].address"),
                reason,
            });
        }
        Ok(())
    }

    fn validate_options(&self) -> Result<(), ConfigError> {
        let o = &self.options;
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            origin: self.origin.clone(),
            field: format!("options.{field}"),
            reason,
        };

        if !(MIN_FRAME_SIZE_LIMIT..=MAX_FRAME_SIZE_LIMIT).contains(&o.max_frame_size) {
            return Err(invalid(
                "max_frame_size",
                format!("must be {MIN_FRAME_SIZE_LIMIT} to {MAX_FRAME_SIZE_LIMIT} bytes"),
            ));
        }
        if o.queue_capacity == 0 {
            return Err(invalid("queue_capacity", "must be at least 1".into()));
        }
        if o.inbound_capacity == 0 {
            return Err(invalid("inbound_capacity", "must be at least 1".into()));
        }
        if o.reconnect_initial.is_zero() || o.reconnect_initial > o.reconnect_max {
            return Err(invalid(
                "reconnect_initial_ms",
                "must be above 0 and at most reconnect_max_ms".into(),
            ));
        }
        if !(0.0..=1.0).contains(&o.reconnect_jitter) {
            return Err(invalid(
                "reconnect_jitter",
                "must be within 0.0..=1.0".into(),
            ));
        }
        if o.connect_timeout.is_zero() || o.handshake_timeout.is_zero() {
            return Err(invalid(
                "connect_timeout_ms",
                "timeouts must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// Fails with [`ConfigError::UnknownServer`] unless `id` is configured.
    pub fn require_member(&self, id: ServerId) -> Result<(), ConfigError> {
        if self.address_of(id).is_some() {
            Ok(())
        } else {
            Err(ConfigError::UnknownServer {
                origin: self.origin.clone(),
                id,
            })
        }
    }

    /// The cluster name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// Every configured server, in configuration order.
    pub fn servers(&self) -> &[ServerAddress] {
        &self.servers
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The TLS files, or `None` for plain TCP.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Where the configuration came from: a file path, or `<code>`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The address of server `id`, if configured.
    pub fn address_of(&self, id: ServerId) -> Option<SocketAddr> {
        self.servers.iter().find(|s| s.id == id).map(|s| s.address)
    }

    /// The ids of every server except `id`, sorted.
    pub fn peers_of(&self, id: ServerId) -> Vec<ServerId> {
        let mut peers: Vec<ServerId> = self
            .servers
            .iter()
            .map(|s| s.id)
            .filter(|&peer| peer != id)
            .collect();
        peers.sort_unstable();
        peers
    }

    /// Whether `id` is configured.
    pub(crate) fn contains(&self, id: ServerId) -> bool {
        self.address_of(id).is_some()
    }
}
