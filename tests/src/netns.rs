//! A network namespace of its own for a partition test, and iptables rules in it that
//! cut links between servers.
//!
//! [`Netns::create`] makes a uniquely named namespace (`ip netns add`) and brings its
//! loopback interface up, which makes all of 127.0.0.0/8 usable inside it. The test
//! then calls [`Netns::enter`] on its own thread before it builds its [`Cluster`]
//! (with [`ClusterSpec::address_per_server`]): from then on the thread's sockets, the
//! threads it starts (status pollers) and the processes it starts (the servers, which
//! inherit the namespace as `ip netns exec` would give it to them) all live in the
//! namespace, so the status ports are reached directly, and nothing a test does is
//! visible outside. Other tests of the same process run on other threads and are not
//! affected.
//!
//! Dropping the [`Netns`] deletes the namespace, also when the test panics. Declare it
//! before the cluster, so that the cluster (and its processes) go first.
//!
//! Cuts are iptables rules in the namespace's `OUTPUT` chain (every packet between
//! loopback addresses passes it once). Each server sends only on the connection it
//! dials to a peer's election address, so "server A's messages to B" is exactly the
//! TCP connection from A's IP to B's IP and port: [`Netns::cut`] drops the packets of
//! that connection in both directions (data and acknowledgements), which stops A's
//! messages to B and nothing else. A symmetric partition is a cut each way. Packets
//! are dropped, not refused, as in a real partition: connections stay open until TCP
//! gives up, and after a heal they carry on once TCP retransmits (which, after a long
//! cut, can take a few seconds of exponential back-off).
//!
//! [`Cluster`]: crate::Cluster
//! [`ClusterSpec::address_per_server`]: crate::ClusterSpec::address_per_server

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process::run_to_exit;

/// Namespaces made by this process so far, for unique names.
static MADE: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with its loopback interface up, or returns `None` after
    /// printing why `test` is skipped: not root, `ip` or `iptables` missing, or a
    /// namespace that cannot be made or used (root without the capability, as in an
    /// unprivileged container).
    pub fn create(test: &str) -> Option<Netns> {
        if !is_root() {
            eprintln!("skipping {test}: it needs root for network namespaces and iptables");
            return None;
        }
        for tool in ["ip", "iptables"] {
            if !tool_runs(tool) {
                eprintln!("skipping {test}: `{tool}` is not installed");
                return None;
            }
        }

        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("raft-test-{}-{made}", std::process::id());
        if let Err(problem) = try_run(Command::new("ip").args(["netns", "add", &name])) {
            // Root without the capability, as in an unprivileged container.
            eprintln!("skipping {test}: cannot make a network namespace: {problem}");
            return None;
        }
        let netns = Netns { name };

        // Dropping `netns` on the early returns deletes the namespace again.
        let ready = netns
            .try_exec(&["ip", "link", "set", "lo", "up"])
            .and_then(|()| netns.try_exec(&["iptables", "-w", "-L", "OUTPUT", "-n"]));
        if let Err(problem) = ready {
            eprintln!("skipping {test}: the namespace is unusable: {problem}");
            return None;
        }
        Some(netns)
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves the calling thread into the namespace, and with it every socket, thread
    /// and process it opens or starts afterwards.
    ///
    /// # Panics
    ///
    /// When `setns` fails.
    // The standard library has no setns; libc's is a plain system call on a descriptor.
    #[allow(unsafe_code)]
    pub fn enter(&self) {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path);
        let file = file.unwrap_or_else(|error| panic!("cannot open {path}: {error}"));
        // SAFETY: the descriptor is open for the whole call; setns only reads it.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            entered,
            0,
            "setns into {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    ///
    /// # Panics
    ///
    /// When it fails.
    pub fn exec(&self, command: &[&str]) {
        if let Err(problem) = self.try_exec(command) {
            panic!("{problem}");
        }
    }

    fn try_exec(&self, command: &[&str]) -> Result<(), String> {
        try_run(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(command),
        )
    }

    /// Drops the messages of the server at `from` to the server listening on `to` (its
    /// election address): every packet of the connection `from` dials to `to`, both
    /// ways. The messages of `to` to `from` still flow.
    pub fn cut(&self, from: SocketAddr, to: SocketAddr) {
        let (from, to_ip, to_port) = (from.ip().to_string(), to.ip().to_string(), to.port());
        let port = to_port.to_string();
        let rules = [
            [
                "-s",
                from.as_str(),
                "-d",
                to_ip.as_str(),
                "--dport",
                port.as_str(),
            ],
            [
                "-s",
                to_ip.as_str(),
                "-d",
                from.as_str(),
                "--sport",
                port.as_str(),
            ],
        ];
        for rule in rules {
            let mut command = vec!["iptables", "-w", "-A", "OUTPUT", "-p", "tcp"];
            command.extend(rule);
            command.extend(["-j", "DROP"]);
            self.exec(&command);
        }
    }

    /// Cuts both ways between the servers at `a` and `b`.
    pub fn cut_both(&self, a: SocketAddr, b: SocketAddr) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Removes every cut.
    pub fn heal(&self) {
        self.exec(&["iptables", "-w", "-F", "OUTPUT"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
        if !deleted.is_ok_and(|status| status.success()) {
            eprintln!("could not delete network namespace {}", self.name);
        }
    }
}

// The standard library offers no effective user id.
#[allow(unsafe_code)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `tool --version` runs and succeeds.
fn tool_runs(tool: &str) -> bool {
    let version = if tool == "ip" { "-V" } else { "--version" };
    Command::new(tool)
        .arg(version)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs `command` to its end; the error names it and gives what it printed.
fn try_run(command: &mut Command) -> Result<(), String> {
    let finished = run_to_exit(command, Duration::from_secs(20));
    if finished.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed: {}", finished.stderr.trim()))
    }
}
