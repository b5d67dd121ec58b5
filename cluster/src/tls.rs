//! Mutual TLS for the links between servers: loading the cluster's certificate
//! authority, a server's certificate and key, and the id a certificate is bound to.
//!
//! # Binding a certificate to a server id
//!
//! A server's certificate names it in a DNS subject alternative name of the form
//! `server-<id>.<cluster name>`, e.g. `server-3.raft-local` ([`server_name`]). The
//! dialler asks for that name when it connects to server 3, so the standard name check
//! of TLS refuses a listener holding another server's certificate; the listener reads
//! the names in the dialler's client certificate ([`certificate_ids`]) and refuses a
//! handshake that claims an id the certificate does not name. A certificate may name
//! several ids, which then all trust it; the development certificates of
//! `raft-node certs` name one each. Binding the cluster name too keeps a certificate
//! of one cluster out of another that shares its authority.
//!
//! Only TLS 1.3 is spoken, both sides present a certificate, and both are checked
//! against the same authority (the `ca` file, which may hold several certificates, as
//! during a rotation). Certificates must allow both server and client authentication
//! (extended key usages `serverAuth` and `clientAuth`), since every server both dials
//! and accepts.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

use crate::config::ServerId;

/// Where a server finds its TLS material: the `[tls]` section of a configuration.
///
/// `cert` and `key` may contain `{id}`, replaced by the server's id, so that one
/// configuration serves every server (`certs/server-{id}.pem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate authority (PEM, one or more certificates).
    pub ca: PathBuf,
    /// The server's certificate chain (PEM), leaf first; may contain `{id}`.
    pub cert: PathBuf,
    /// The server's private key (PEM, PKCS#8, PKCS#1 or SEC1); may contain `{id}`.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The three paths, as given.
    pub fn new(
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> TlsFiles {
        TlsFiles {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// The same with every relative path taken relative to `base` (the directory of
    /// the configuration file that names them).
    pub fn relative_to(self, base: &Path) -> TlsFiles {
        let resolve = |path: PathBuf| {
            if path.is_relative() {
                base.join(path)
            } else {
                path
            }
        };
        TlsFiles {
            ca: resolve(self.ca),
            cert: resolve(self.cert),
            key: resolve(self.key),
        }
    }

    /// The certificate file of server `id`.
    pub fn cert_for(&self, id: ServerId) -> PathBuf {
        with_id(&self.cert, id)
    }

    /// The key file of server `id`.
    pub fn key_for(&self, id: ServerId) -> PathBuf {
        with_id(&self.key, id)
    }
}

fn with_id(template: &Path, id: ServerId) -> PathBuf {
    PathBuf::from(template.to_string_lossy().replace("{id}", &id.to_string()))
}

/// TLS material that could not be used. Every variant names the configuration field
/// and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("tls.{field}: cannot read {}: {source}", path.display())]
    Read {
        /// `ca`, `cert` or `key`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },

    /// The file holds no usable PEM certificate or key, or one that cannot be parsed.
    #[error("tls.{field}: {}: {reason}", path.display())]
    Invalid {
        /// `ca`, `cert` or `key`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A certificate in the file is past its validity.
    #[error("tls.{field}: {}: certificate expired on {not_after}", path.display())]
    Expired {
        /// `ca` or `cert`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The end of the certificate's validity.
        not_after: String,
    },

    /// A certificate in the file is not valid yet.
    #[error("tls.{field}: {}: certificate not valid before {not_before}", path.display())]
    NotYetValid {
        /// `ca` or `cert`.
        field: &'static str,
        /// The file.
        path: PathBuf,
        /// The start of the certificate's validity.
        not_before: String,
    },

    /// The private key is not the one of the certificate.
    #[error("tls.key: {}: does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },

    /// The certificate is not bound to the server that would present it.
    #[error(
        "tls.cert: {}: not a certificate of server {id}: it has no DNS name {expected:?} \
         (names: {found})",
        path.display()
    )]
    WrongServer {
        /// The certificate file.
        path: PathBuf,
        /// The server that would present it.
        id: ServerId,
        /// The subject alternative name it lacks.
        expected: String,
        /// The DNS names it has.
        found: String,
    },

    /// The cluster name cannot be part of a DNS name, which binds certificates.
    #[error("cluster_name: {name:?} cannot be used in a certificate's DNS name over TLS")]
    ClusterName {
        /// The cluster name.
        name: String,
    },

    /// rustls refused the material for another reason.
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The DNS name that binds a certificate to server `id` of cluster `cluster_name`.
pub fn server_name(cluster_name: &str, id: ServerId) -> String {
    format!("server-{id}.{cluster_name}")
}

/// The server ids of cluster `cluster_name` that the certificate `der` is bound to
/// (its DNS names of the form [`server_name`]); empty if it names none or cannot be
/// parsed.
pub fn certificate_ids(der: &[u8], cluster_name: &str) -> Vec<ServerId> {
    dns_names(der)
        .iter()
        .filter_map(|name| {
            let rest = name.strip_prefix("server-")?;
            let id = rest.strip_suffix(cluster_name)?.strip_suffix('.')?;
            // Only canonical decimal: "server-03" is not server 3.
            let parsed: ServerId = id.parse().ok()?;
            (parsed.to_string() == id).then_some(parsed)
        })
        .collect()
}

fn dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(names)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    names
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

/// TLS configurations for one party of the cluster: as a listener (requiring a client
/// certificate from the authority) and as a dialler (presenting its certificate and
/// checking the listener's name). Cheap to clone.
#[derive(Clone)]
pub struct TlsIdentity {
    cluster_name: String,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Loads the material of server `id`: the authority, and its certificate and key
    /// from the templates in `files`. Fails, naming the field and the file, on a file
    /// that cannot be read or parsed, a certificate out of its validity, a key that
    /// is not the certificate's, or a certificate not bound to server `id`.
    pub fn for_server(
        files: &TlsFiles,
        cluster_name: &str,
        id: ServerId,
    ) -> Result<TlsIdentity, TlsError> {
        let expected = server_name(cluster_name, id);
        let cert_path = files.cert_for(id);
        let key_path = files.key_for(id);
        let identity = TlsIdentity::load(&files.ca, &cert_path, &key_path, cluster_name)?;

        let leaf = read_certificates("cert", &cert_path)?.swap_remove(0);
        if !certificate_ids(&leaf, cluster_name).contains(&id) {
            return Err(TlsError::WrongServer {
                path: cert_path,
                id,
                expected,
                found: dns_names(&leaf).join(", "),
            });
        }
        Ok(identity)
    }

    /// Loads the authority and a certificate and key that need not name a server: a
    /// client of the status addresses presents such a certificate.
    pub fn load(
        ca: &Path,
        cert: &Path,
        key: &Path,
        cluster_name: &str,
    ) -> Result<TlsIdentity, TlsError> {
        if ServerName::try_from(server_name(cluster_name, 1)).is_err() {
            return Err(TlsError::ClusterName {
                name: cluster_name.to_owned(),
            });
        }

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let setup = |e: rustls::Error| TlsError::Setup(e.to_string());

        let mut roots = RootCertStore::empty();
        for certificate in read_certificates("ca", ca)? {
            roots.add(certificate).map_err(|e| TlsError::Invalid {
                field: "ca",
                path: ca.to_owned(),
                reason: format!("not a usable authority certificate: {e}"),
            })?;
        }
        let roots = Arc::new(roots);

        let chain = read_certificates("cert", cert)?;
        let private_key = read_key(key)?;
        check_key(&provider, &chain, &private_key, cert, key)?;

        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Setup(e.to_string()))?;
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private_key.clone_key())
            .map_err(setup)?;
        // No resumption tickets: links are long-lived, and a dialler reading after the
        // handshake must see nothing but the end of the connection.
        server.send_tls13_tickets = 0;

        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Setup(e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain, private_key)
            .map_err(setup)?;

        Ok(TlsIdentity {
            cluster_name: cluster_name.to_owned(),
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// The cluster name certificates are bound to.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The listener's configuration: TLS 1.3, a client certificate required.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server)
    }

    /// The dialler's configuration: TLS 1.3, presenting this party's certificate.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.client)
    }

    /// The name the dialler asks for when it connects to server `id`.
    pub fn name_of(&self, id: ServerId) -> ServerName<'static> {
        // Cannot fail: `load` checked that the cluster name makes valid DNS names, and
        // the id is digits.
        ServerName::try_from(server_name(&self.cluster_name, id))
            .expect("the cluster name was checked at load")
    }
}

