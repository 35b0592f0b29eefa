//! Letting a streaming peer get ahead before going on ("temporal slipping",
//! Giacomoni et al., FastForward, 2008), for both rings.
//!
//! A consumer that keeps up with its producer (or a producer with its
//! consumer) ends up on its heels: each slot line it touches is the one the
//! peer is writing, so lines cross between the cores once per item or two
//! instead of once per line. Waiting a moment for the peer to get some way
//! ahead puts the two sides on different lines again.

/// How far a side that caught up with a streaming peer lets it get ahead
/// first: this fraction of the capacity.
const SLIP_FRACTION: u64 = 8;
/// How many times [`slip`] looks at the peers' position at most, and the
/// most spin-loop hints it waits before a look: each look pulls a line the
/// peers are writing, so few looks, spaced out.
const SLIP_LOOKS: u32 = 8;
const SLIP_PAUSES: u32 = 16;

/// How many of a side's refreshes in a row found its peer 2 or more items
/// (or slots) further on: the evidence that the peer streams, which decides
/// whether and how long a side waits before its first look.
///
/// A burst that ended looks like a stream until the next look, and that
/// look is wasted: so a side that has seen no stream yet does not wait, one
/// that just saw the peer move twice in a row waits one spin-loop hint
/// before its first look, and the wait doubles with each further refresh
/// of the streak, up to [`SLIP_PAUSES`]. A refresh that finds 0 or 1 (an
/// idle peer, a ping-pong) ends the streak, and so does a first look that
/// finds the peer where it was.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streak(u32);

impl Streak {
    /// The shortest first wait (one hint).
    #[cfg(test)]
    const SOON: Streak = Streak(2);

    /// For a side that keeps no streak (MPMC, whose handles are shared by
    /// threads) and only slips where the evidence is strong: it just waited
    /// for a peer's slot, and the peers already claimed past it. The first
    /// look comes after the longest wait, as in a long streak (shorter ones
    /// cost MPMC a third of its throughput: more looks at the lines the
    /// peers are writing).
    pub(crate) const STREAMING: Streak = Streak(6);

    /// The streak after a refresh that found `room`.
    #[inline]
    pub(crate) fn after(self, room: u64) -> Streak {
        if room >= 2 {
            Streak(self.0.saturating_add(1))
        } else {
            Streak(0)
        }
    }

    /// The spin-loop hints to wait before the first look, or `None`: too
    /// little evidence of a stream to wait at all.
    #[inline]
    pub(crate) fn first_wait(self) -> Option<u32> {
        let k = self.0.checked_sub(2)?;
        Some((1u32 << k.min(4)).min(SLIP_PAUSES))
    }
}

/// A side that just read its peers' position found `room` (items ready, or
/// slots free, by that position). When that is a few, but more than one,
/// and `streak` says the peers stream, it may be on their heels: it looks
/// again after [`Streak::first_wait`] spin-loop hints, and keeps waiting,
/// twice as long before each further look up to [`SLIP_PAUSES`], while they
/// make progress, until `refresh` (which reads their position again) gives
/// an eighth of the capacity, or after [`SLIP_LOOKS`] looks. Peers that made
/// no progress between two looks are not streaming (one bulk write, a burst
/// that ended): the room is taken at once, and when that was the first look
/// the streak starts again. Returns the room found last and the streak.
#[cold]
#[inline(never)]
pub(crate) fn slip(
    capacity: u64,
    room: u64,
    streak: Streak,
    refresh: impl FnMut() -> u64,
) -> (u64, Streak) {
    slip_with(capacity, room, streak, refresh, |pauses| {
        for _ in 0..pauses {
            std::hint::spin_loop();
        }
    })
}

