//! The idle cost of a cluster: CPU share and resident memory per server from `/proc`,
//! and the messages each server sends a second, counted from its trace log.
//!
//! CPU: `utime + stime` of `/proc/<pid>/stat` at the start and end of the window,
//! divided by the window and the kernel's clock ticks a second (`getconf CLK_TCK`).
//! Memory: `VmRSS` of `/proc/<pid>/status` at the end. Messages: a second cluster of
//! the same shape runs with `RUST_LOG=info,raft=trace`, where the core logs each
//! outgoing message as "sending" (heartbeats and their responses included); its lines
//! with timestamps inside the window are counted. Tracing costs CPU, so the CPU
//! figures come from the first cluster only.

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use super::servers::{Servers, Shape};
use crate::logs::parse_timestamp;

/// What one idle server costs.
#[derive(Clone, Debug, PartialEq)]
pub struct IdleCost {
    /// The server's id.
    pub id: u64,
    /// Its CPU time over the window, as a percentage of one core.
    pub cpu_percent: f64,
    /// Its resident memory at the end of the window, in MiB.
    pub rss_mib: f64,
    /// Messages it sent a second over the window (trace run).
    pub sent_per_second: f64,
    /// Whether it led the cluster whose CPU and memory were measured.
    pub leader: bool,
    /// Whether it led the cluster whose messages were counted (a second cluster, whose
    /// leader may be another server).
    pub leader_in_trace_run: bool,
}

/// Measures an idle cluster of `shape` over `window`.
pub fn measure(binary: &Path, shape: &Shape, window: Duration) -> anyhow::Result<Vec<IdleCost>> {
    let ticks = clock_ticks()?;
    let quiet = Servers::start(binary, shape, "info")?;
    let ids = quiet.ids();
    let settle = Duration::from_secs(30);
    let (leader, _) = quiet
        .wait_agreed(&ids, settle, |_, _| true)
        .context("no leader")?;
    // Let start-up work (connections, first election) finish before the window.
    thread::sleep(Duration::from_secs(2));

    let pids: Vec<u32> = ids
        .iter()
        .map(|&id| quiet.pid(id))
        .collect::<Option<_>>()
        .context("pid")?;
    let before: Vec<u64> = pids
        .iter()
        .map(|&pid| cpu_ticks(pid))
        .collect::<anyhow::Result<_>>()?;
    thread::sleep(window);
    let after: Vec<u64> = pids
        .iter()
        .map(|&pid| cpu_ticks(pid))
        .collect::<anyhow::Result<_>>()?;
    let rss: Vec<f64> = pids
        .iter()
        .map(|&pid| rss_mib(pid))
        .collect::<anyhow::Result<_>>()?;
    drop(quiet);

    let traced = Servers::start(binary, shape, "info,raft=trace")?;
    let (traced_leader, _) = traced
        .wait_agreed(&ids, settle, |_, _| true)
        .context("no leader")?;
    thread::sleep(Duration::from_secs(2));
    let from = now_us()?;
    thread::sleep(window);
    let to = now_us()?;
    let mut sent = Vec::with_capacity(ids.len());
    for &id in &ids {
        let text = std::fs::read_to_string(traced.log_path(id))?;
        let count = text
            .lines()
            // The core logs the message itself in a field also called `message`, so
            // these lines carry that key twice and a JSON parser keeps the second:
            // the line is recognised by its text, the time parsed as usual.
            .filter(|line| line.contains(r#""message":"sending""#))
            .filter_map(timestamp_of)
            .filter(|at| (from..to).contains(at))
            .count();
        sent.push(count as f64 / window.as_secs_f64());
    }

    let seconds = window.as_secs_f64();
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, &id)| IdleCost {
            id,
            cpu_percent: (after[i] - before[i]) as f64 / ticks / seconds * 100.0,
            rss_mib: rss[i],
            sent_per_second: sent[i],
            leader: id == leader,
            leader_in_trace_run: id == traced_leader,
        })
        .collect())
}

fn timestamp_of(line: &str) -> Option<i64> {
    let fields: serde_json::Value = serde_json::from_str(line).ok()?;
    parse_timestamp(fields.get("timestamp")?.as_str()?)
}

fn now_us() -> anyhow::Result<i64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64)
}

fn clock_ticks() -> anyhow::Result<f64> {
    let output = Command::new("getconf").arg("CLK_TCK").output()?;
    let text = String::from_utf8(output.stdout)?;
    text.trim()
        .parse()
        .with_context(|| format!("getconf CLK_TCK said {text:?}"))
}

/// `utime + stime` of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after its closing parenthesis don't.
    let rest = stat
        .rsplit_once(')')
        .context("no ')' in /proc/<pid>/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the file, utime 14 and stime 15.
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("short /proc/{pid}/stat: {stat}");
    };
    Ok(utime.parse::<u64>()? + stime.parse::<u64>()?)
}

/// `VmRSS` of a process, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS")?;
    let kib: f64 = line.trim().trim_end_matches("kB").trim().parse()?;
    Ok(kib / 1024.0)
}