fn read_file(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file, each checked to be within its validity now.
fn read_certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(field, path)?;
    let invalid = |reason: String| TlsError::Invalid {
        field,
        path: path.to_owned(),
        reason,
    };

    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(invalid("no PEM certificate in the file".into()));
    }

    let now = ASN1Time::now();
    for certificate in &certificates {
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
            .map_err(|e| invalid(format!("cannot parse a certificate: {e}")))?;
        let validity = parsed.validity();
        if now > validity.not_after {
            return Err(TlsError::Expired {
                field,
                path: path.to_owned(),
                not_after: validity.not_after.to_string(),
            });
        }
        if now < validity.not_before {
            return Err(TlsError::NotYetValid {
                field,
                path: path.to_owned(),
                not_before: validity.not_before.to_string(),
            });
        }
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file("key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Invalid {
        field: "key",
        path: path.to_owned(),
        reason: format!("no usable PEM private key: {e}"),
    })
}

/// Refuses a key that is not the leaf certificate's, which rustls would otherwise
/// only notice at the first handshake, as a failure on the peer's side.
fn check_key(
    provider: &CryptoProvider,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), TlsError> {
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::Invalid {
            field: "key",
            path: key_path.to_owned(),
            reason: format!("unsupported private key: {e}"),
        })?;
    CertifiedKey::new(chain.to_vec(), signing)
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            key: key_path.to_owned(),
            cert: cert_path.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_id_and_relative_paths_the_base() {
        let files = TlsFiles::new("ca.pem", "certs/server-{id}.pem", "/keys/{id}.pem")
            .relative_to(Path::new("conf"));
        assert_eq!(files.ca, PathBuf::from("conf/ca.pem"));
        assert_eq!(files.cert_for(3), PathBuf::from("conf/certs/server-3.pem"));
        assert_eq!(files.key_for(12), PathBuf::from("/keys/12.pem"));
    }
}
