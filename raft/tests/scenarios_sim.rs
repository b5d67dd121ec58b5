//! The election checklist, row by row, driven through the deterministic simulator.
//!
//! One tick lasts 10 ms of virtual time, so the default election timeout of 15–30 ticks
//! is 150–300 ms. Every test runs with the simulator's invariant checks on (at most one
//! leader per term, one vote per term, monotonic terms, majority votes, persist before
//! send): any step that breaks one fails the test with its trace. A failing test prints
//! the command that replays it: `cargo test -p raft --test scenarios_sim NAME`.

use raft::sim::{Action, Invariant, Micros, SimBuilder, Simulation, MILLI, SECOND};
use raft::{Config, Event, NodeId, Role, Term};

/// The poller's period in the tests that sample the cluster like an observer would.
const POLL: Micros = 50 * MILLI;

fn config(pre_vote: bool, check_quorum: bool) -> Config {
    Config {
        pre_vote,
        check_quorum,
        ..Config::new(1, [1])
    }
}

/// A cluster of `size` servers whose failure report names the test to rerun.
fn cluster(test: &str, size: usize, seed: u64, pre_vote: bool, check_quorum: bool) -> Simulation {
    let replay = format!("cargo test -p raft --test scenarios_sim {test} -- --nocapture");
    match SimBuilder::new(size, seed)
        .config(config(pre_vote, check_quorum))
        .replay_command(replay)
        .build()
    {
        Ok(sim) => sim,
        Err(e) => panic!("bad config: {e}"),
    }
}

/// Runs until every running server of `group` follows one leader; fails the test with
/// the trace if that takes longer than `timeout`.
fn expect_leader_among(sim: &mut Simulation, group: &[NodeId], timeout: Micros) -> (NodeId, Term) {
    let deadline = sim.now() + timeout;
    if sim.run_until(deadline, |s| s.agreed_leader_among(group).is_some()) {
        let (leader, term) = sim.agreed_leader_among(group).unwrap_or_default();
        sim.note(format!("test: s{leader} leads {group:?} in term {term}"));
        return (leader, term);
    }
    sim.fail(
        Invariant::Scenario,
        format!(
            "no leader agreed on by {group:?} within {} ms",
            timeout / MILLI
        ),
    )
}

/// [`expect_leader_among`] over the whole cluster.
fn expect_leader(sim: &mut Simulation, timeout: Micros) -> (NodeId, Term) {
    let all = sim.ids().to_vec();
    expect_leader_among(sim, &all, timeout)
}

/// Runs `duration`, calling `check` every [`POLL`] of virtual time.
fn poll(sim: &mut Simulation, duration: Micros, mut check: impl FnMut(&mut Simulation)) {
    let end = sim.now() + duration;
    while sim.now() < end {
        sim.run_for(POLL.min(end - sim.now()));
        check(sim);
    }
}

/// Fails the test with the trace unless `condition` holds.
fn require(sim: &Simulation, condition: bool, what: impl FnOnce() -> String) {
    if !condition {
        let detail = what();
        sim.fail(Invariant::Scenario, detail);
    }
}

/// The servers that are not `leader`, in id order.
fn followers(sim: &Simulation, leader: NodeId) -> Vec<NodeId> {
    sim.ids()
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .collect()
}

/// Whether any running server of `group` believes it leads.
fn any_leader_in(sim: &Simulation, group: &[NodeId]) -> bool {
    group.iter().any(|&id| sim.role(id) == Some(Role::Leader))
}

/// Scenario 1: a healthy cluster of three or five elects one leader within 5 s, and
/// every server ends in the same term, at least 1.
#[test]
fn initial_election_in_a_healthy_cluster_elects_one_leader_within_five_seconds() {
    let test = "initial_election_in_a_healthy_cluster";
    for size in [3, 5] {
        for seed in 0..20 {
            let mut sim = cluster(test, size, seed, true, true);

            let (leader, term) = expect_leader(&mut sim, 5 * SECOND);

            require(&sim, term >= 1, || format!("term {term} below 1"));
            let terms: Vec<Option<Term>> = sim.ids().iter().map(|&id| sim.term(id)).collect();
            require(&sim, terms.iter().all(|&t| t == Some(term)), || {
                format!("terms differ: {terms:?}")
            });
            require(&sim, sim.leaders() == vec![(leader, term)], || {
                format!("leaders: {:?}", sim.leaders())
            });
        }
    }
}

