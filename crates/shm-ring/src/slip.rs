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
/// How many times [`slip`] looks at the peers' position at most, and how
/// many spin-loop hints it waits before each look: each look pulls a line
/// the peers are writing, so few looks, spaced out.
const SLIP_LOOKS: u32 = 8;
const SLIP_PAUSES: u32 = 16;

/// A side that just read its peers' position found `room` (items ready, or
/// slots free, by that position). When that is a few, but more than one,
/// it may be on the heels of streaming peers: it looks again a little
/// later, and keeps waiting while they make progress, until `refresh`
/// (which reads their position again) gives an eighth of the capacity, or
/// after [`SLIP_LOOKS`] looks. Peers that made no progress between two
/// looks are not streaming (one bulk write, a burst that ended): the room
/// is taken at once. One item (a ping-pong, a lone message) is never
/// delayed. Returns the room found last. Callers check `room >= 2` first,
/// so that the call stays off a ping-pong's path.
#[cold]
#[inline(never)]
pub(crate) fn slip(capacity: u64, mut room: u64, mut refresh: impl FnMut() -> u64) -> u64 {
    let enough = capacity / SLIP_FRACTION;
    if cfg!(loom) || room < 2 || room >= enough {
        return room; // (under loom: a delay, no effect on what is correct)
    }
    for _ in 0..SLIP_LOOKS {
        for _ in 0..SLIP_PAUSES {
            std::hint::spin_loop();
        }
        let now = refresh();
        if now >= enough || now == room {
            return now;
        }
        room = now;
    }
    room
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `slip` on a ring of `capacity` that found `room`, with a peer whose
    /// index gives the items of `later` one look after another (the last
    /// one from then on): what it returns, and how many looks.
    fn looks(capacity: u64, room: u64, later: &[u64]) -> (u64, u32) {
        let mut n = 0;
        let got = slip(capacity, room, || {
            n += 1;
            later[(n as usize - 1).min(later.len() - 1)]
        });
        (got, n)
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
    }
}
