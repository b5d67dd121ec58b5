//! The network as the demo arranged it: the groups of a partition and the slow links,
//! and the fault requests that make each server's fault layer match it.
//!
//! The demo holds the truth and each server is told its share through its status
//! address (`heal`, then `block ID...` and `delay ID MS MS`), again whenever it starts,
//! restarts or resumes, so a server that missed a change (paused, killed) catches up.

use std::collections::BTreeMap;

/// Partition groups and slow links.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    /// The groups of the partition; empty when the network is whole.
    groups: Vec<Vec<u64>>,
    /// Delay in milliseconds per link, keyed by the pair (lower id first).
    slow: BTreeMap<(u64, u64), u64>,
}

impl Network {
    /// Splits the network into `named` groups plus one group of the servers of `all`
    /// not named (if any); returns the groups.
    pub fn partition(&mut self, named: &[Vec<u64>], all: &[u64]) -> Vec<Vec<u64>> {
        let mut groups: Vec<Vec<u64>> = named.to_vec();
        let rest: Vec<u64> = all
            .iter()
            .copied()
            .filter(|id| !named.iter().flatten().any(|n| n == id))
            .collect();
        if !rest.is_empty() {
            groups.push(rest);
        }
        for group in &mut groups {
            group.sort_unstable();
        }
        self.groups = if groups.len() > 1 { groups } else { Vec::new() };
        self.groups.clone()
    }

    /// Clears the partition and every slow link.
    pub fn heal(&mut self) {
        *self = Network::default();
    }

    /// Delays the link between `a` and `b` by `ms` each way; 0 clears it.
    pub fn slow(&mut self, a: u64, b: u64, ms: u64) {
        let key = (a.min(b), a.max(b));
        if ms == 0 {
            self.slow.remove(&key);
        } else {
            self.slow.insert(key, ms);
        }
    }

    /// Whether the network is split.
    pub fn is_partitioned(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The letter of server `id`'s group (A, B, ...) while the network is split.
    pub fn group_letter(&self, id: u64) -> Option<char> {
        let index = self.groups.iter().position(|group| group.contains(&id))?;
        Some((b'A' + index as u8) as char)
    }

    /// Whether a slow link touches server `id`.
    pub fn is_slow(&self, id: u64) -> bool {
        self.slow.keys().any(|&(a, b)| a == id || b == id)
    }

    /// The network in a few words: `whole`, `A=1,2 | B=3,4,5`, `slow 1-2 300 ms`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.groups.is_empty() {
            parts.push("whole".to_string());
        } else {
            let groups: Vec<String> = self
                .groups
                .iter()
                .enumerate()
                .map(|(index, group)| format!("{}={}", (b'A' + index as u8) as char, ids(group)))
                .collect();
            parts.push(format!("split {}", groups.join(" | ")));
        }
        for (&(a, b), ms) in &self.slow {
            parts.push(format!("slow {a}-{b} {ms} ms"));
        }
        parts.join(", ")
    }

    /// The status-protocol requests that make server `id`'s faults match the network:
    /// `heal` first, then one `block` of every server outside its group, then one
    /// `delay` per slow link it is an end of.
    pub fn requests_for(&self, id: u64) -> Vec<String> {
        let mut requests = vec!["heal".to_string()];
        if let Some(group) = self.groups.iter().find(|group| group.contains(&id)) {
            let others: Vec<u64> = self
                .groups
                .iter()
                .flatten()
                .copied()
                .filter(|other| !group.contains(other))
                .collect();
            if !others.is_empty() {
                let list: Vec<String> = others.iter().map(u64::to_string).collect();
                requests.push(format!("block {}", list.join(" ")));
            }
        }
        for (&(a, b), &ms) in &self.slow {
            let peer = match id {
                _ if id == a => b,
                _ if id == b => a,
                _ => continue,
            };
            requests.push(format!("delay {peer} {ms} {ms}"));
        }
        requests
    }
}

/// `1,2,3`.
pub fn ids(ids: &[u64]) -> String {
    let list: Vec<String> = ids.iter().map(u64::to_string).collect();
    list.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition names some groups; the rest form one more; each server is told to
    /// block every server outside its group.
    #[test]
    fn partition_blocks_everyone_outside_the_group() {
        let mut network = Network::default();
        let groups = network.partition(&[vec![2, 1]], &[1, 2, 3, 4, 5]);

        assert_eq!(groups, vec![vec![1, 2], vec![3, 4, 5]]);
        assert_eq!(network.requests_for(1), vec!["heal", "block 3 4 5"]);
        assert_eq!(network.requests_for(4), vec!["heal", "block 1 2"]);
        assert_eq!(network.group_letter(4), Some('B'));
        assert_eq!(network.describe(), "split A=1,2 | B=3,4,5");
    }

    /// Naming every server as one group is no partition at all.
    #[test]
    fn one_group_is_a_whole_network() {
        let mut network = Network::default();
        network.partition(&[vec![1, 2, 3]], &[1, 2, 3]);

        assert!(!network.is_partitioned());
        assert_eq!(network.requests_for(2), vec!["heal"]);
    }

    /// A slow link delays both ways, only at its two ends, and heal clears it.
    #[test]
    fn slow_links_delay_both_ends() {
        let mut network = Network::default();
        network.slow(3, 1, 300);

        assert_eq!(network.requests_for(1), vec!["heal", "delay 3 300 300"]);
        assert_eq!(network.requests_for(3), vec!["heal", "delay 1 300 300"]);
        assert_eq!(network.requests_for(2), vec!["heal"]);
        assert!(network.is_slow(3) && !network.is_slow(2));
        assert_eq!(network.describe(), "whole, slow 1-3 300 ms");

        network.heal();
        assert_eq!(network, Network::default());
    }
}
