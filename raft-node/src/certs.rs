//! `raft-node certs`: a development certificate authority and one certificate per
//! configured server, so that TLS can be tried in a minute.
//!
//! Files written to `--out DIR`:
//!
//! - `ca.pem`, `ca-key.pem`: the authority. Its key signs every other certificate;
//!   keep it away from the servers.
//! - `server-<id>.pem`, `server-<id>-key.pem`: server `id`'s certificate, bound to the
//!   DNS name `server-<id>.<cluster_name>`, for both server and client authentication
//!   (a server accepts and dials).
//! - `client.pem`, `client-key.pem`: the certificate `raft-node status` and `transfer`
//!   present to the status addresses, named `client.<cluster_name>`; it names no
//!   server, so the peer links refuse it.
//!
//! Keys are ECDSA P-256, written readable by their owner only. A real authority can
//! issue the same: what matters is the DNS name and the two extended key usages.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::config::NodeConfig;

/// Writes the authority and the certificates of `config`'s servers into `out`, valid
/// for `days` days from an hour ago (to allow for clocks a little behind), and returns
/// the `[tls]` section to paste into the configuration.
pub fn write(config: &NodeConfig, out: &Path, days: u32) -> anyhow::Result<String> {
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let mut names: Vec<String> = vec!["ca".into(), "client".into()];
    names.extend(config.servers.iter().map(|s| format!("server-{}", s.id)));
    for name in &names {
        for path in [pem(out, name), key_pem(out, name)] {
            if path.exists() {
                bail!(
                    "{} exists; remove it or choose another --out",
                    path.display()
                );
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    let not_after = not_before + Duration::days(i64::from(days));
    let cluster = &config.cluster_name;

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let common_name = format!("raft-node development CA ({cluster})");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.not_before, params.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate()?;
    let ca = params.self_signed(&ca_key)?;
    save(out, "ca", &ca.pem(), &ca_key)?;

    let issue = |name: String, usages: Vec<ExtendedKeyUsagePurpose>| {
        let mut params = CertificateParams::new(vec![name.clone()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        (params.not_before, params.not_after) = (not_before, not_after);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        anyhow::Ok((cert.pem(), key))
    };

    for server in &config.servers {
        let usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (cert, key) = issue(cluster::server_name(cluster, server.id), usages)?;
        save(out, &format!("server-{}", server.id), &cert, &key)?;
    }
    let usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (cert, key) = issue(format!("client.{cluster}"), usages)?;
    save(out, "client", &cert, &key)?;

    let at = |file: &str| out.join(file).display().to_string();
    Ok(format!(
        "# Paste into the configuration file. Relative paths start at its directory.\n\
         [tls]\n\
         ca = {:?}\n\
         cert = {:?}\n\
         key = {:?}\n\
         client_cert = {:?}\n\
         client_key = {:?}\n",
        at("ca.pem"),
        at("server-{id}.pem"),
        at("server-{id}-key.pem"),
        at("client.pem"),
        at("client-key.pem"),
    ))
}

fn pem(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.pem"))
}

fn key_pem(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}-key.pem"))
}

/// Writes a certificate and its key, the key readable by its owner only.
fn save(out: &Path, name: &str, cert: &str, key: &KeyPair) -> anyhow::Result<()> {
    let path = pem(out, name);
    std::fs::write(&path, cert).with_context(|| format!("cannot write {}", path.display()))?;

    let path = key_pem(out, name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files load as every server's TLS identity and as the status client's, and
    /// a second run into the same directory is refused rather than overwriting them.
    #[test]
    fn every_server_loads_its_certificate_and_a_second_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        let config = NodeConfig::embedded_default();

        let section = write(&config, &out, 2).unwrap();
        assert!(section.contains("server-{id}.pem"), "{section}");

        let files = cluster::TlsFiles::new(
            out.join("ca.pem"),
            out.join("server-{id}.pem"),
            out.join("server-{id}-key.pem"),
        );
        for server in &config.servers {
            cluster::TlsIdentity::for_server(&files, &config.cluster_name, server.id).unwrap();
        }
        let (client, key) = (out.join("client.pem"), out.join("client-key.pem"));
        cluster::TlsIdentity::load(&files.ca, &client, &key, &config.cluster_name).unwrap();
        let client_pem = std::fs::read_to_string(&client).unwrap();
        assert!(client_pem.starts_with("-----BEGIN CERTIFICATE-----"));

        let error = write(&config, &out, 2).unwrap_err().to_string();
        assert!(error.contains("ca.pem exists"), "{error}");
    }
}
