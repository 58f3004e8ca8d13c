//! One connection's queues.
//!
//! msync shows a user's messages as one queue per peer, each read and
//! acknowledged on its own (`SYNC{queue}`, then `SYNC{queue, key}` with the
//! last id processed). chatd keeps one inbox per user and one cursor per
//! device, acknowledged in inbox order. [`Queues`] sits between the two:
//! entries taken from the device's inbox session are sorted into per-peer
//! queues, and the inbox is acknowledged up to the longest prefix of
//! positions whose queue keys have all come back. So a message leaves the
//! device's inbox only after its key ack, and what a dropped connection
//! never acknowledged is sent again on the next one.
//!
//! Items without an inbox position (live receipts) sit in the same queues
//! and are simply dropped when acknowledged.
//!
//! A batch is offered once: the SDK takes a batch whose `next_key` repeats
//! the previous one as a sign to give the queue up, unacknowledged. So a
//! `SYNC{queue}` while a batch is out gets the items after it, and the
//! outstanding batch is offered again only once it has waited
//! [`REOFFER_AFTER_MS`] for its key.

use crate::pb::Meta;
use std::collections::{BTreeMap, VecDeque};

/// How long an offered batch waits for its key before a `SYNC{queue}` may
/// offer it again.
pub const REOFFER_AFTER_MS: u64 = 30_000;

#[derive(Debug)]
struct Item {
    id: u64,
    seq: Option<u64>,
    meta: Meta,
    /// When it was sent in a batch (not acknowledged yet). Offered items
    /// are always a prefix of their queue.
    offered_at: Option<u64>,
}

/// Per-peer queues of one connection.
#[derive(Debug)]
pub struct Queues {
    queues: BTreeMap<String, VecDeque<Item>>,
    /// Inbox positions handed to the connection, in order, with whether
    /// each was acknowledged.
    positions: VecDeque<(u64, bool)>,
    batch: usize,
}

/// The outcome of a key acknowledgement.
#[derive(Debug, Default, PartialEq)]
pub struct Acked {
    /// The queue's next batch (empty: the queue is drained).
    pub next: Vec<Meta>,
    /// The inbox is now acknowledged up to this position, if it moved.
    pub inbox: Option<u64>,
}

impl Queues {
    /// Queues answering at most `batch` metas per SYNC.
    pub fn new(batch: usize) -> Self {
        Self {
            queues: BTreeMap::new(),
            positions: VecDeque::new(),
            batch: batch.max(1),
        }
    }

    /// Adds an item to `peer`'s queue. `seq` is its inbox position (`None`
    /// for live items). Returns false, and counts the item as acknowledged,
    /// when the queue already holds that id (a message to oneself is both
    /// received and copied): the client would drop the repeat. Call
    /// [`Queues::settle`] after pushing.
    pub fn push(&mut self, peer: &str, id: u64, seq: Option<u64>, meta: Meta) -> bool {
        let q = self.queues.entry(peer.to_string()).or_default();
        let repeat = q.iter().any(|i| i.id == id);
        if let Some(s) = seq {
            self.positions.push_back((s, repeat));
        }
        if !repeat {
            q.push_back(Item {
                id,
                seq,
                meta,
                offered_at: None,
            });
        }
        !repeat
    }

