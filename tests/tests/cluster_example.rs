//! Runs the `cluster` crate's chat example as three real processes on loopback and
//! checks that every process hears every other's greetings.
//!
//! The example binary is the one `cargo test --workspace` builds next to this test
//! (`target/<profile>/examples/chat`). When it is missing (e.g. `cargo test -p tests`
//! alone), the test builds it once with `cargo build -p cluster --example chat` in a
//! separate target directory, so as not to wait on the running cargo's build lock.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Greetings each process sends and expects from each peer.
const GREETINGS: u64 = 5;

/// The whole run, startup included, must end well within this.
const PATIENCE: Duration = Duration::from_secs(90);

/// Child processes, killed if the test ends early.
struct Children(Vec<(u64, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

fn example_binary() -> PathBuf {
    let name = format!("chat{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().expect("test executable path");
    // <target>/<profile>/deps/<this test>: the example sits in <target>/<profile>/examples.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in <target>/<profile>/deps");
    let beside = profile_dir.join("examples").join(&name);
    if beside.exists() {
        return beside;
    }

    let target = profile_dir
        .parent()
        .expect("profile directory inside target directory")
        .join("cluster-example");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "cluster",
            "--example",
            "chat",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(workspace_root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the chat example failed");
    target.join("debug").join("examples").join(name)
}

/// Three free loopback ports, found by binding port 0 and letting go.
fn free_ports() -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn wait_all(children: &mut Children) -> Vec<(u64, ExitStatus, String, String)> {
    let started = Instant::now();
    let mut results = Vec::new();
    while results.len() < children.0.len() {
        assert!(
            started.elapsed() < PATIENCE,
            "chat processes did not finish within {PATIENCE:?}"
        );
        results.clear();
        for (id, child) in &mut children.0 {
            if let Some(status) = child.try_wait().expect("poll child") {
                results.push((*id, status));
            }
        }
        // Child processes offer no event to wait on together; poll them gently.
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut outputs = Vec::new();
    for ((id, child), (_, status)) in children.0.iter_mut().zip(results) {
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(pipe) = child.stdout.as_mut() {
            pipe.read_to_string(&mut stdout).expect("read stdout");
        }
        if let Some(pipe) = child.stderr.as_mut() {
            pipe.read_to_string(&mut stderr).expect("read stderr");
        }
        outputs.push((*id, status, stdout, stderr));
    }
    outputs
}

/// Three chat processes, each with its own id and one shared configuration file, each
/// receive all greetings of both others (stamped with the right sender) and exit 0.
#[test]
fn three_chat_processes_hear_each_others_greetings() {
    let binary = example_binary();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("cluster.toml");
    let mut text = String::from("cluster_name = \"chat-test\"\n");
    for (id, port) in (1u64..).zip(free_ports()) {
        text.push_str(&format!(
            "[[servers]]\nid = {id}\naddress = \"127.0.0.1:{port}\"\n"
        ));
    }
    std::fs::write(&config, text).expect("write config");

    let mut children = Children(Vec::new());
    for id in 1..=3u64 {
        let child = Command::new(&binary)
            .arg(id.to_string())
            .arg("--config")
            .arg(&config)
            .args(["--count", &GREETINGS.to_string()])
            .args([
                "--interval-ms",
                "100",
                "--linger-ms",
                "1500",
                "--deadline-secs",
                "60",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chat example");
        children.0.push((id, child));
    }

    for (id, status, stdout, stderr) in wait_all(&mut children) {
        let context = format!("process {id}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(status.success(), "exit status {status}; {context}");
        assert!(
            stdout.contains(&format!("done: {GREETINGS} greetings from each of 2 peers")),
            "{context}"
        );
        for peer in (1..=3u64).filter(|&p| p != id) {
            for number in 1..=GREETINGS {
                let line = format!("[from {peer}] greeting #{number}");
                assert!(stdout.contains(&line), "missing {line:?}; {context}");
            }
        }
        assert!(
            !stdout.contains(&format!("[from {id}]")),
            "heard itself; {context}"
        );
    }
}
