//! Configuration from TOML files and from code, and the errors that name the file and
//! the field at fault.

use std::io::Write;
use std::time::Duration;

use cluster::{Config, ConfigError, Options};

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

fn error_for(text: &str) -> (String, String) {
    let file = file_with(text);
    let path = file.path().display().to_string();
    let error = Config::from_file(file.path()).expect_err("refused");
    (error.to_string(), path)
}

/// A file with only servers gets the default name and options; given options override
/// the defaults.
#[test]
fn a_file_loads_with_defaults_and_overrides() {
    let file = file_with(
        "[[servers]]\nid = 1\naddress = \"127.0.0.1:7001\"\n\
         [[servers]]\nid = 2\naddress = \"127.0.0.1:7002\"\n",
    );
    let config = Config::from_file(file.path()).expect("valid");
    assert_eq!(config.cluster_name(), "cluster");
    assert_eq!(config.servers().len(), 2);
    assert_eq!(config.options(), &Options::default());
    assert_eq!(config.peers_of(1), vec![2]);

    let file = file_with(
        "cluster_name = \"demo\"\n[options]\nmax_frame_size = 4096\nreconnect_max_ms = 100\n\
         [[servers]]\nid = 7\naddress = \"127.0.0.1:7001\"\n",
    );
    let config = Config::from_file_for(file.path(), 7).expect("valid");
    assert_eq!(config.cluster_name(), "demo");
    assert_eq!(config.options().max_frame_size, 4096);
    assert_eq!(config.options().reconnect_max, Duration::from_millis(100));
    assert_eq!(
        config.options().queue_capacity,
        Options::default().queue_capacity
    );
}

/// The default reconnect backoff is capped at no more than 500 ms.
#[test]
fn the_default_backoff_cap_is_at_most_500_ms() {
    assert!(Options::default().reconnect_max <= Duration::from_millis(500));
    assert_eq!(Options::default().max_frame_size, 1024 * 1024);
}

/// A duplicate id is refused naming the file and the field.
#[test]
fn a_duplicate_id_is_refused_naming_file_and_field() {
    let (error, path) = error_for(
        "[[servers]]\nid = 1\naddress = \"127.0.0.1:7001\"\n\
         [[servers]]\nid = 1\naddress = \"127.0.0.1:7002\"\n",
    );
    assert!(
        error.contains(&path) && error.contains("servers[1].id"),
        "{error}"
    );
    assert!(error.contains("duplicate id 1"), "{error}");
}

/// A duplicate address is refused naming the file and the field.
#[test]
fn a_duplicate_address_is_refused_naming_file_and_field() {
    let (error, path) = error_for(
        "[[servers]]\nid = 1\naddress = \"127.0.0.1:7001\"\n\
         [[servers]]\nid = 2\naddress = \"127.0.0.1:7001\"\n",
    );
    assert!(
        error.contains(&path) && error.contains("servers[1].address"),
        "{error}"
    );
    assert!(error.contains("duplicate address"), "{error}");
}

/// An address that does not parse is refused naming the file and the field.
#[test]
fn an_unparsable_address_is_refused_naming_file_and_field() {
    let (error, path) = error_for("[[servers]]\nid = 1\naddress = \"localhost-ish\"\n");
    assert!(
        error.contains(&path) && error.contains("servers[0].address"),
        "{error}"
    );
}

/// Asking for an id the file does not name is refused naming the file.
#[test]
fn an_id_not_in_the_file_is_refused_naming_the_file() {
    let file = file_with("[[servers]]\nid = 1\naddress = \"127.0.0.1:7001\"\n");
    let error = Config::from_file_for(file.path(), 3).expect_err("refused");
    assert!(matches!(error, ConfigError::UnknownServer { id: 3, .. }));
    assert!(error
        .to_string()
        .contains(&file.path().display().to_string()));
}

/// A TOML syntax error is reported with the file path and position.
#[test]
fn a_syntax_error_names_the_file() {
    let (error, path) = error_for("[[servers]\nid = 1\n");
    assert!(
        error.contains(&path) && error.contains("syntax error"),
        "{error}"
    );
    let (error, _) = error_for("[[servers]]\nid = 1\naddress = \"127.0.0.1:1\"\ncolour = 3\n");
    assert!(error.contains("colour"), "{error}");
}

/// A missing file is reported with its path.
#[test]
fn a_missing_file_names_the_path() {
    let error = Config::from_file("/nonexistent/cluster.toml").expect_err("refused");
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/cluster.toml"));
}

/// Built in code: loopback servers on consecutive ports; bad options are refused.
#[test]
fn a_loopback_configuration_is_built_in_code() {
    let config = Config::loopback(3, 7100);
    let ports: Vec<u16> = config.servers().iter().map(|s| s.address.port()).collect();
    assert_eq!(ports, vec![7100, 7101, 7102]);
    config.validate().expect("valid");

    let bad = config.with_options(Options {
        queue_capacity: 0,
        ..Options::default()
    });
    let error = bad.validate().expect_err("refused").to_string();
    assert!(
        error.contains("<code>") && error.contains("options.queue_capacity"),
        "{error}"
    );
}

/// `dial_from_own_ip` and `fault_injection` are read from the file's options; dialling
/// from one's own IP needs a specific IP for every server, and the error names the
/// file and the server's address field.
#[test]
fn dial_from_own_ip_needs_specific_addresses_naming_file_and_field() {
    let file = file_with(
        "[options]\ndial_from_own_ip = true\nfault_injection = true\n\
         [[servers]]\nid = 1\naddress = \"127.0.0.2:7001\"\n\
         [[servers]]\nid = 2\naddress = \"127.0.0.3:7001\"\n",
    );
    let config = Config::from_file(file.path()).expect("valid");
    assert!(config.options().dial_from_own_ip);
    assert!(config.options().fault_injection);

    let (error, path) = error_for(
        "[options]\ndial_from_own_ip = true\n\
         [[servers]]\nid = 1\naddress = \"127.0.0.2:7001\"\n\
         [[servers]]\nid = 2\naddress = \"0.0.0.0:7001\"\n",
    );
    assert!(
        error.starts_with(&format!("{path}: field `servers[1].address`: 0.0.0.0 ")),
        "{error}"
    );
    assert!(error.contains("dial_from_own_ip"), "{error}");

    let (error, _) = error_for(
        "[options]\ndial_from_own_ip = true\n\
         [[servers]]\nid = 1\naddress = \"127.0.0.2:7001\"\n\
         [[servers]]\nid = 2\naddress = \"[::1]:7001\"\n",
    );
    assert!(error.contains("field `servers[1].address`"), "{error}");
    assert!(error.contains("same IP family"), "{error}");

    // The same rule for a configuration built in code.
    let options = Options {
        dial_from_own_ip: true,
        ..Options::default()
    };
    let in_code = Config::new([(1, "0.0.0.0:7001".parse().unwrap())]).with_options(options);
    let error = in_code.validate().expect_err("refused").to_string();
    assert!(
        error.starts_with("<code>: field `servers[0].address`"),
        "{error}"
    );
}
