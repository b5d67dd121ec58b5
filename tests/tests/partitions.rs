//! Real partitions: servers in a network namespace of their own, each on its own
//! loopback address (127.0.0.`10+N`), with links cut by iptables rules between
//! addresses (see `tests::Netns`). Every scenario also checks, through the harness's
//! history and `Cluster::finish`, that no term ever has two leaders.
//!
//! These tests need root, `ip` and `iptables`; elsewhere each prints why it is skipped
//! and passes without checking anything.

use std::time::Duration;

use tests::{agreed_leader, raft_node_binary, Cluster, ClusterSpec, Netns, Observation};

/// Ten maximum election timeouts of the fast timing the tests use (100-200 ms): long
/// enough for any spurious election to show.
const HOLD: Duration = Duration::from_secs(2);

/// How long a partition may take to show its effect (an election, a step-down). A few
/// election timeouts would do; the rest is for a loaded two-core machine.
const REACT: Duration = Duration::from_secs(15);

/// How long a healed server may take to be heard again. Packets were dropped, not
/// refused, so the connections survive the cut and resume when TCP next retransmits,
/// after an exponential back-off that can reach seconds.
const REJOIN: Duration = Duration::from_secs(30);

/// A namespace entered by the calling thread, or `None` when the test must be skipped.
fn namespace(test: &str) -> Option<Netns> {
    let netns = Netns::create(test)?;
    // Built (if need be) before entering: cargo is better run in the host's network.
    raft_node_binary();
    netns.enter();
    Some(netns)
}

fn start(servers: u64) -> Cluster {
    Cluster::start(ClusterSpec::new(servers).address_per_server(true))
}

/// The observations of `ids` only.
fn among(seen: &[Observation], ids: &[u64]) -> Vec<Observation> {
    seen.iter()
        .filter(|server| ids.contains(&server.id))
        .cloned()
        .collect()
}

fn others(cluster: &Cluster, but: &[u64]) -> Vec<u64> {
    cluster
        .ids()
        .into_iter()
        .filter(|id| !but.contains(id))
        .collect()
}

/// Five servers; the leader and one follower are cut off from the other three. The
/// three elect a leader of their own in a higher term, the old leader steps down
/// (check-quorum, Raft thesis §6.2) and the minority elects nobody. After the heal all
/// five agree on one leader.
#[test]
fn a_leader_in_a_minority_steps_down_and_the_majority_elects_another() {
    let Some(netns) =
        namespace("a_leader_in_a_minority_steps_down_and_the_majority_elects_another")
    else {
        return;
    };
    let cluster = start(5);
    let (leader, term) = cluster.wait_for_leader();
    let follower = others(&cluster, &[leader])[0];
    let minority = [leader, follower];
    let majority = others(&cluster, &minority);

    for &a in &minority {
        for &b in &majority {
            netns.cut_both(cluster.address(a), cluster.address(b));
        }
    }

    let (new_leader, new_term) =
        cluster.wait_until("a leader of the majority side", REACT, |seen| {
            agreed_leader(&majority, &among(seen, &majority))
        });
    assert!(majority.contains(&new_leader) && new_term > term);
    cluster.wait_until("the old leader steps down", REACT, |seen| {
        seen.iter()
            .find(|server| server.id == leader)
            .filter(|server| !server.is_leader())
            .map(|_| ())
    });
    cluster.hold("the minority elects nobody", HOLD, |seen| {
        match among(seen, &minority).iter().find(|s| s.is_leader()) {
            Some(server) => Err(format!("server {} leads term {}", server.id, server.term)),
            None => Ok(()),
        }
    });

    netns.heal();
    cluster.wait_until("all five agree on a leader", REJOIN, |seen| {
        agreed_leader(&cluster.ids(), seen)
    });
    cluster.finish();
}