/// Scenario 2: with no faults for 2 s after the election, the same leader keeps the
/// same term.
#[test]
fn stable_leadership_keeps_the_same_leader_and_term_without_faults() {
    for seed in 0..10 {
        let mut sim = cluster("stable_leadership", 5, seed, true, true);
        let (leader, term) = expect_leader(&mut sim, 5 * SECOND);

        poll(&mut sim, 2 * SECOND, |sim| {
            let now = sim.agreed_leader();
            require(sim, now == Some((leader, term)), || {
                format!("expected s{leader} in term {term}, found {now:?}")
            });
        });
    }
}

/// Scenario 3: at most one leader per term, polled every 50 ms through a chaotic run
/// of partitions, loss, duplication, crashes and restarts (the invariant checker also
/// enforces it after every single step, over the whole history).
#[test]
fn at_most_one_leader_per_term_through_a_chaotic_run() {
    for seed in 0..6 {
        let mut sim = cluster("at_most_one_leader_per_term", 5, seed, seed % 2 == 0, true);
        sim.apply(Action::SetDrop(0.2));
        sim.apply(Action::SetDuplicate(0.1));
        sim.apply(Action::SetDelay {
            min: MILLI,
            max: 30 * MILLI,
        });
        let chaos = [
            Action::Partition(vec![vec![1, 2], vec![3, 4, 5]]),
            Action::Crash(3),
            Action::CutOneWay { from: 4, to: 5 },
            Action::Heal,
            Action::Restart(3),
            Action::CutPair(1, 5),
            Action::CrashAfterPersist(2),
            Action::Isolate(4),
            Action::Heal,
            Action::Restart(2),
        ];

        for action in chaos {
            sim.apply(action);
            poll(&mut sim, 400 * MILLI, |sim| {
                let mut leaders = sim.leaders();
                leaders.sort_by_key(|&(_, term)| term);
                let clash = leaders.windows(2).find(|w| w[0].1 == w[1].1);
                require(sim, clash.is_none(), || format!("two leaders: {leaders:?}"));
            });
        }
    }
}

/// Scenario 4: a follower crashes in a cluster of five; the leader stays and a leader
/// is present at every poll.
#[test]
fn follower_crash_leaves_the_leader_in_place() {
    let mut sim = cluster("follower_crash", 5, 4, true, true);
    let (leader, term) = expect_leader(&mut sim, 5 * SECOND);

    let follower = followers(&sim, leader)[0];
    sim.crash_server(follower);

    poll(&mut sim, 2 * SECOND, |sim| {
        let now = sim.leader();
        require(sim, now == Some(leader), || format!("leader now {now:?}"));
        let t = sim.term(leader);
        require(sim, t == Some(term), || format!("leader term now {t:?}"));
    });
}

/// Scenario 5: the leader crashes, a majority is left, a new leader is elected in a
/// higher term within 5 s.
#[test]
fn leader_crash_with_a_majority_left_elects_a_new_leader_within_five_seconds() {
    for seed in 0..10 {
        let mut sim = cluster("leader_crash", 5, seed, true, true);
        let (old, old_term) = expect_leader(&mut sim, 5 * SECOND);

        sim.crash_server(old);
        let (new, new_term) = expect_leader(&mut sim, 5 * SECOND);

        require(&sim, new != old && new_term > old_term, || {
            format!("s{old} t{old_term} replaced by s{new} t{new_term}")
        });
    }
}

/// Scenario 6: the old leader rejoins after a new one was elected; it becomes a
/// follower of the new leader, and there is still one leader.
#[test]
fn old_leader_rejoining_becomes_a_follower() {
    let mut sim = cluster("old_leader_rejoining", 5, 6, true, true);
    let (old, _) = expect_leader(&mut sim, 5 * SECOND);
    sim.crash_server(old);
    let (new, term) = expect_leader(&mut sim, 5 * SECOND);

    sim.restart_server(old);
    let (now, now_term) = expect_leader(&mut sim, 2 * SECOND);

    require(&sim, (now, now_term) == (new, term), || {
        format!("expected s{new} t{term} to stay, found s{now} t{now_term}")
    });
    let role = sim.role(old);
    require(&sim, role == Some(Role::Follower), || {
        format!("old leader is {role:?}")
    });
    require(&sim, sim.leaders().len() == 1, || {
        format!("{:?}", sim.leaders())
    });
}

