//! `raft-node demo --script`: the demo run unattended, as CI runs it. Each test writes
//! a script, runs the demo and checks the exit status, the view's text, the timeline
//! SVG it writes, and that no server process and no temporary file is left behind.
//!
//! The demos run with election timeouts of 300-600 ms (given by `--config`): fast
//! enough for seconds-long tests, and twice the paper's, so that a loaded machine
//! running other process tests does not provoke elections the scripts do not expect.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::{raft_node_binary, run_to_exit, Finished};

/// Generous: each script below takes a few seconds, the tour about twenty, on an idle
/// machine; CI runs them beside every other process test.
const LIMIT: Duration = Duration::from_secs(120);

/// A configuration of `servers` servers with 300-600 ms election timeouts. The demo
/// takes the ids, timing and switches from it and picks its own ports.
fn write_config(dir: &Path, servers: u64) -> PathBuf {
    let mut text = String::from(
        "cluster_name = \"demo-test\"\n\n[timing]\ntick_ms = 10\n\
         election_timeout_min_ms = 300\nelection_timeout_max_ms = 600\n\
         heartbeat_interval_ms = 50\n",
    );
    for id in 1..=servers {
        // The demo replaces these addresses with free ports of its own.
        text.push_str(&format!(
            "\n[[servers]]\nid = {id}\naddress = \"127.0.0.1:{}\"\n\
             status_address = \"127.0.0.1:{}\"\n",
            7000 + id,
            7100 + id
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// Runs `raft-node demo --script` on `script` with five servers in a fresh directory,
/// with the timeline written there; returns the outcome and the directory.
fn run_demo(script: &str) -> (Finished, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("script.txt"), script).expect("write the script");
    let config = write_config(dir.path(), 5);

    let mut command = demo_in(dir.path(), &config);
    command.args(["--script", "script.txt", "--timeline", "timeline.svg"]);
    let finished = run_to_exit(&mut command, LIMIT);
    (finished, dir)
}

/// `raft-node demo --config CONFIG`, run in `dir`.
fn demo_in(dir: &Path, config: &Path) -> Command {
    let mut command = Command::new(raft_node_binary());
    command
        .current_dir(dir)
        .arg("demo")
        .arg("--config")
        .arg(config);
    command
}

/// The pids the demo printed for its servers ("servers started: 1 (pid 123), ...").
fn server_pids(stdout: &str) -> Vec<u32> {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("servers started: "))
        .unwrap_or_else(|| panic!("no \"servers started\" line in:\n{stdout}"));
    line.split("(pid ")
        .skip(1)
        .map(|rest| rest.split(')').next().unwrap().parse().unwrap())
        .collect()
}

/// The directory the demo printed ("files in DIR").
fn files_dir(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("files in "))
        .unwrap_or_else(|| panic!("no \"files in\" line in:\n{stdout}"));
    PathBuf::from(line)
}

/// Checks that every server process is gone and the temporary directory removed.
fn assert_nothing_left(stdout: &str) {
    let pids = server_pids(stdout);
    assert_eq!(pids.len(), 5, "{stdout}");
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        // A pid may have been reused by an unrelated process; ours were raft-node.
        assert!(
            !status.starts_with("Name:\traft-node"),
            "server pid {pid} still runs after the demo ended"
        );
    }
    let dir = files_dir(stdout);
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// The server id in every "ok: server N leads term T" line, in order.
fn leaders_seen(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("ok: server "))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let id = words.next().unwrap().parse().unwrap();
            let term = words.nth(2).unwrap().parse().unwrap();
            (id, term)
        })
        .collect()
}

/// The ROLE column of a frame's rows, one role a line.
fn roles(frame: &str) -> String {
    let mut roles = String::new();
    for line in frame.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 4 && words[0].parse::<u64>().is_ok() {
            roles.push_str(words[3]);
            roles.push('\n');
        }
    }
    roles
}

fn assert_success(finished: &Finished) {
    assert!(
        finished.status.success(),
        "the demo failed: {}\nstdout:\n{}\nstderr:\n{}",
        finished.status,
        finished.stdout,
        finished.stderr
    );
}

fn read_svg(dir: &Path) -> String {
    let svg = std::fs::read_to_string(dir.join("timeline.svg")).expect("the timeline is written");
    assert!(
        svg.starts_with("<svg ") && svg.ends_with("</svg>\n"),
        "{svg}"
    );
    svg
}