/// Three servers, a partial partition. First the two followers cannot talk while the
/// leader reaches both: nothing changes. Then the leader and one follower (`cut`)
/// cannot talk, while the other follower (`bridge`) reaches both. `cut` hears no
/// heartbeat and keeps asking for pre-votes, which `bridge` refuses because it hears
/// its leader (pre-vote with check-quorum, Raft thesis §9.6).
///
/// "Not made to flap" is asserted as: for ten election timeouts every server stays in
/// the same term, the same server leads, and `bridge` answers as a follower of that
/// leader every time it is asked. After the heal `cut` follows the same leader in the
/// same term.
#[test]
fn a_partial_partition_does_not_make_the_server_that_reaches_everyone_flap() {
    let Some(netns) =
        namespace("a_partial_partition_does_not_make_the_server_that_reaches_everyone_flap")
    else {
        return;
    };
    let cluster = start(3);
    let (leader, term) = cluster.wait_for_leader();
    let [cut, bridge] = others(&cluster, &[leader])[..] else {
        unreachable!("three servers");
    };

    netns.cut_both(cluster.address(cut), cluster.address(bridge));
    cluster.hold_leader(leader, term, HOLD);
    netns.heal();

    netns.cut_both(cluster.address(leader), cluster.address(cut));
    cluster.hold("the bridge keeps following the leader", HOLD, |seen| {
        for server in seen {
            if server.term != term {
                return Err(format!("server {} is in term {}", server.id, server.term));
            }
            if server.is_leader() != (server.id == leader) {
                return Err(format!("server {} is {}", server.id, server.role));
            }
            let follows = server.role == "follower" && server.leader == Some(leader);
            if server.id == bridge && !follows {
                return Err(format!("the bridge {bridge} is {server:?}"));
            }
        }
        Ok(())
    });

    netns.heal();
    let agreed = cluster.wait_until("the cut server follows again", REJOIN, |seen| {
        agreed_leader(&cluster.ids(), seen)
    });
    assert_eq!(agreed, (leader, term), "the heal deposed the leader");
    cluster.finish();
}

/// Three servers. First the leader's messages to both followers are dropped while it
/// still hears them: the followers elect one of themselves in a higher term, whose
/// heartbeats reach the old leader, which follows it. After a heal the new leader's
/// incoming messages are dropped while its own still go out: it hears no answer,
/// steps down (check-quorum), and the other two elect one of themselves again.
#[test]
fn one_way_cuts_to_and_from_the_leader_elect_a_leader_that_can_be_heard() {
    let Some(netns) =
        namespace("one_way_cuts_to_and_from_the_leader_elect_a_leader_that_can_be_heard")
    else {
        return;
    };
    let cluster = start(3);
    let (first, first_term) = cluster.wait_for_leader();

    for follower in others(&cluster, &[first]) {
        netns.cut(cluster.address(first), cluster.address(follower));
    }
    let heard = "a leader the old one follows";
    let (second, second_term) = cluster.wait_until(heard, REACT, |seen| {
        agreed_leader(&cluster.ids(), seen).filter(|&(leader, _)| leader != first)
    });
    assert!(second_term > first_term);
    netns.heal();
    cluster.hold_leader(second, second_term, HOLD);

    let followers = others(&cluster, &[second]);
    for &follower in &followers {
        netns.cut(cluster.address(follower), cluster.address(second));
    }
    let hearing = "a leader of the two that hear";
    let (third, third_term) = cluster.wait_until(hearing, REACT, |seen| {
        agreed_leader(&followers, &among(seen, &followers))
    });
    assert!(third != second && third_term > second_term);
    cluster.wait_until("the deaf leader steps down", REACT, |seen| {
        seen.iter()
            .find(|server| server.id == second)
            .filter(|server| !server.is_leader())
            .map(|_| ())
    });

    netns.heal();
    cluster.wait_until("all three agree on a leader", REJOIN, |seen| {
        agreed_leader(&cluster.ids(), seen)
    });
    cluster.finish();
}

/// Three servers; one follower is cut off from both others for ten election
/// timeouts. Thanks to pre-vote (Raft thesis §9.6) it never raises its term, so the
/// leader keeps leading the same term throughout; after the heal the isolated server
/// follows it again without deposing it.
#[test]
fn a_healed_server_rejoins_without_deposing_the_leader() {
    let Some(netns) = namespace("a_healed_server_rejoins_without_deposing_the_leader") else {
        return;
    };
    let cluster = start(3);
    let (leader, term) = cluster.wait_for_leader();
    let isolated = others(&cluster, &[leader])[0];

    for other in others(&cluster, &[isolated]) {
        netns.cut_both(cluster.address(isolated), cluster.address(other));
    }
    cluster.hold_leader(leader, term, HOLD);

    netns.heal();
    let agreed = cluster.wait_until("the isolated server follows again", REJOIN, |seen| {
        agreed_leader(&cluster.ids(), seen)
    });
    assert_eq!(
        agreed,
        (leader, term),
        "the rejoining server deposed the leader"
    );
    cluster.hold_leader(leader, term, HOLD);
    cluster.finish();
}