/// Scenario 7 (three servers): with every server cut from the others, no minority
/// server claims leadership after 2 s (check-quorum on: the old leader steps down).
/// Plain Raft keeps the isolated leader in its role; scenario 14 shows it.
#[test]
fn quorum_lost_in_three_servers_leaves_no_leader_with_check_quorum() {
    let mut sim = cluster("quorum_lost_in_three", 3, 7, true, true);
    expect_leader(&mut sim, 5 * SECOND);

    sim.partition(&[&[1], &[2], &[3]]);
    sim.run_for(2 * SECOND);

    let leaders = sim.leaders();
    require(&sim, leaders.is_empty(), || format!("leaders: {leaders:?}"));
}

/// Scenario 7 (five servers): with three servers down, the two left never claim
/// leadership after 2 s (check-quorum on).
#[test]
fn quorum_lost_in_five_servers_leaves_no_leader_with_check_quorum() {
    let mut sim = cluster("quorum_lost_in_five", 5, 7, true, true);
    let (leader, _) = expect_leader(&mut sim, 5 * SECOND);

    // The leader is among the three that go down, then two followers.
    let rest = followers(&sim, leader);
    for id in [leader, rest[0], rest[1]] {
        sim.crash_server(id);
    }
    sim.run_for(2 * SECOND);

    let leaders = sim.leaders();
    require(&sim, leaders.is_empty(), || format!("leaders: {leaders:?}"));
}

/// Five servers elect a leader, then three of them go down (the row 7 situation); two
/// seconds later nobody leads.
fn five_with_three_down(test: &str) -> Simulation {
    let mut sim = cluster(test, 5, 8, true, true);
    expect_leader(&mut sim, 5 * SECOND);
    for id in [1, 2, 3] {
        sim.crash_server(id);
    }
    sim.run_for(2 * SECOND);
    require(&sim, sim.leaders().is_empty(), || {
        "leader without quorum".into()
    });
    sim
}

/// Scenario 8: with three of five down, bringing one back restores the quorum, and a
/// leader is elected within 5 s.
#[test]
fn quorum_restored_by_one_server_elects_a_leader_within_five_seconds() {
    let mut sim = five_with_three_down("quorum_restored_by_one_server");

    sim.restart_server(1);

    let (leader, _) = expect_leader(&mut sim, 5 * SECOND);
    require(&sim, [1, 4, 5].contains(&leader), || format!("s{leader}"));
}

/// Scenario 9: after the quorum is restored, the last two servers rejoin; leadership is
/// unaffected (same leader, same term) and there is one leader at every poll.
#[test]
fn last_servers_rejoining_leave_leadership_unaffected() {
    let mut sim = five_with_three_down("last_servers_rejoining");
    sim.restart_server(1);
    let (leader, term) = expect_leader(&mut sim, 5 * SECOND);

    sim.restart_server(2);
    sim.restart_server(3);

    poll(&mut sim, 2 * SECOND, |sim| {
        let leaders = sim.leaders();
        require(sim, leaders == vec![(leader, term)], || {
            format!("expected only s{leader} in t{term}, found {leaders:?}")
        });
    });
    let agreed = sim.agreed_leader();
    require(&sim, agreed == Some((leader, term)), || {
        format!("{agreed:?}")
    });
}

/// Scenario 10 (five servers): restarting servers singly, in pairs, and four at once;
/// whenever a majority is up, a leader is present within 5 s.
#[test]
fn crash_restart_churn_in_five_servers_has_a_leader_whenever_a_majority_is_up() {
    let mut sim = cluster("crash_restart_churn_in_five", 5, 10, true, true);
    expect_leader(&mut sim, 5 * SECOND);
    let rounds: [&[NodeId]; 6] = [&[1], &[4], &[2, 3], &[5, 1], &[1, 2, 3, 4], &[2, 3, 4, 5]];

    for group in rounds {
        for &id in group {
            sim.crash_server(id);
        }
        let up: Vec<NodeId> = sim
            .ids()
            .iter()
            .copied()
            .filter(|&i| sim.is_up(i))
            .collect();
        if up.len() >= 3 {
            expect_leader_among(&mut sim, &up, 5 * SECOND);
        } else {
            sim.run_for(SECOND);
            require(&sim, sim.leaders().is_empty(), || "minority leader".into());
        }
        for &id in group {
            sim.restart_server(id);
        }
        expect_leader(&mut sim, 5 * SECOND);
    }
}