/// [`slip`], with `wait(n)` for "n spin-loop hints" (tests record them).
fn slip_with(
    capacity: u64,
    mut room: u64,
    streak: Streak,
    mut refresh: impl FnMut() -> u64,
    mut wait: impl FnMut(u32),
) -> (u64, Streak) {
    let enough = capacity / SLIP_FRACTION;
    let Some(mut pauses) = streak.first_wait() else {
        return (room, streak);
    };
    if cfg!(loom) || room < 2 || room >= enough {
        return (room, streak); // (under loom: a delay, no effect on what is correct)
    }
    for look in 0..SLIP_LOOKS {
        wait(pauses);
        let now = refresh();
        if now >= enough {
            return (now, streak);
        }
        if now == room {
            return (now, if look == 0 { Streak(0) } else { streak });
        }
        room = now;
        pauses = (pauses * 2).min(SLIP_PAUSES);
    }
    (room, streak)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `slip` on a ring of `capacity` that found `room`, after `streak`,
    /// with a peer whose index gives the items of `later` one look after
    /// another (the last one from then on): what it returns, the streak,
    /// and the spin-loop hints it waited before each look.
    fn waits(capacity: u64, room: u64, streak: Streak, later: &[u64]) -> (u64, Streak, Vec<u32>) {
        let mut n = 0;
        let mut waits = Vec::new();
        let (got, streak) = slip_with(
            capacity,
            room,
            streak,
            || {
                n += 1;
                later[(n - 1).min(later.len() - 1)]
            },
            |pauses| waits.push(pauses),
        );
        (got, streak, waits)
    }

    /// As [`waits`], for a streaming peer (the shortest first wait): what it
    /// returns and how many looks.
    fn looks(capacity: u64, room: u64, later: &[u64]) -> (u64, u32) {
        let (got, _, waits) = waits(capacity, room, Streak::SOON, later);
        (got, waits.len() as u32)
    }

    /// The streak after `n` refreshes that each found `room`.
    fn streak_of(n: usize, room: u64) -> Streak {
        (0..n).fold(Streak::default(), |s, _| s.after(room))
    }

    #[test]
    fn one_item_or_plenty_is_taken_at_once() {
        assert_eq!(looks(4096, 0, &[9]), (0, 0));
        assert_eq!(looks(4096, 1, &[9]), (1, 0)); // a ping-pong
        assert_eq!(looks(4096, 512, &[9]), (512, 0)); // an eighth: far enough
        assert_eq!(looks(8, 2, &[9]), (2, 0)); // too small a ring to slip
    }

    #[test]
    fn a_streaming_peer_is_let_ahead_while_it_progresses() {
        assert_eq!(looks(4096, 2, &[600]), (600, 1));
        assert_eq!(looks(4096, 2, &[40, 90, 700]), (700, 3));
        // It stopped after the second look: no wait for it.
        assert_eq!(looks(4096, 2, &[40, 90, 90]), (90, 3));
        // A bulk write that is not followed by more: one look.
        assert_eq!(looks(4096, 100, &[100]), (100, 1));
        // A peer that keeps trickling: the last look ends it.
        let trickle: Vec<u64> = (3..100).collect();
        assert_eq!(
            looks(4096, 2, &trickle),
            (2 + u64::from(SLIP_LOOKS), SLIP_LOOKS)
        );
        // The waits grow between the looks.
        let stream: Vec<u64> = (1..20).map(|k| 2 + 10 * k).collect();
        let w = waits(4096, 2, Streak::SOON, &stream).2;
        assert_eq!(w, [1, 2, 4, 8, 16, 16, 16, 16]);
    }

    #[test]
    fn the_first_wait_grows_with_the_evidence_of_a_stream() {
        let first: Vec<Option<u32>> = (1..=8).map(|n| streak_of(n, 40).first_wait()).collect();
        assert_eq!(first[0], None, "one refresh that found items is no stream");
        assert_eq!(first[1..], [1, 2, 4, 8, 16, 16, 16].map(Some));
        assert_eq!(waits(4096, 2, streak_of(8, 40), &[600]).2, [16]);
    }

    #[test]
    fn a_burst_after_an_idle_peer_or_a_ping_pong_is_taken_at_once() {
        // The refresh that finds the burst is the first of a streak.
        for before in [0, 1] {
            let s = streak_of(8, 40).after(before).after(8);
            assert_eq!(waits(4096, 8, s, &[8]), (8, s, vec![]), "after {before}");
        }
    }

    #[test]
    fn a_first_look_that_finds_no_progress_ends_the_streak() {
        // A burst that ended, found by a side whose streak said "stream"
        // (one thread that pushes a batch and then pops it, say): one
        // short look, and no wait the next time.
        let s = streak_of(2, 32);
        assert_eq!(waits(4096, 32, s, &[32]), (32, Streak(0), vec![1]));
        assert_eq!(Streak(0).after(32).first_wait(), None);
        // A stream that pauses later keeps its streak.
        let (_, kept, _) = waits(4096, 32, s, &[40, 40]);
        assert_eq!(kept, s);
    }
}
