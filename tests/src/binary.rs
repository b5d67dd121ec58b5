//! Locating, and if need be building, the `raft-node` binary (see the crate docs).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `raft-node` binary of the profile and target directory this test runs from,
/// brought up to date by one `cargo build -p raft-node` per test process.
///
/// # Panics
///
/// When the build fails or the binary is still missing after it.
pub fn raft_node_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build)
}

fn build() -> PathBuf {
    let exe = std::env::current_exe().expect("the executable has a path");
    // Tests run from <target-dir>/<profile>/deps/, binaries (chaos, failover) from
    // <target-dir>/<profile>/.
    let exe_dir = exe.parent().expect("the executable lives in a directory");
    let profile_dir = if exe_dir.file_name().is_some_and(|name| name == "deps") {
        exe_dir
            .parent()
            .expect("deps/ lives in <target-dir>/<profile>")
    } else {
        exe_dir
    };
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .expect("the profile directory has a UTF-8 name");
    let target_dir = profile_dir
        .parent()
        .expect("the profile directory lives in a target directory");
    let binary = profile_dir.join("raft-node");

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "raft-node", "--target-dir"])
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        other => {
            command.args(["--profile", other]);
        }
    }

    let status = command
        .status()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(status.success(), "{command:?} failed: {status}");
    assert!(
        binary.is_file(),
        "{} is missing after {command:?}",
        binary.display()
    );
    binary
}