/// Scenario 10 (seven servers): four restarting at once leave a minority that elects
/// nobody; three down leave a majority that keeps or elects a leader; after every
/// restart a leader is back within 5 s.
#[test]
fn crash_restart_churn_in_seven_servers_has_a_leader_whenever_a_majority_is_up() {
    let mut sim = cluster("crash_restart_churn_in_seven", 7, 10, true, true);
    expect_leader(&mut sim, 5 * SECOND);

    for group in [&[1, 2, 3, 4][..], &[4, 5, 6], &[7, 1, 2, 3], &[2, 6]] {
        for &id in group {
            sim.crash_server(id);
        }
        let up: Vec<NodeId> = sim
            .ids()
            .iter()
            .copied()
            .filter(|&i| sim.is_up(i))
            .collect();
        if up.len() >= 4 {
            expect_leader_among(&mut sim, &up, 5 * SECOND);
        } else {
            sim.run_for(SECOND);
            require(&sim, sim.leaders().is_empty(), || "minority leader".into());
        }
        for &id in group {
            sim.restart_server(id);
        }
        expect_leader(&mut sim, 5 * SECOND);
    }
}

/// Cuts the leader of five into the minority {leader, f}; returns the old leader and
/// term, and the leader and term the majority {3} elects within 5 s.
fn leader_cut_into_a_minority(sim: &mut Simulation) -> ((NodeId, Term), (NodeId, Term)) {
    let (old, old_term) = expect_leader(sim, 5 * SECOND);
    let rest = followers(sim, old);
    let minority = [old, rest[0]];
    let majority = [rest[1], rest[2], rest[3]];

    sim.partition(&[&minority, &majority]);

    let (new, new_term) = expect_leader_among(sim, &majority, 5 * SECOND);
    ((old, old_term), (new, new_term))
}

/// Scenario 11: the leader is cut into a minority {leader, f} of five; the majority
/// side elects a new leader in a higher term within 5 s (check-quorum on and off).
#[test]
fn leader_in_a_minority_partition_is_replaced_by_the_majority() {
    for check_quorum in [true, false] {
        let mut sim = cluster("leader_in_a_minority_partition", 5, 11, true, check_quorum);

        let ((old, old_term), (new, new_term)) = leader_cut_into_a_minority(&mut sim);

        require(&sim, new != old && new_term > old_term, || {
            format!("s{old} t{old_term} -> s{new} t{new_term}")
        });
    }
}

/// Scenario 13: after such a partition heals, exactly one leader remains, and it is
/// from the highest term (check-quorum on and off).
#[test]
fn heal_after_a_partition_keeps_one_leader_from_the_highest_term() {
    for check_quorum in [true, false] {
        let mut sim = cluster("heal_after_a_partition", 5, 13, true, check_quorum);
        let (_, (new, new_term)) = leader_cut_into_a_minority(&mut sim);

        sim.heal();

        let (leader, term) = expect_leader(&mut sim, 5 * SECOND);
        let highest = *sim.leader_history().keys().max().unwrap_or(&0);
        require(&sim, term == highest && term >= new_term, || {
            format!("s{leader} t{term} after heal; s{new} had t{new_term}; top t{highest}")
        });
        require(&sim, sim.leaders().len() == 1, || {
            format!("{:?}", sim.leaders())
        });
    }
}

/// Scenario 12: the leader is in the majority {leader, 2} of five; the minority elects
/// nobody and the leader keeps its role and term.
#[test]
fn leader_in_a_majority_partition_keeps_leading_and_the_minority_elects_nobody() {
    let mut sim = cluster("leader_in_a_majority_partition", 5, 12, true, true);
    let (leader, term) = expect_leader(&mut sim, 5 * SECOND);
    let rest = followers(&sim, leader);
    let majority = [leader, rest[0], rest[1]];
    let minority = [rest[2], rest[3]];

    sim.partition(&[&majority, &minority]);
    poll(&mut sim, 2 * SECOND, |sim| {
        require(sim, !any_leader_in(sim, &minority), || {
            "minority leader".into()
        });
        let agreed = sim.agreed_leader_among(&majority);
        require(sim, agreed == Some((leader, term)), || {
            format!("majority: {agreed:?}")
        });
    });
}

/// Scenario 14: a leader cut from every follower keeps its role under plain Raft
/// (no check-quorum), and steps down within an election timeout with check-quorum.
#[test]
fn leader_without_quorum_keeps_its_role_only_without_check_quorum() {
    for check_quorum in [false, true] {
        let mut sim = cluster("leader_without_quorum", 3, 14, true, check_quorum);
        let (leader, term) = expect_leader(&mut sim, 5 * SECOND);

        sim.isolate(leader);
        sim.run_for(2 * SECOND);

        let role = sim.role(leader);
        // With check-quorum it steps down and, alone, keeps polling for pre-votes.
        let as_expected = if check_quorum {
            role != Some(Role::Leader)
        } else {
            role == Some(Role::Leader) && sim.term(leader) == Some(term)
        };
        require(&sim, as_expected, || {
            format!("check_quorum {check_quorum}: isolated s{leader} (t{term}) is {role:?}")
        });
    }
}

