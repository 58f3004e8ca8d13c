//! Identifiers: time-ordered 64-bit message ids, UUIDs and random secrets.

use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};

/// Start of the id clock (2014-01-01T00:00:00Z), so that ids have the same
/// magnitude (about 10^18) as the hosted service's.
pub const ID_EPOCH_MS: u64 = 1_388_534_400_000;
const SEQ_BITS: u32 = 12;
const NODE_BITS: u32 = 10;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const TIME_SHIFT: u32 = SEQ_BITS + NODE_BITS;

/// Generates unique, time-ordered message ids:
/// 41 bits of milliseconds since [`ID_EPOCH_MS`], 10 bits of node id and
/// 12 bits of sequence within the millisecond.
///
/// Ids never go backwards, even if the wall clock does: the generator is
/// seeded with the largest id already stored, and when the clock lags it
/// keeps counting from the last id it gave.
#[derive(Debug)]
pub struct MessageIdGenerator {
    node: u64,
    last: AtomicU64,
}

impl MessageIdGenerator {
    /// `floor` is the largest id ever issued (read from storage at start).
    pub fn new(node: u16, floor: u64) -> Self {
        Self {
            node: u64::from(node) & ((1 << NODE_BITS) - 1),
            last: AtomicU64::new(floor),
        }
    }

    fn base_for(&self, ms: u64) -> u64 {
        (ms.saturating_sub(ID_EPOCH_MS) << TIME_SHIFT) | (self.node << SEQ_BITS)
    }

    /// The next id.
    pub fn next_id(&self) -> u64 {
        self.next_at(crate::clock::now_ms().max(0) as u64)
    }

    /// The next id, as if the wall clock read `now_ms`.
    pub fn next_at(&self, now_ms: u64) -> u64 {
        let base = self.base_for(now_ms);
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = if base > cur {
                base
            } else if cur & SEQ_MASK == SEQ_MASK {
                // Sequence exhausted in this millisecond: borrow the next one
                // rather than spill into the node bits.
                (((cur >> TIME_SHIFT) + 1) << TIME_SHIFT) | (self.node << SEQ_BITS)
            } else {
                cur + 1
            };
            match self.last.compare_exchange_weak(
                cur,
                candidate,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return candidate,
                Err(actual) => cur = actual,
            }
        }
    }
}

/// The Unix time in milliseconds encoded in a message id.
pub fn id_timestamp_ms(id: u64) -> u64 {
    (id >> TIME_SHIFT) + ID_EPOCH_MS
}

/// A random (v4) UUID in its hyphenated form.
pub fn uuid_v4_string() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A random string of `len` URL-safe characters.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_increasing_within_one_millisecond() {
        let g = MessageIdGenerator::new(3, 0);
        let ms = 1_700_000_000_000;
        let ids: Vec<u64> = (0..10_000).map(|_| g.next_at(ms)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // Past 4096 ids the generator borrows later milliseconds but keeps
        // its node bits.
        assert!(ids.iter().all(|id| (id >> SEQ_BITS) & 0x3ff == 3));
        assert_eq!(id_timestamp_ms(ids[0]), ms);
    }

    #[test]
    fn ids_never_go_backwards_when_the_clock_does() {
        let g = MessageIdGenerator::new(0, 0);
        let a = g.next_at(1_700_000_000_500);
        let b = g.next_at(1_700_000_000_000);
        assert!(b > a);
    }

    #[test]
    fn ids_start_above_the_floor() {
        let floor = MessageIdGenerator::new(0, 0).next_at(1_800_000_000_000);
        let g = MessageIdGenerator::new(0, floor);
        assert!(g.next_at(1_700_000_000_000) > floor);
    }

    #[test]
    fn ids_are_unique_across_threads() {
        let g = std::sync::Arc::new(MessageIdGenerator::new(1, 0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || (0..20_000).map(|_| g.next_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            for id in h.join().unwrap() {
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
    }

    #[test]
    fn uuid_has_the_v4_shape() {
        let u = uuid_v4_string();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
