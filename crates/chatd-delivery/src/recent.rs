//! The newest entries of a followed inbox, kept in memory so that a device
//! that is connected and caught up takes a new message from here instead
//! of reading back from storage what was committed a moment ago.
//!
//! Only a shortcut: storage stays the truth. A device uses these entries
//! only when every position it is missing is here; anything else (a gap,
//! entries pushed out by a burst, a notification that raced ahead of its
//! entry) sends it to storage as before.

use chatd_core::InboxEntry;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Entries kept per followed inbox: a burst longer than this is read from
/// storage (where the drain path reads ahead anyway).
pub const KEEP: usize = 16;

#[derive(Default)]
pub struct RecentEntries {
    ring: Mutex<VecDeque<InboxEntry>>,
}

impl RecentEntries {
    /// Keeps `entry`, in position order (notifications of concurrent sends
    /// may come out of order), dropping the oldest past [`KEEP`].
    pub fn push(&self, entry: InboxEntry) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let at = ring
            .iter()
            .rposition(|e| e.seq < entry.seq)
            .map_or(0, |i| i + 1);
        if ring.get(at).is_some_and(|e| e.seq == entry.seq) {
            return;
        }
        ring.insert(at, entry);
        while ring.len() > KEEP {
            ring.pop_front();
        }
    }

    /// The entries at positions `after + 1 ..= upto`, if every one is held.
    pub fn between(&self, after: u64, upto: u64) -> Option<Vec<InboxEntry>> {
        if upto <= after {
            return None;
        }
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let first = ring.iter().position(|e| e.seq == after + 1)?;
        let want = usize::try_from(upto - after).ok()?;
        let out: Vec<InboxEntry> = ring.iter().skip(first).take(want).cloned().collect();
        let contiguous =
            out.len() == want && out.iter().zip(after + 1..).all(|(e, seq)| e.seq == seq);
        contiguous.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatd_core::{EntryKind, MessageType, SendOptions};

    fn entry(seq: u64) -> InboxEntry {
        InboxEntry {
            seq,
            msg_id: 1000 + seq,
            owner: "u".into(),
            from: "a".into(),
            to: "u".into(),
            kind: EntryKind::Incoming,
            msg_type: MessageType::Txt,
            body: "{}".into(),
            ext: None,
            timestamp_ms: 0,
            options: SendOptions::default(),
        }
    }

    fn seqs(v: Option<Vec<InboxEntry>>) -> Option<Vec<u64>> {
        v.map(|v| v.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn gives_only_complete_runs() {
        let r = RecentEntries::default();
        for s in [1, 2, 4, 3] {
            r.push(entry(s));
        }
        assert_eq!(seqs(r.between(0, 4)), Some(vec![1, 2, 3, 4]));
        assert_eq!(seqs(r.between(2, 3)), Some(vec![3]));
        assert_eq!(r.between(4, 5), None, "5 is not here");
        assert_eq!(r.between(3, 3), None);
        r.push(entry(6));
        assert_eq!(r.between(3, 6), None, "5 is missing");
    }

    #[test]
    fn keeps_the_newest_only() {
        let r = RecentEntries::default();
        for s in 1..=(KEEP as u64 + 5) {
            r.push(entry(s));
        }
        assert_eq!(r.between(0, 3), None, "pushed out");
        let n = KEEP as u64 + 5;
        assert_eq!(seqs(r.between(n - 2, n)), Some(vec![n - 1, n]));
        r.push(entry(n)); // a repeat changes nothing
        assert_eq!(seqs(r.between(n - 1, n)), Some(vec![n]));
    }
}