/// Scenario 18: elections with servers dead from the start. Three with one dead and
/// five with two dead elect a leader; three with two dead and four with two dead do
/// not, and no server is leader.
#[test]
fn election_with_dead_peers_succeeds_only_with_a_majority_alive() {
    for (size, dead, elects) in [(3, 1, true), (3, 2, false), (4, 2, false), (5, 2, true)] {
        let mut sim = cluster("election_with_dead_peers", size, 18, true, true);
        for id in 1..=dead {
            sim.crash_server(id);
        }
        let alive: Vec<NodeId> = ((dead + 1)..=size as NodeId).collect();

        if elects {
            expect_leader_among(&mut sim, &alive, 5 * SECOND);
        } else {
            sim.run_for(5 * SECOND);
            require(&sim, sim.leaders().is_empty(), || {
                format!("{size} servers, {dead} dead: {:?}", sim.leaders())
            });
        }
    }
}

/// Scenario 28: dueling candidates. With the 1–3 link cut and pre-vote off, 1 wins
/// with 2's vote and 3's campaign in the same term fails; after the heal, 3 campaigns
/// again with a higher term that unseats 1, and the cluster converges on one leader.
#[test]
fn dueling_candidates_converge_on_one_leader_after_the_heal() {
    let mut sim = cluster("dueling_candidates", 3, 28, false, false);
    // Long timeouts keep the timers out of the way while the test campaigns by hand.
    for id in [1, 2, 3] {
        sim.set_election_timeout(id, 1_000);
    }
    sim.cut_pair(1, 3);

    sim.campaign(1);
    expect_leader_among(&mut sim, &[1, 2], SECOND);
    sim.campaign(3);
    sim.run_for(100 * MILLI);
    require(&sim, sim.leader_history().get(&1) == Some(&1), || {
        "t1 not s1".into()
    });
    let role3 = sim.role(3);
    require(&sim, role3 == Some(Role::Candidate), || {
        format!("s3 is {role3:?}")
    });

    sim.heal();
    sim.campaign(3);
    let (leader, term) = expect_leader(&mut sim, 5 * SECOND);
    require(&sim, term >= 2, || {
        format!("converged on s{leader} in t{term}")
    });
    require(
        &sim,
        sim.role(1) != Some(Role::Leader) || leader == 1,
        || "s1 still leads an old term".into(),
    );
}

/// Scenario 29: a split vote. The leader is gone and two candidates stand in the same
/// term, each with half of the votes; nobody wins that term, and at a later timeout
/// one server wins in a higher term.
#[test]
fn split_vote_is_resolved_by_a_later_election_in_a_higher_term() {
    let mut sim = cluster("split_vote", 5, 29, false, false);
    let (old, old_term) = expect_leader(&mut sim, 5 * SECOND);
    let rest = followers(&sim, old);
    let (a, b, c, d) = (rest[0], rest[1], rest[2], rest[3]);
    sim.crash_server(old);

    // c hears only a, d hears only b: each candidate collects exactly two votes of four.
    sim.cut_pair(c, b);
    sim.cut_pair(d, a);
    sim.campaign(a);
    sim.campaign(b);
    sim.run_for(50 * MILLI);
    let split_term = old_term + 1;
    let both = [a, b].map(|id| (sim.role(id), sim.term(id)));
    let candidate = (Some(Role::Candidate), Some(split_term));
    require(&sim, both == [candidate, candidate], || {
        format!("expected two candidates in t{split_term}: {both:?}")
    });
    require(
        &sim,
        !sim.leader_history().contains_key(&split_term),
        || format!("term {split_term} was won: {:?}", sim.leader_history()),
    );

    sim.heal();
    let (winner, term) = expect_leader(&mut sim, 5 * SECOND);
    require(&sim, term > split_term, || format!("s{winner} won t{term}"));
}