    /// The queues holding items, with their sizes (the UNREAD answer).
    pub fn pending(&self) -> Vec<(String, u32)> {
        self.queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(p, q)| (p.clone(), q.len().min(u32::MAX as usize) as u32))
            .collect()
    }

    /// Items waiting, in every queue.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `SYNC{queue}`: the queue's next batch: the items not offered yet, or,
    /// when the batch out has waited [`REOFFER_AFTER_MS`] for its key, the
    /// queue again from its oldest item. Empty: nothing to offer now.
    pub fn read(&mut self, peer: &str, now_ms: u64) -> Vec<Meta> {
        let batch = self.batch;
        let Some(q) = self.queues.get_mut(peer) else {
            return Vec::new();
        };
        let stale = q
            .front()
            .and_then(|i| i.offered_at)
            .is_some_and(|at| now_ms.saturating_sub(at) >= REOFFER_AFTER_MS);
        let skip = if stale {
            0
        } else {
            q.iter().take_while(|i| i.offered_at.is_some()).count()
        };
        q.iter_mut()
            .skip(skip)
            .take(batch)
            .map(|i| {
                i.offered_at = Some(now_ms);
                i.meta.clone()
            })
            .collect()
    }

    /// `SYNC{queue, key}`: everything offered up to the item `key` is
    /// processed; then the queue's next batch.
    pub fn ack(&mut self, peer: &str, key: u64, now_ms: u64) -> Acked {
        let mut done = Vec::new();
        if let Some(q) = self.queues.get_mut(peer) {
            let offered = q.iter().take_while(|i| i.offered_at.is_some()).count();
            match q.iter().take(offered).position(|i| i.id == key) {
                Some(at) => done.extend(q.drain(..=at)),
                // A key not offered: fall back to ids, which grow with time.
                None => {
                    let mut kept = VecDeque::with_capacity(q.len());
                    for i in q.drain(..) {
                        if i.offered_at.is_some() && i.id <= key {
                            done.push(i);
                        } else {
                            kept.push_back(i);
                        }
                    }
                    *q = kept;
                }
            }
            if q.is_empty() {
                self.queues.remove(peer);
            }
        }
        for s in done.iter().filter_map(|i| i.seq) {
            if let Ok(at) = self.positions.binary_search_by_key(&s, |p| p.0) {
                self.positions[at].1 = true;
            }
        }
        Acked {
            next: self.read(peer, now_ms),
            inbox: self.settle(),
        }
    }

    /// The inbox position everything up to which is acknowledged, if it
    /// moved since the last call.
    pub fn settle(&mut self) -> Option<u64> {
        let mut inbox = None;
        while let Some(&(s, true)) = self.positions.front() {
            inbox = Some(s);
            self.positions.pop_front();
        }
        inbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64) -> Meta {
        Meta {
            id: Some(id),
            ..Default::default()
        }
    }

    fn ids(metas: &[Meta]) -> Vec<u64> {
        metas.iter().map(|m| m.id.unwrap()).collect()
    }

    #[test]
    fn the_inbox_is_acknowledged_in_order_across_queues() {
        let mut q = Queues::new(10);
        q.push("alice", 101, Some(1), meta(101));
        q.push("bob", 102, Some(2), meta(102));
        q.push("alice", 103, Some(3), meta(103));
        assert_eq!(q.pending(), vec![("alice".into(), 2), ("bob".into(), 1)]);
        assert_eq!(ids(&q.read("alice", 0)), vec![101, 103]);
        // Alice's queue is done, but bob's entry (2) sits between: only 1.
        let a = q.ack("alice", 103, 0);
        assert_eq!(
            a,
            Acked {
                next: vec![],
                inbox: Some(1)
            }
        );
        assert_eq!(ids(&q.read("bob", 0)), vec![102]);
        assert_eq!(q.ack("bob", 102, 0).inbox, Some(3));
        assert!(q.is_empty());
    }

    #[test]
    fn batches_follow_each_other_and_are_offered_again_only_when_stale() {
        let mut q = Queues::new(2);
        for (i, id) in [11, 12, 13, 14, 15].into_iter().enumerate() {
            q.push("p", id, Some(i as u64 + 1), meta(id));
        }
        assert_eq!(ids(&q.read("p", 0)), vec![11, 12]);
        // Asked again without a key while that batch is out: what follows,
        // never the same batch (its key would repeat).
        assert_eq!(ids(&q.read("p", 10)), vec![13, 14]);
        assert_eq!(ids(&q.read("p", 20)), vec![15]);
        assert_eq!(ids(&q.read("p", 30)), Vec::<u64>::new());
        let a = q.ack("p", 12, 40);
        assert_eq!((a.next.len(), a.inbox), (0, Some(2)));
        // Long unanswered: offered again, from the oldest.
        assert_eq!(ids(&q.read("p", 10 + REOFFER_AFTER_MS)), vec![13, 14]);
        let a = q.ack("p", 15, 10 + REOFFER_AFTER_MS);
        assert_eq!((a.next.len(), a.inbox), (0, Some(5)));
        // A key for a drained queue: nothing.
        assert_eq!(q.ack("p", 15, 0), Acked::default());
    }

    #[test]
    fn live_items_do_not_hold_the_inbox() {
        let mut q = Queues::new(5);
        q.push("bob", 900, None, meta(900));
        q.push("bob", 901, Some(7), meta(901));
        q.read("bob", 0);
        assert_eq!(q.ack("bob", 900, 0).inbox, None);
        assert_eq!(q.ack("bob", 901, 0).inbox, Some(7));
    }

    #[test]
    fn a_repeated_id_counts_as_delivered() {
        let mut q = Queues::new(5);
        assert!(q.push("me", 5, Some(1), meta(5)));
        assert!(!q.push("me", 5, Some(2), meta(5)));
        assert_eq!(q.settle(), None);
        q.read("me", 0);
        assert_eq!(q.ack("me", 5, 0).inbox, Some(2));
    }

    #[test]
    fn an_unknown_key_acknowledges_offered_ids_up_to_it() {
        let mut q = Queues::new(5);
        q.push("p", 10, Some(1), meta(10));
        q.push("p", 20, Some(2), meta(20));
        q.read("p", 0);
        q.push("p", 15, Some(3), meta(15));
        // 15 was never offered: it stays.
        let a = q.ack("p", 17, 0);
        // 20 is still out: the next batch is what follows it.
        assert_eq!((ids(&a.next), a.inbox), (vec![15], Some(1)));
    }
}