/// The servers shown leading in the SVG's spans, in the order they appear.
fn svg_leaders(svg: &str) -> Vec<u64> {
    svg.lines()
        .filter(|line| line.contains(r#"data-state="leader""#))
        .map(|line| {
            let rest = line.split(r#"data-server=""#).nth(1).unwrap();
            rest.split('"').next().unwrap().parse().unwrap()
        })
        .collect()
}

/// Killing the leader: the view shows it killed, the others elect a new leader in a
/// higher term, and the timeline draws both leaders and the kill.
#[test]
fn killing_the_leader_elects_a_new_one() {
    let script = "wait-leader 10s\nkill leader\nwait-leader 10s\nexpect leader\n";
    let (finished, dir) = run_demo(script);
    assert_success(&finished);
    let out = &finished.stdout;

    let leaders = leaders_seen(out);
    assert!(leaders.len() >= 3, "{out}");
    let (first, first_term) = leaders[0];
    let (second, second_term) = leaders[leaders.len() - 1];
    assert_ne!(first, second, "the killed leader cannot lead again\n{out}");
    assert!(second_term > first_term, "{out}");
    assert!(
        out.contains(&format!("> kill {first} (the leader)")),
        "{out}"
    );

    // The frame after the new leader is agreed shows the old one killed.
    let frame = out
        .split("== ")
        .find(|frame| frame.contains("after: wait-leader") && frame.contains("killed"))
        .unwrap_or_else(|| panic!("no frame after the kill in:\n{out}"));
    let row = |id: u64| {
        frame
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{id}  ")))
            .unwrap_or_else(|| panic!("no row for {id} in:\n{frame}"))
    };
    assert!(row(first).contains("killed"), "{frame}");
    assert!(row(second).contains("leader"), "{frame}");
    assert!(
        frame.lines().all(|line| line.chars().count() <= 80),
        "{frame}"
    );

    let svg = read_svg(dir.path());
    let drawn = svg_leaders(&svg);
    assert!(
        drawn.contains(&first) && drawn.contains(&second),
        "{drawn:?}"
    );
    assert!(svg.contains(&format!(">kill {first} (the leader)</text>")));

    assert_nothing_left(out);
}

/// A partition into {1,2} and {3,4,5}: only the majority elects, the minority has no
/// leader for a while, and after the heal the whole cluster agrees on one leader.
#[test]
fn a_partition_elects_only_in_the_majority_and_heal_leaves_one_leader() {
    let script = "\
        wait-leader 10s\n\
        partition 1,2 3,4,5\n\
        wait-leader in 3,4,5 10s\n\
        wait-no-leader in 1,2 10s\n\
        expect no-leader in 1,2 for 1500ms\n\
        expect leader in 3,4,5\n\
        heal\n\
        wait-leader 10s\n\
        expect leader\n";
    let (finished, dir) = run_demo(script);
    let out = &finished.stdout;
    assert!(
        !out.contains("no fault layer"),
        "this build of raft-node has no fault layer: partitions cannot be tested\n{out}"
    );
    assert_success(&finished);

    assert!(out.contains("ok: no leader among 1,2"), "{out}");
    let partitioned = out
        .split("== ")
        .find(|frame| frame.contains("after: expect leader in 3,4,5"))
        .unwrap_or_else(|| panic!("no frame after the expectation in:\n{out}"));
    assert!(
        partitioned.contains("network: split A=1,2 | B=3,4,5"),
        "{partitioned}"
    );
    assert_eq!(partitioned.matches("cut off A").count(), 2, "{partitioned}");
    assert_eq!(partitioned.matches("cut off B").count(), 3, "{partitioned}");

    let healed = out
        .split("== ")
        .find(|frame| frame.contains("after: expect leader\n"))
        .unwrap_or_else(|| panic!("no frame after the heal in:\n{out}"));
    assert!(healed.contains("network: whole"), "{healed}");
    assert_eq!(roles(healed).matches("leader").count(), 1, "{healed}");

    let svg = read_svg(dir.path());
    assert!(svg.contains(">partition 1,2 | 3,4,5</text>"), "{svg}");
    assert!(svg.contains(">heal</text>"));
    assert!(svg.matches(r#"class="cut""#).count() >= 5);

    assert_nothing_left(out);
}

/// A failed expectation ends the demo with exit status 1 and names the script line;
/// the servers are stopped and the files removed all the same.
#[test]
fn a_failed_expectation_fails_the_script_and_cleans_up() {
    let (finished, dir) = run_demo("wait-leader 10s\nexpect no-leader\n");

    assert_eq!(finished.status.code(), Some(1), "{}", finished.stdout);
    assert!(
        finished
            .stderr
            .contains("script line 2 (expect no-leader): server "),
        "{}",
        finished.stderr
    );
    assert!(finished.stderr.contains(" leads"), "{}", finished.stderr);
    read_svg(dir.path());
    assert_nothing_left(&finished.stdout);
}

/// Commands piped to standard input run as a script does; a kept directory holds the
/// servers' logs, from which `raft-node timeline` draws the same elections.
#[test]
fn piped_commands_run_and_timeline_draws_the_kept_logs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = write_config(dir.path(), 3);
    let mut child = demo_in(dir.path(), &config)
        .args(["--data-dir", "kept", "--no-timeline"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"wait-leader 10s\nkill leader\nwait-leader 10s\nquit\n")
        .expect("write the commands");
    drop(stdin);
    let output = child.wait_with_output().expect("the demo ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(leaders_seen(&stdout).len(), 2, "{stdout}");
    assert!(stdout.contains("files kept in kept"), "{stdout}");
    assert!(!dir.path().join("raft-node-demo-timeline.svg").exists());

    let logs: Vec<PathBuf> = (1..=3)
        .map(|id| dir.path().join(format!("kept/server-{id}.log")))
        .collect();
    let mut command = Command::new(raft_node_binary());
    command
        .current_dir(dir.path())
        .arg("timeline")
        .args(&logs)
        .args(["--out", "timeline.svg"]);
    let finished = run_to_exit(&mut command, LIMIT);
    assert_success(&finished);
    assert!(
        finished
            .stdout
            .starts_with("timeline of 3 servers, 2 leader elections"),
        "{}",
        finished.stdout
    );
    let svg = read_svg(dir.path());
    let mut drawn = svg_leaders(&svg);
    drawn.dedup();
    assert_eq!(drawn.len(), 2, "{drawn:?}");
}

/// SIGTERM in the middle of a script ends the demo at once: exit status 1 naming the
/// signal, every server stopped, the temporary directory removed, the timeline written.
#[test]
fn sigterm_mid_script_stops_everything() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("script.txt"), "wait-leader 10s\nwait 60s\n")
        .expect("write the script");
    let config = write_config(dir.path(), 5);
    let mut child = demo_in(dir.path(), &config)
        .args(["--script", "script.txt", "--timeline", "timeline.svg"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");

    // Read the output on a thread until the script reaches its long wait.
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    loop {
        let line = seen
            .recv_timeout(Duration::from_secs(30))
            .expect("the demo reaches its wait within 30 s");
        if line == "> wait 60s" {
            break;
        }
    }

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.expect("run kill").success());
    let started = std::time::Instant::now();
    let output = child.wait_with_output().expect("the demo ends");
    let stdout = reader.join().expect("reader thread");

    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    read_svg(dir.path());
    assert_nothing_left(&stdout);
}

/// A demo killed with SIGKILL cannot stop its servers, yet they end with it, a paused
/// one included: their standard input closes (or, paused, the kernel hangs them up).
#[test]
fn servers_end_with_a_demo_killed_by_sigkill() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("script.txt"),
        "wait-leader 10s\npause 1\nwait 60s\n",
    )
    .expect("write the script");
    let config = write_config(dir.path(), 5);
    let mut child = demo_in(dir.path(), &config)
        .args(["--script", "script.txt", "--no-timeline"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");

    let stdout = child.stdout.take().expect("piped stdout");
    let mut printed = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("read the demo's output");
        printed.push_str(&line);
        printed.push('\n');
        if line == "> wait 60s" {
            break;
        }
    }
    assert!(printed.contains("> wait 60s"), "{printed}");
    child.kill().expect("SIGKILL the demo");
    child.wait().expect("reap the demo");

    // The directory cannot be removed by a killed demo; the test removes it.
    let files = files_dir(&printed);
    let pids = server_pids(&printed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let running = |pid: &u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status.starts_with("Name:\traft-node") && !status.contains("State:\tZ")
    };
    while pids.iter().any(running) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<&u32> = pids.iter().filter(|pid| running(pid)).collect();
    let _ = std::fs::remove_dir_all(&files);
    assert!(left.is_empty(), "servers {left:?} outlived the demo");
}

/// The README's tour (`docs/demo-tour.txt`) runs to its end, at the paper's timing so
/// that it takes seconds: a README command that cannot rot.
#[test]
fn the_readme_tour_runs() {
    let tour = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/demo-tour.txt");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(raft_node_binary());
    command
        .current_dir(dir.path())
        .args(["demo", "--fast", "--script"])
        .arg(&tour)
        .args(["--timeline", "timeline.svg"]);
    let finished = run_to_exit(&mut command, LIMIT);
    assert_success(&finished);

    let svg = read_svg(dir.path());
    for label in [
        "(the leader)</text>",
        ">partition 1,2 | 3,4,5</text>",
        ">heal</text>",
    ] {
        assert!(svg.contains(label), "{label} is not drawn");
    }
    assert!(svg.contains(r#"data-state="paused""#));
    assert!(
        finished
            .stdout
            .contains("ok: leadership handed from server"),
        "{}",
        finished.stdout
    );
    assert_nothing_left(&finished.stdout);
}