/// Scenario 31: randomized timeouts rarely collide. Over 1,000 fresh five-server
/// clusters, the two first election timeouts fall within one message delay (5 ms) of
/// each other in at most 30 % of rounds, and within one 10 ms tick in at most 30 %
/// too (measured: about 15 % and 22 %).
#[test]
fn randomized_timeouts_rarely_collide() {
    let rounds = 1_000;
    let (mut within_delay, mut within_tick) = (0, 0);

    for seed in 0..rounds {
        let mut sim = cluster("randomized_timeouts_rarely_collide", 5, seed, true, true);
        // Long enough for every server's first timeout (30 ticks of at most 10.5 ms).
        sim.run_for(320 * MILLI);

        let mut firsts: Vec<(Micros, NodeId)> = Vec::new();
        for entry in sim.trace().entries() {
            let started = matches!(
                entry.kind,
                raft::sim::TraceKind::Event(Event::ElectionStarted { .. })
            );
            if let (true, Some(id)) = (started, entry.server) {
                if !firsts.iter().any(|&(_, s)| s == id) {
                    firsts.push((entry.time, id));
                }
            }
        }
        if let [first, second, ..] = firsts[..] {
            let gap = second.0 - first.0;
            within_delay += u32::from(gap <= 5 * MILLI);
            within_tick += u32::from(gap < 10 * MILLI);
        }
    }

    println!(
        "of {rounds} rounds: {within_delay} timeouts within one message delay, \
         {within_tick} within one tick"
    );
    assert!(
        within_delay * 100 <= 30 * rounds as u32,
        "{within_delay} of {rounds} first timeouts within one message delay"
    );
    assert!(
        within_tick * 100 <= 30 * rounds as u32,
        "{within_tick} of {rounds} first timeouts within one tick"
    );
}

/// Scenario 35: a leader cycle. Each server in turn campaigns (check-quorum off, so no
/// lease holds the votes back) and wins, with pre-vote on and off.
#[test]
fn leader_cycle_lets_each_server_win_in_turn() {
    for pre_vote in [true, false] {
        let mut sim = cluster("leader_cycle", 3, 35, pre_vote, false);
        expect_leader(&mut sim, 5 * SECOND);

        for round in 0..2 {
            for id in [1, 2, 3] {
                if sim.leader() == Some(id) {
                    continue;
                }
                sim.campaign(id);
                let (leader, _) = expect_leader(&mut sim, SECOND);
                require(&sim, leader == id, || {
                    format!("pre_vote {pre_vote}, round {round}: s{id} ran, s{leader} won")
                });
            }
        }
    }
}

/// Isolates a follower long enough to time out many times, then heals; returns the
/// old leader, its term, the rejoiner and the rejoiner's term before the heal.
fn isolate_a_follower_then_heal(sim: &mut Simulation) -> (NodeId, Term, NodeId, Term) {
    let (leader, term) = expect_leader(sim, 5 * SECOND);
    let rejoiner = followers(sim, leader)[0];

    sim.isolate(rejoiner);
    sim.run_for(3 * SECOND);
    let inflated = sim.term(rejoiner).unwrap_or(0);
    sim.heal();
    (leader, term, rejoiner, inflated)
}

/// Scenario 36: without pre-vote, an isolated server inflates its term; when it
/// returns, its higher term forces the leader to step down.
#[test]
fn disruptive_rejoiner_without_pre_vote_forces_the_leader_down() {
    let mut sim = cluster("disruptive_rejoiner", 3, 36, false, false);
    let (leader, term, rejoiner, inflated) = isolate_a_follower_then_heal(&mut sim);
    require(&sim, inflated > term, || {
        format!("s{rejoiner} stayed at t{inflated}")
    });

    let (now, now_term) = expect_leader(&mut sim, 5 * SECOND);

    require(&sim, now_term >= inflated, || {
        format!("s{leader} t{term} -> s{now} t{now_term}, rejoiner had t{inflated}")
    });
}

/// Scenario 37: with pre-vote, the isolated server cannot inflate its term; when it
/// returns the leader is undisturbed and the rejoiner follows it.
#[test]
fn pre_vote_keeps_a_rejoiner_from_disturbing_the_leader() {
    let mut sim = cluster("pre_vote_keeps_a_rejoiner", 3, 37, true, true);
    let (leader, term, rejoiner, inflated) = isolate_a_follower_then_heal(&mut sim);
    require(&sim, inflated == term, || {
        format!("s{rejoiner} went to t{inflated}")
    });

    poll(&mut sim, 2 * SECOND, |sim| {
        let leaders = sim.leaders();
        require(sim, leaders == vec![(leader, term)], || {
            format!("{leaders:?}")
        });
    });
    let (role, follows) = (sim.role(rejoiner), sim.known_leader(rejoiner));
    require(
        &sim,
        role == Some(Role::Follower) && follows == Some(leader),
        || format!("rejoiner s{rejoiner} is {role:?} following {follows:?}"),
    );
}

/// Scenario 38: a stuck candidate is freed. Pre-vote off and check-quorum on: the
/// isolated candidate's higher term is refused by leased followers, but the leader
/// learns it, steps down, and the cluster converges on a leader in a term at least as
/// high.
#[test]
fn stuck_candidate_is_freed_and_the_cluster_converges() {
    let mut sim = cluster("stuck_candidate", 3, 38, false, true);
    let (leader, term, rejoiner, inflated) = isolate_a_follower_then_heal(&mut sim);
    require(&sim, inflated > term, || {
        format!("s{rejoiner} stayed at t{inflated}")
    });

    let (now, now_term) = expect_leader(&mut sim, 5 * SECOND);

    require(&sim, now_term >= inflated, || {
        format!("s{leader} t{term} -> s{now} t{now_term}, stuck candidate had t{inflated}")
    });
}

/// Scenario 40: a server with a lower term, isolated as a pre-candidate, rejoins as the
/// leader dies; the cluster still elects a leader.
#[test]
fn lower_term_pre_candidate_does_not_prevent_an_election() {
    let mut sim = cluster("lower_term_pre_candidate", 5, 40, true, false);
    let (_, _) = expect_leader(&mut sim, 5 * SECOND);
    let low = 5;
    sim.isolate(low);

    // Push the others' term up with a few forced elections while 5 is away.
    for id in [1, 2, 3] {
        if sim.leader() != Some(id) {
            sim.campaign(id);
            expect_leader_among(&mut sim, &[1, 2, 3, 4], SECOND);
        }
    }
    sim.run_for(SECOND);
    let (leader, term) = expect_leader_among(&mut sim, &[1, 2, 3, 4], SECOND);
    let low_term = sim.term(low).unwrap_or(0);
    require(&sim, low_term < term, || {
        format!("s5 t{low_term} vs t{term}")
    });

    sim.heal();
    sim.crash_server(leader);
    let (new, new_term) = expect_leader(&mut sim, 5 * SECOND);
    require(&sim, new_term > term, || format!("s{new} t{new_term}"));
}

/// What the six-phase poller allows in one phase.
#[derive(Clone, Copy, Debug)]
struct Phase {
    name: &'static str,
    /// Whether the phase may stay without a leader for more than 2.5 s.
    may_lack_leader: bool,
    /// Whether two servers may believe they lead, in different terms, at one poll.
    may_have_stale_leader: bool,
}

/// Runs one phase of 5 s, polling every 50 ms: never two leaders in one term, two
/// leaders at once only where the phase allows it, and no leaderless gap over 2.5 s
/// unless the phase expects one. `last_leader_at` carries over between phases.
fn run_phase(sim: &mut Simulation, last_leader_at: &mut Micros, phase: Phase) {
    sim.note(format!("test: phase {}", phase.name));
    poll(sim, 5 * SECOND, |sim| {
        let mut leaders = sim.leaders();
        leaders.sort_by_key(|&(_, term)| term);
        let same_term = leaders.windows(2).any(|w| w[0].1 == w[1].1);
        require(sim, !same_term, || {
            format!("two leaders in one term: {leaders:?}")
        });
        require(
            sim,
            leaders.len() <= 1 || phase.may_have_stale_leader,
            || format!("phase {}: two leaders at once: {leaders:?}", phase.name),
        );

        if leaders.is_empty() {
            let gap = sim.now() - *last_leader_at;
            require(sim, gap <= 2_500 * MILLI || phase.may_lack_leader, || {
                format!("phase {}: no leader for {} ms", phase.name, gap / MILLI)
            });
        } else {
            *last_leader_at = sim.now();
        }
    });
}

/// The seed project's six phases with a 50 ms poller; `check_quorum` decides phase 6.
fn six_phases(check_quorum: bool) {
    let test = if check_quorum {
        "six_phases_with_check_quorum"
    } else {
        "six_phases_without_check_quorum"
    };
    let mut sim = cluster(test, 5, 6, true, check_quorum);
    let mut last_leader_at = 0;

    // 1: all five start; exactly one leader.
    let phase = |name, may_lack_leader, may_have_stale_leader| Phase {
        name,
        may_lack_leader,
        may_have_stale_leader,
    };
    run_phase(
        &mut sim,
        &mut last_leader_at,
        phase("1 start five", false, false),
    );
    let (first, _) = expect_leader(&mut sim, SECOND);

    // 2: a follower dies; a leader stays present.
    let follower = followers(&sim, first)[0];
    sim.crash_server(follower);
    run_phase(
        &mut sim,
        &mut last_leader_at,
        phase("2 kill a follower", false, false),
    );

    // 3: the leader dies; three are left and elect a new one.
    let (leader, _) = expect_leader(&mut sim, SECOND);
    sim.crash_server(leader);
    run_phase(
        &mut sim,
        &mut last_leader_at,
        phase("3 kill the leader", false, false),
    );
    let (second, _) = expect_leader(&mut sim, SECOND);

    // 4: the new leader dies; two are left and nobody leads.
    sim.crash_server(second);
    last_leader_at = sim.now();
    run_phase(
        &mut sim,
        &mut last_leader_at,
        phase("4 kill the new leader", true, false),
    );
    require(&sim, sim.leaders().is_empty(), || {
        format!("{:?}", sim.leaders())
    });

    // 5: one dead server comes back; three are up and elect a leader.
    sim.restart_server(follower);
    last_leader_at = sim.now();
    run_phase(
        &mut sim,
        &mut last_leader_at,
        phase("5 restart one", false, false),
    );
    let (third, third_term) = expect_leader(&mut sim, SECOND);

    // 6: a follower dies; two are left.
    let up: Vec<NodeId> = sim
        .ids()
        .iter()
        .copied()
        .filter(|&i| sim.is_up(i))
        .collect();
    let victim = up.into_iter().find(|&i| i != third).unwrap_or(third);
    sim.crash_server(victim);
    run_phase(
        &mut sim,
        &mut last_leader_at,
        phase("6 kill a follower", true, false),
    );
    let leaders = sim.leaders();
    if check_quorum {
        require(&sim, leaders.is_empty(), || {
            format!("still leading: {leaders:?}")
        });
    } else {
        require(&sim, leaders == vec![(third, third_term)], || {
            format!("plain Raft: expected s{third} to still believe it leads: {leaders:?}")
        });
    }
}

/// The six-phase test with check-quorum: in phase 6 the leader, left with one
/// follower of five, steps down.
#[test]
fn six_phases_with_check_quorum_end_without_a_leader() {
    six_phases(true);
}

/// The six-phase test without check-quorum: in phase 6 the old leader still believes
/// it leads (plain Raft), though it cannot reach a majority.
#[test]
fn six_phases_without_check_quorum_end_with_a_stale_leader() {
    six_phases(false);
}

/// Crash between persist and send: a voter that persists its vote and dies before
/// answering still holds that vote when it restarts, so a second candidate of the
/// same term is refused (no double vote across the crash).
#[test]
fn voter_crashing_between_persist_and_send_keeps_its_vote_after_restart() {
    let mut sim = cluster(
        "voter_crashing_between_persist_and_send",
        3,
        41,
        false,
        false,
    );
    // A fixed delay orders the two requests: 1's reaches 2 at 10 ms, 3's at 15 ms.
    sim.set_delay(10 * MILLI, 10 * MILLI);
    sim.crash_after_next_persist(2);

    sim.campaign(1);
    sim.run_for(5 * MILLI);
    sim.campaign(3);
    sim.run_until(sim.now() + 10 * MILLI, |s| !s.is_up(2));
    require(&sim, !sim.is_up(2), || {
        "s2 did not crash after persisting".into()
    });
    let disk = sim.persisted(2);
    require(&sim, disk.voted_for == Some(1) && disk.term == 1, || {
        format!("s2 persisted {disk:?}")
    });
    sim.restart_server(2);

    sim.run_for(20 * MILLI);
    let refused = sim.trace().entries().any(|e| {
        e.server == Some(2)
            && matches!(
                e.kind,
                raft::sim::TraceKind::Event(Event::VoteRefused {
                    candidate: 3,
                    term: 1,
                    pre_vote: false,
                    ..
                })
            )
    });
    require(&sim, refused, || {
        "restarted s2 did not refuse s3 in term 1".into()
    });
    let history = sim.leader_history().clone();
    require(&sim, !history.contains_key(&1), || {
        format!("term 1 led: {history:?}")
    });

    // The cluster still recovers by itself in a later term.
    sim.set_delay(MILLI, 5 * MILLI);
    let (_, term) = expect_leader(&mut sim, 5 * SECOND);
    require(&sim, term >= 2, || format!("t{term}"));
}
