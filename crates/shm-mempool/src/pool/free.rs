//! The queues and the stack a pool keeps its blocks in, over the shared
//! words `pool.rs` lays out: the FIFO free queue ([`FreeOrder::Fifo`], the
//! default) or the LIFO free stack ([`FreeOrder::Lifo`]), and the channel
//! queue that a [`Channel`](crate::Channel) sends through. See the
//! [`pool`](crate::pool) module docs for the design; this file holds the
//! algorithms and their walks.
//!
//! The rule that makes every operation survive a kill at any instruction:
//! each one has a single *decisive* step, a CAS on the block's record word,
//! and every other step is one that anyone may do (or redo) for it.
//!
//! - **Queues** (FIFO free queue, channel queue). A block's word says where
//!   it is queued (`free@t`, `queued@t`: position `t`). Taking: read the
//!   cell at the head; if it names block `i` and `i`'s word says it is
//!   queued exactly there, CAS the word to *held by me* (decisive), then
//!   empty the cell and move the head hint. A cell whose block's word moved
//!   on was taken already: whoever finds it empties it. Giving: find an
//!   empty cell at the tail, CAS the word to *queued there* (decisive),
//!   then fill the cell ([`MemPool::q_fill`]). If another block filled that
//!   position first, the word moves to a later position (one CAS from the
//!   word seen, so a block is never filled twice). `reclaim_dead` does the
//!   fill for a giver that died.
//! - **LIFO stack.** The head word carries a *pending mark* besides the
//!   link and the tag: *pushed* (the top's word is to become free) or
//!   *popped by slot s* (the top's word is to become held by `s`; the
//!   stack below it is the real stack). Taking: CAS the head to *popped by
//!   me* (decisive), then CAS the word. Giving: link the block and CAS the
//!   head to *pushed* (decisive), then CAS the word. Whoever reads a
//!   marked head settles it first (one CAS on the word, the same one the
//!   owner does), so the next head change never loses the mark's meaning.

use std::sync::atomic::Ordering;

use shm_segment::Region;

use crate::error::PoolError;
use crate::pool::{
    block_state, next_word, place_of, state_of, FreeOrder, MemPool, FREE, HELD, QUEUED, SLOTS,
};
use crate::sync::AtomicU64;

/// A queue cell word: the stamp (high 32 bits) and a block index (low 32).
///
/// The cell at `p mod C` is *empty for position `p`* when its stamp is `p`,
/// *full for position `p`* when it is `p + 1` (the index is then the
/// block's), and becomes empty for `p + C` when it is emptied (stamps are
/// positions truncated to 32 bits).
pub(crate) fn cell_word(stamp: u32, index: u32) -> u64 {
    (u64::from(stamp) << 32) | u64::from(index)
}

fn stamp_of(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Which of a pool's two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Q {
    /// The FIFO free queue (FIFO pools only).
    Free,
    /// The channel queue: blocks sent and not yet received.
    Sent,
}

impl Q {
    /// The state of a block listed in this queue.
    fn state(self) -> u64 {
        match self {
            Q::Free => FREE,
            Q::Sent => QUEUED,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Q::Free => "free queue",
            Q::Sent => "channel queue",
        }
    }
}

/// A queue cell as seen by a giver for position `t`.
enum Cell {
    /// Empty for `t`: fill it.
    Empty,
    /// Full for `t` (with another block than the one being queued).
    Full,
    /// Position `t` is past (filled, maybe emptied since, maybe a lap on).
    Used,
    /// Still full for `t - C`, a lap behind, with this block.
    Behind(u32),
    /// A stamp no lap explains.
    Bad,
}

/// The LIFO head: tag (bits 40-63), pending mark (32-39), link (0-31).
const MARK_SHIFT: u32 = 32;
const TAG_SHIFT: u32 = 40;
const MARK_NONE: u64 = 0;
const MARK_PUSHED: u64 = 1;
/// `MARK_POPPED + s`: popped by slot `s`.
const MARK_POPPED: u64 = 2;

fn head_word(tag: u64, mark: u64, link: u32) -> u64 {
    (tag << TAG_SHIFT) | ((mark & 0xFF) << MARK_SHIFT) | u64::from(link)
}

/// Moves a head or tail hint from `pos` to `pos + 1` if it is still at
/// `pos`, with a plain store after the check (no locked instruction on the
/// fast path). A racing mover can make the store move the hint back by a
/// few positions; every reader moves a lagging hint on (the cells say where
/// the truth is), so a hint is only ever a little late, never wrong.
#[inline]
fn hint_past(hint: &AtomicU64, pos: u64, crash_point: impl FnOnce()) {
    if hint.load(Ordering::Relaxed) == pos {
        crash_point();
        // SYNC POINT: Release pairs with the Acquire loads of the hint in
        // `q_pop` and `q_push`: the cell behind it was emptied (filled).
        hint.store(pos.wrapping_add(1), Ordering::Release);
    }
}

/// What a walk of the free list found (while nobody changes the pool).
pub(crate) struct Walk {
    /// The listed blocks, in the order `get` would hand them out.
    pub(crate) listed: Vec<u32>,
}

impl<R: Region> MemPool<R> {
    fn q_head(&self, q: Q) -> &AtomicU64 {
        match q {
            Q::Free => &self.control().head,
            Q::Sent => &self.control().sent_head,
        }
    }

    fn q_tail(&self, q: Q) -> &AtomicU64 {
        match q {
            Q::Free => &self.control().tail,
            Q::Sent => &self.control().sent_tail,
        }
    }

    /// How many retries without progress a queue operation allows before
    /// it calls the queue corrupted: no correct peer makes it spin that long.
    fn budget(&self) -> u64 {
        4 * (self.inner.mask + 1) + 1024
    }

    /// Takes a free block and marks it held by `slot`: `Ok(None)` when the
    /// free list is empty. Returns the index and the word written.
    #[inline]
    pub(crate) fn pop_free(&self, slot: u32) -> Result<Option<(u32, u64)>, PoolError> {
        match self.inner.order {
            FreeOrder::Fifo => self.q_pop(Q::Free, slot),
            FreeOrder::Lifo => self.lifo_pop(slot),
        }
    }

    /// Gives block `i` back, from exactly the word `from` (held, or in
    /// transit for a FIFO `put`). `Ok(Err(now))`: the word was `now`, not
    /// `from`, and nothing changed. A corrupted free list is an error; the
    /// block may then be marked free but be on no list (`check` says so).
    #[inline]
    pub(crate) fn push_free(&self, i: u32, from: u64) -> Result<Result<(), u64>, PoolError> {
        match self.inner.order {
            FreeOrder::Fifo => self.q_push(Q::Free, i, from),
            FreeOrder::Lifo => self.lifo_push(i, from),
        }
    }

    /// Lists the free blocks (at most `blocks` steps), or says how the list
    /// is corrupted. Meaningful while no other process changes the pool.
    /// A LIFO head a killed process left marked is settled first.
    pub(crate) fn walk_free(&self) -> Result<Walk, PoolError> {
        let listed = match self.inner.order {
            FreeOrder::Fifo => self.q_walk(Q::Free)?,
            FreeOrder::Lifo => self.lifo_walk()?,
        };
        Ok(Walk { listed })
    }

    // -----------------------------------------------------------------------
    // Queues: cells that change by one CAS each; the block's word decides.

    /// Takes the block at the head of queue `q` and marks it held by `slot`.
    /// The fast path: the head hint is right and its block is queued there.
    #[inline]
    pub(crate) fn q_pop(&self, q: Q, slot: u32) -> Result<Option<(u32, u64)>, PoolError> {
        // SYNC POINT: Acquire loads and the AcqRel CAS as in `q_pop_slow`.
        let h = self.q_head(q).load(Ordering::Acquire);
        let c = self.q_cell(q, h).load(Ordering::Acquire);
        let i = c as u32;
        if stamp_of(c) == (h as u32).wrapping_add(1) && i < self.inner.blocks {
            let word = &self.meta(i).word;
            let w = word.load(Ordering::Acquire);
            if state_of(w) == q.state() && place_of(w) == h as u32 {
                let held = next_word(w, HELD, slot);
                self.crash_point();
                if word
                    .compare_exchange(w, held, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.empty_cell(q, h, c);
                    return Ok(Some((i, held)));
                }
            }
        }
        self.q_pop_slow(q, slot)
    }

    /// [`q_pop`](MemPool::q_pop) for every other case: a lagging head, a
    /// cell taken and not emptied, a lost race, an empty queue, corruption.
    #[cold]
    #[inline(never)]
    fn q_pop_slow(&self, q: Q, slot: u32) -> Result<Option<(u32, u64)>, PoolError> {
        let head = self.q_head(q);
        let state = q.state();
        let mut budget = self.budget();
        // SYNC POINT: Acquire pairs with the Release (or AcqRel) CASes that
        // move the head on, below.
        let mut h = head.load(Ordering::Acquire);
        loop {
            budget = budget.checked_sub(1).ok_or_else(|| {
                self.corrupted(format!("the {} makes no progress at its head", q.name()))
            })?;
            let cell = self.q_cell(q, h);
            // SYNC POINT: Acquire pairs with the Release of the CAS that
            // filled the cell in `q_fill`: the block's word is visible.
            let c = cell.load(Ordering::Acquire);
            let d = stamp_of(c).wrapping_sub((h as u32).wrapping_add(1));
            if d == 0 {
                // Full for position `h`.
                let i = c as u32;
                if i >= self.inner.blocks {
                    return Err(self.corrupted(format!(
                        "{} cell {} (position {h}) names block {i}",
                        q.name(),
                        h & self.inner.mask
                    )));
                }
                let word = &self.meta(i).word;
                let w = word.load(Ordering::Acquire);
                if state_of(w) == state && place_of(w) == h as u32 {
                    let held = next_word(w, HELD, slot);
                    self.crash_point();
                    // SYNC POINT: AcqRel: Acquire takes the bytes its last
                    // holder published with the Release of its own CAS on
                    // this word; Release orders the take for the next mover.
                    if word
                        .compare_exchange(w, held, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        self.empty_cell(q, h, c);
                        return Ok(Some((i, held)));
                    }
                    // Another taker won it: look at the cell again.
                    continue;
                }
                // Taken already (its word moved on), the cell not emptied
                // yet: empty it for the taker, and go on.
                self.empty_cell(q, h, c);
                h = head.load(Ordering::Acquire);
            } else if d == u32::MAX {
                // Empty for position `h`: nothing was queued there yet.
                return Ok(None);
            } else if let Some(to) = self.skip_to(h, stamp_of(c)) {
                // Emptied for `h` already (and maybe filled again laps on):
                // the head hint lags (a taker stopped before moving it, or
                // a late store moved it back). Move it on.
                self.crash_point();
                let _ = head.compare_exchange(h, to, Ordering::AcqRel, Ordering::Relaxed);
                h = head.load(Ordering::Acquire);
            } else {
                // No correct peer leaves this stamp under an unchanged head
                // (a stalled reader sees the head moved on).
                let now = head.load(Ordering::Acquire);
                if now == h {
                    return Err(self.corrupted(format!(
                        "{} cell {} has stamp {} at the head (position {h})",
                        q.name(),
                        h & self.inner.mask,
                        stamp_of(c)
                    )));
                }
                h = now;
            }
        }
    }

    /// Empties cell `c` at position `h` (its block was taken) and moves the
    /// head hint past it; either may have been done already.
    fn empty_cell(&self, q: Q, h: u64, c: u64) {
        let cap = self.inner.mask + 1;
        self.crash_point();
        // SYNC POINT: AcqRel: Release hands the emptied cell to the giver
        // one lap on (its Acquire load in `q_push`/`q_fill`).
        let _ = self.q_cell(q, h).compare_exchange(
            c,
            cell_word((h.wrapping_add(cap)) as u32, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        hint_past(self.q_head(q), h, || self.crash_point());
    }

    /// A hint at `pos` whose cell has stamp `stamp` from a later lap: the
    /// position the hint may move to (never past the truth: the cell's
    /// stamp says that every position up to there is past). `None` when the
    /// stamp is not from a later lap.
    fn skip_to(&self, pos: u64, stamp: u32) -> Option<u64> {
        let cap = self.inner.mask + 1;
        let ahead = u64::from(stamp.wrapping_sub(pos as u32));
        if ahead < cap || ahead > 1 << 31 || ahead % cap > 1 {
            return None;
        }
        let laps = ahead / cap;
        Some(pos.wrapping_add((laps - 1) * cap + 1))
    }

    fn classify(&self, c: u64, t: u32) -> Cell {
        let d = stamp_of(c).wrapping_sub(t) as i32;
        let cap = (self.inner.mask + 1) as i64;
        match d {
            0 => Cell::Empty,
            1 => Cell::Full,
            d if d > 0 => Cell::Used,
            d if i64::from(d) == 1 - cap => Cell::Behind(c as u32),
            _ => Cell::Bad,
        }
    }

    /// A cell still full from the lap before position `t`: if its block
    /// was taken (its word moved on), empty it; if the block is really
    /// queued there, the queue would hold more blocks than the pool has.
    fn help_behind(&self, q: Q, t: u32, c: u64, i: u32) -> Result<(), PoolError> {
        let p = t.wrapping_sub((self.inner.mask + 1) as u32);
        if i < self.inner.blocks {
            let w = self.meta(i).word.load(Ordering::Acquire);
            if state_of(w) == q.state() && place_of(w) == p {
                if self.q_cell(q, u64::from(t)).load(Ordering::Acquire) != c {
                    return Ok(());
                }
                return Err(self.corrupted(format!(
                    "{} cell {} is still full for position {p} at position {t}: the queue \
                     would hold more blocks than the pool has",
                    q.name(),
                    u64::from(t) & self.inner.mask
                )));
            }
        }
        self.crash_point();
        let _ = self.q_cell(q, u64::from(t)).compare_exchange(
            c,
            cell_word(t, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// Queues block `i` in `q`, from exactly the word `from`: finds an empty
    /// cell at the tail, CASes the word to *queued there* (the decisive
    /// step), then fills the cell. `Ok(Err(now))`: the word was `now`. The
    /// fast path: the tail hint is right and nobody races for its cell.
    #[inline]
    pub(crate) fn q_push(&self, q: Q, i: u32, from: u64) -> Result<Result<(), u64>, PoolError> {
        let tail = self.q_tail(q);
        // SYNC POINT: Acquire loads and AcqRel CASes as in `q_push_slow`
        // and `q_fill`.
        let t = tail.load(Ordering::Acquire);
        let cell = self.q_cell(q, t);
        let c = cell.load(Ordering::Acquire);
        if stamp_of(c) != t as u32 {
            return self.q_push_slow(q, i, from);
        }
        let to = next_word(from, q.state(), t as u32);
        self.crash_point();
        if let Err(now) =
            self.meta(i)
                .word
                .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
        {
            return Ok(Err(now));
        }
        self.crash_point();
        if cell
            .compare_exchange(
                c,
                cell_word((t as u32).wrapping_add(1), i),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            hint_past(tail, t, || self.crash_point());
            return Ok(Ok(()));
        }
        self.q_fill(q, i, to).map(Ok)
    }

    /// [`q_push`](MemPool::q_push) for every other case.
    #[cold]
    #[inline(never)]
    fn q_push_slow(&self, q: Q, i: u32, from: u64) -> Result<Result<(), u64>, PoolError> {
        let tail = self.q_tail(q);
        let mut budget = self.budget();
        // SYNC POINT: Acquire pairs with the Release CASes that move the
        // tail on (`bump_tail`).
        let mut t = tail.load(Ordering::Acquire);
        loop {
            budget = budget.checked_sub(1).ok_or_else(|| {
                self.corrupted(format!("the {} makes no progress at its tail", q.name()))
            })?;
            // SYNC POINT: Acquire pairs with the AcqRel CAS that emptied the
            // cell (`empty_cell`).
            let c = self.q_cell(q, t).load(Ordering::Acquire);
            match self.classify(c, t as u32) {
                Cell::Empty => {
                    let to = next_word(from, q.state(), t as u32);
                    self.crash_point();
                    // SYNC POINT: AcqRel: Release publishes the bytes written
                    // while the block was held to its next taker (whose CAS
                    // on this word Acquires them).
                    return match self.meta(i).word.compare_exchange(
                        from,
                        to,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => self.q_fill(q, i, to).map(Ok),
                        Err(now) => Ok(Err(now)),
                    };
                }
                Cell::Full | Cell::Used => {
                    // The tail hint lags (a giver stopped before moving it,
                    // or a late store moved it back): move it on.
                    let to = self.skip_to(t, stamp_of(c)).unwrap_or(t.wrapping_add(1));
                    self.crash_point();
                    let _ = tail.compare_exchange(t, to, Ordering::AcqRel, Ordering::Relaxed);
                    t = tail.load(Ordering::Acquire);
                }
                Cell::Behind(j) => self.help_behind(q, t as u32, c, j)?,
                Cell::Bad => {
                    let now = tail.load(Ordering::Acquire);
                    if now == t {
                        return Err(self.corrupted(format!(
                            "{} cell {} has stamp {} at the tail (position {t}), so block {i} \
                             could not be queued",
                            q.name(),
                            t & self.inner.mask,
                            stamp_of(c)
                        )));
                    }
                    t = now;
                }
            }
        }
    }

    /// Puts block `i`, whose word is (or was) `w` — queued in `q` at
    /// position `place_of(w)` — into that cell. Idempotent, and safe for
    /// anyone to do, also while the giver itself is doing it: every step is
    /// a CAS that the giver would make with the same values. If another
    /// block took the position first, the word moves on to a later one
    /// (one CAS from the word seen). Ends when the cell holds the block or
    /// the block's word moved on (taken since, or no longer queued in `q`).
    #[cold]
    #[inline(never)]
    pub(crate) fn q_fill(&self, q: Q, i: u32, mut w: u64) -> Result<(), PoolError> {
        let state = q.state();
        let word = &self.meta(i).word;
        let mut budget = self.budget();
        loop {
            budget = budget.checked_sub(1).ok_or_else(|| {
                self.corrupted(format!("block {i} found no room in the {}", q.name()))
            })?;
            let t = place_of(w);
            let cell = self.q_cell(q, u64::from(t));
            let c = cell.load(Ordering::Acquire);
            let full = cell_word(t.wrapping_add(1), i);
            if c == full {
                self.bump_tail(q, t);
                return Ok(());
            }
            match self.classify(c, t) {
                Cell::Empty => {
                    self.crash_point();
                    // SYNC POINT: Release pairs with the Acquire load in
                    // `q_pop`: the block's word (queued here) goes with it.
                    if cell
                        .compare_exchange(c, full, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                    {
                        self.bump_tail(q, t);
                        return Ok(());
                    }
                }
                Cell::Behind(j) => self.help_behind(q, t, c, j)?,
                Cell::Full | Cell::Used => {
                    // Position `t` went to another block: move on to the
                    // tail (or the next position), with one CAS from `w`.
                    let tail = self.q_tail(q).load(Ordering::Acquire) as u32;
                    let past = self
                        .skip_to(u64::from(t), stamp_of(c))
                        .map_or(t.wrapping_add(1), |to| to as u32);
                    let next = if (tail.wrapping_sub(past) as i32) > 0 {
                        tail
                    } else {
                        past
                    };
                    self.crash_point();
                    // If this fails, the block was taken since, or moved on
                    // by a helper: the word, read again below, says which.
                    let _ = word.compare_exchange(
                        w,
                        next_word(w, state, next),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                Cell::Bad => {
                    return Err(self.corrupted(format!(
                        "{} cell {} has stamp {} where block {i} is to be queued \
                         (position {t})",
                        q.name(),
                        u64::from(t) & self.inner.mask,
                        stamp_of(c)
                    )))
                }
            }
            // Re-read the word: it may have been taken, or moved on.
            let now = word.load(Ordering::Acquire);
            if state_of(now) != state {
                return Ok(());
            }
            w = now;
        }
    }

    /// Moves the tail hint past position `t` (filled), if it is there.
    fn bump_tail(&self, q: Q, t: u32) {
        let tail = self.q_tail(q);
        let now = tail.load(Ordering::Relaxed);
        if now as u32 == t {
            hint_past(tail, now, || self.crash_point());
        }
    }

    /// How many blocks queue `q` holds: the distance between the head and
    /// tail hints, each first moved over what a process stopped before
    /// moving it over (at most a lap; loads only). A snapshot.
    pub(crate) fn q_len(&self, q: Q) -> u64 {
        let cap = self.inner.mask + 1;
        let state = q.state();
        let mut t = self.q_tail(q).load(Ordering::Acquire);
        for _ in 0..2 * cap {
            let s = stamp_of(self.q_cell(q, t).load(Ordering::Acquire));
            if s == (t as u32).wrapping_add(1) {
                t = t.wrapping_add(1);
            } else if let Some(to) = self.skip_to(t, s) {
                t = to;
            } else {
                break;
            }
        }
        let mut h = self.q_head(q).load(Ordering::Acquire);
        for _ in 0..2 * cap {
            if h == t || t.wrapping_sub(h) > 1 << 63 {
                return 0;
            }
            let c = self.q_cell(q, h).load(Ordering::Acquire);
            let d = stamp_of(c).wrapping_sub(h as u32);
            let i = c as u32;
            if d == 1 {
                let listed = i < self.inner.blocks && {
                    let w = self.meta(i).word.load(Ordering::Acquire);
                    state_of(w) == state && place_of(w) == h as u32
                };
                if listed {
                    break;
                }
                h = h.wrapping_add(1);
            } else if let Some(to) = self.skip_to(h, stamp_of(c)) {
                h = to;
            } else {
                break;
            }
        }
        t.wrapping_sub(h).min(u64::from(self.inner.blocks))
    }

    /// Queue `q` from the head: cells emptied (or taken and not emptied
    /// yet) by takers that did not move the head on, then the full cells
    /// whose blocks are queued there, then one empty cell; the tail must not
    /// be past the end.
    pub(crate) fn q_walk(&self, q: Q) -> Result<Vec<u32>, PoolError> {
        let cap = self.inner.mask + 1;
        let blocks = u64::from(self.inner.blocks);
        let state = q.state();
        let mut p = self.q_head(q).load(Ordering::Acquire);
        let start = p;
        let listed_at = |p: u64, c: u64| -> bool {
            let i = c as u32;
            i < self.inner.blocks && {
                let w = self.meta(i).word.load(Ordering::Acquire);
                state_of(w) == state && place_of(w) == p as u32
            }
        };
        // Cells emptied for `p` (stamp p + C, or p + C + 1 when filled
        // again), or full for `p` with a block taken since.
        let mut steps = 0;
        loop {
            let c = self.q_cell(q, p).load(Ordering::Acquire);
            let d = stamp_of(c).wrapping_sub(p as u32);
            if d == 1 && c as u32 >= self.inner.blocks {
                return Err(self.corrupted(format!(
                    "{} cell {} (position {p}) names block {}",
                    q.name(),
                    p & self.inner.mask,
                    c as u32
                )));
            }
            let taken = d == 1 && !listed_at(p, c);
            steps += 1;
            if taken {
                p = p.wrapping_add(1);
            } else if let Some(to) = self.skip_to(p, stamp_of(c)) {
                p = to;
            } else {
                break;
            }
            if steps > 2 * cap + 64 {
                return Err(self.corrupted(format!(
                    "the {}'s head {start} is followed by no cell a taker could take next",
                    q.name()
                )));
            }
        }
        let first = p;
        let mut listed = Vec::new();
        loop {
            let c = self.q_cell(q, p).load(Ordering::Acquire);
            let d = stamp_of(c).wrapping_sub(p as u32);
            if listed.len() as u64 == blocks {
                // Every block listed: the next cell is empty for `p`, or
                // (when C = blocks) the first listed one, full one lap back.
                if d == 1 {
                    return Err(self
                        .corrupted(format!("the {} holds more than {blocks} entries", q.name())));
                }
                break;
            }
            // Empty for `p`; or still full for `p - C` with a block taken
            // since (its taker was killed before emptying it): the giver
            // for `p` empties it.
            let behind = p.wrapping_sub(cap);
            if d == 0 || (d == (1 - cap as i64) as u32 && !listed_at(behind, c)) {
                break;
            }
            if d != 1 {
                return Err(self.corrupted(format!(
                    "{} cell {} has stamp {} at position {p}, neither full nor empty",
                    q.name(),
                    p & self.inner.mask,
                    stamp_of(c)
                )));
            }
            let i = c as u32;
            if i >= self.inner.blocks {
                return Err(self.corrupted(format!(
                    "{} cell {} (position {p}) names block {i}",
                    q.name(),
                    p & self.inner.mask
                )));
            }
            if !listed_at(p, c) {
                let w = self.meta(i).word.load(Ordering::Acquire);
                return Err(self.corrupted(format!(
                    "{} cell {} (position {p}) names block {i}, which is {} (place {})",
                    q.name(),
                    p & self.inner.mask,
                    block_state(w),
                    place_of(w)
                )));
            }
            listed.push(i);
            p = p.wrapping_add(1);
        }
        // The tail is at the end, or behind it: a giver killed between its
        // fill and moving the tail leaves it one behind, even behind the
        // head once that cell is taken (and a late store of the hint, more).
        // Never ahead of the end.
        let tail = self.q_tail(q).load(Ordering::Acquire);
        if tail != p && tail.wrapping_sub(p) < 1 << 63 {
            return Err(self.corrupted(format!(
                "the {}'s tail {tail} lies past its cells {first}..{p}",
                q.name()
            )));
        }
        Ok(listed)
    }

    // -----------------------------------------------------------------------
    // LIFO: a Treiber stack whose head carries a tag and a pending mark.

    /// Settles the mark of head `h` (one CAS on the top block's word, the
    /// one its owner makes too) and returns the link of the real top: for a
    /// *popped* mark, the block below. `Ok(None)`: the head changed, look
    /// again. The fast path: no mark, or one settled already.
    #[inline]
    fn lifo_settle(&self, h: u64) -> Result<Option<u32>, PoolError> {
        let link = h as u32;
        let mark = (h >> MARK_SHIFT) & 0xFF;
        if mark == MARK_NONE {
            return Ok(Some(link));
        }
        if link != 0 && link <= self.inner.blocks {
            let i = link - 1;
            let w = self.meta(i).word.load(Ordering::Acquire);
            if mark == MARK_PUSHED && state_of(w) == FREE {
                return Ok(Some(link));
            }
            if mark >= MARK_POPPED && state_of(w) != FREE {
                let next = self.meta(i).next.load(Ordering::Acquire);
                if next <= self.inner.blocks {
                    return Ok(Some(next));
                }
            }
        }
        self.lifo_settle_slow(h)
    }

    /// [`lifo_settle`](MemPool::lifo_settle) when there is something to do.
    #[cold]
    #[inline(never)]
    fn lifo_settle_slow(&self, h: u64) -> Result<Option<u32>, PoolError> {
        let link = h as u32;
        let mark = (h >> MARK_SHIFT) & 0xFF;
        if mark == MARK_NONE {
            return Ok(Some(link));
        }
        if link == 0 || link > self.inner.blocks {
            return Err(self.corrupted(format!(
                "the free list's head is marked but points at block {}",
                link.wrapping_sub(1)
            )));
        }
        let i = link - 1;
        let word = &self.meta(i).word;
        let head = &self.control().stack;
        let w = word.load(Ordering::Acquire);
        if mark == MARK_PUSHED {
            // The top was given back: its word, held by its giver, is to
            // become free.
            if state_of(w) != FREE && state_of(w) != HELD {
                if head.load(Ordering::Acquire) != h {
                    // A stale look: the block was taken off since.
                    return Ok(None);
                }
                return Err(self.corrupted(format!(
                    "block {i} was given back to the free list but is {}",
                    block_state(w)
                )));
            }
            if state_of(w) == HELD {
                if head.load(Ordering::Acquire) != h {
                    return Ok(None);
                }
                self.crash_point();
                // SYNC POINT: AcqRel, as the owner's own settle in `lifo_push`.
                let _ = word.compare_exchange(
                    w,
                    next_word(w, FREE, 0),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            return Ok(Some(link));
        }
        let slot = (mark - MARK_POPPED) as u32;
        if slot >= SLOTS {
            return Err(self.corrupted(format!(
                "the free list's head has mark {mark}, which names no owner slot"
            )));
        }
        // The top was taken by `slot`: its word is to become held by it.
        if state_of(w) == FREE {
            if head.load(Ordering::Acquire) != h {
                return Ok(None);
            }
            self.crash_point();
            // SYNC POINT: AcqRel, as the owner's own settle in `lifo_pop`.
            let _ = word.compare_exchange(
                w,
                next_word(w, HELD, slot),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        let next = self.meta(i).next.load(Ordering::Acquire);
        if next > self.inner.blocks {
            return Err(self.corrupted(format!("block {i} links to block {}", next - 1)));
        }
        Ok(Some(next))
    }

    /// Settles whatever mark the head has now.
    pub(crate) fn lifo_settle_head(&self) -> Result<(), PoolError> {
        let mut budget = self.budget();
        while self
            .lifo_settle(self.control().stack.load(Ordering::Acquire))?
            .is_none()
        {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| self.corrupted("the free list's head never settles".into()))?;
        }
        Ok(())
    }

    /// The fast path of a LIFO get: one look at the head; anything else
    /// (an empty list, a lost race, a mark to settle, corruption) goes to
    /// the loop in `lifo_pop_slow`.
    #[inline]
    fn lifo_pop(&self, slot: u32) -> Result<Option<(u32, u64)>, PoolError> {
        let head = &self.control().stack;
        // SYNC POINT: as in `lifo_pop_slow`.
        let h = head.load(Ordering::Acquire);
        let (link, mark) = (h as u32, (h >> MARK_SHIFT) & 0xFF);
        // No mark, or "pushed" with the top's word free already: the top
        // is the link, and its word is read once.
        if mark <= MARK_PUSHED && link != 0 && link <= self.inner.blocks {
            let w = self.meta(link - 1).word.load(Ordering::Acquire);
            if state_of(w) == FREE {
                if let Some(taken) = self.lifo_take(h, link, w, slot)? {
                    return Ok(Some(taken));
                }
            }
        }
        self.lifo_pop_slow(slot)
    }

    #[cold]
    #[inline(never)]
    fn lifo_pop_slow(&self, slot: u32) -> Result<Option<(u32, u64)>, PoolError> {
        let head = &self.control().stack;
        loop {
            // SYNC POINT: Acquire pairs with the AcqRel CAS in `lifo_push`:
            // the top's link and word, and the bytes its last holder wrote.
            let h = head.load(Ordering::Acquire);
            let Some(top) = self.lifo_settle(h)? else {
                continue;
            };
            if top == 0 {
                return Ok(None);
            }
            if top > self.inner.blocks {
                return Err(self.corrupted(format!("the free list points at block {}", top - 1)));
            }
            let i = top - 1;
            let word = &self.meta(i).word;
            let w = word.load(Ordering::Acquire);
            if state_of(w) != FREE {
                if head.load(Ordering::Acquire) != h {
                    continue;
                }
                // No correct peer leaves a block that is not free on top of
                // a settled head: take the entry off (so the rest of the
                // list stays usable), leave the block to whoever has it, and
                // say so.
                let next = self.meta(i).next.load(Ordering::Acquire);
                if next <= self.inner.blocks {
                    let tag = (h >> TAG_SHIFT).wrapping_add(1);
                    self.crash_point();
                    let _ = head.compare_exchange(
                        h,
                        head_word(tag, MARK_NONE, next),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    );
                }
                return Err(self.corrupted(format!(
                    "block {i} is on the free list but is {}",
                    block_state(w)
                )));
            }
            if let Some(taken) = self.lifo_take(h, top, w, slot)? {
                return Ok(Some(taken));
            }
        }
    }

    /// The decisive step of a LIFO get, for the fast and the slow path
    /// alike: the head goes from `h` (block `top` on top, its word `w` free)
    /// to "popped by `slot`", then the block's word goes to held.
    /// `Ok(None)` when the head moved first: nothing changed, look again.
    #[inline]
    fn lifo_take(
        &self,
        h: u64,
        top: u32,
        w: u64,
        slot: u32,
    ) -> Result<Option<(u32, u64)>, PoolError> {
        let tag = (h >> TAG_SHIFT).wrapping_add(1);
        self.crash_point();
        if self
            .control()
            .stack
            .compare_exchange(
                h,
                head_word(tag, MARK_POPPED + u64::from(slot), top),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Ok(None);
        }
        let i = top - 1;
        let held = next_word(w, HELD, slot);
        self.crash_point();
        match self
            .meta(i)
            .word
            .compare_exchange(w, held, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(Some((i, held))),
            // Settled for us by whoever read the head meanwhile.
            Err(now) if now == held => Ok(Some((i, held))),
            Err(now) => Err(self.corrupted(format!(
                "block {i}, just taken off the free list, is {}",
                block_state(now)
            ))),
        }
    }

    /// The fast path of a LIFO give-back: one look at the head; anything
    /// else goes to the loop in `lifo_push_slow`.
    #[inline]
    fn lifo_push(&self, i: u32, from: u64) -> Result<Result<(), u64>, PoolError> {
        let word = &self.meta(i).word;
        let now = word.load(Ordering::Acquire);
        if now != from || state_of(from) == FREE {
            return Ok(Err(now));
        }
        let head = &self.control().stack;
        let h = head.load(Ordering::Acquire);
        // The block taken last is given back first (the LIFO way): the head
        // still says "popped" it, and the block is this one, held through
        // `from`, so that mark is settled and the block below it is `next`
        // already. Nothing to read or write before the CAS.
        let popped_this = (h >> MARK_SHIFT) & 0xFF >= MARK_POPPED && h as u32 == i + 1;
        let top = if popped_this {
            Ok(Some(0))
        } else {
            self.lifo_settle(h)
        };
        if let Ok(Some(top)) = top {
            if top <= self.inner.blocks {
                if !popped_this {
                    self.meta(i).next.store(top, Ordering::Relaxed);
                }
                if self.lifo_link(i, from, h) {
                    return Ok(Ok(()));
                }
            }
        }
        self.lifo_push_slow(i, from)
    }

    #[cold]
    #[inline(never)]
    fn lifo_push_slow(&self, i: u32, from: u64) -> Result<Result<(), u64>, PoolError> {
        let word = &self.meta(i).word;
        let now = word.load(Ordering::Acquire);
        if now != from || state_of(from) == FREE {
            return Ok(Err(now));
        }
        let head = &self.control().stack;
        loop {
            let h = head.load(Ordering::Acquire);
            let Some(top) = self.lifo_settle(h)? else {
                continue;
            };
            if top > self.inner.blocks {
                return Err(self.corrupted(format!("the free list points at block {}", top - 1)));
            }
            self.meta(i).next.store(top, Ordering::Relaxed);
            if self.lifo_link(i, from, h) {
                return Ok(Ok(()));
            }
        }
    }

    /// The decisive step of a LIFO give-back of block `i` (held through
    /// `from`, its `next` already set): swing the head from `h` to the block,
    /// marked "pushed", then settle the block's word to free (which the next
    /// operation also does if this process dies in between). False when the
    /// head moved on.
    #[inline(always)]
    fn lifo_link(&self, i: u32, from: u64, h: u64) -> bool {
        let tag = (h >> TAG_SHIFT).wrapping_add(1);
        self.crash_point();
        // SYNC POINT: Release publishes the link, and the bytes written
        // while the block was held, to the next taker.
        if self
            .control()
            .stack
            .compare_exchange(
                h,
                head_word(tag, MARK_PUSHED, i + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        self.crash_point();
        let _ = self.meta(i).word.compare_exchange(
            from,
            next_word(from, FREE, 0),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        true
    }

    fn lifo_walk(&self) -> Result<Vec<u32>, PoolError> {
        self.lifo_settle_head()?;
        let h = self.control().stack.load(Ordering::Acquire);
        let mut link = self.lifo_settle(h)?.unwrap_or(h as u32);
        let mut seen = vec![false; self.inner.blocks as usize];
        let mut listed = Vec::new();
        while link != 0 {
            if link > self.inner.blocks {
                return Err(self.corrupted(format!("the free list points at block {}", link - 1)));
            }
            let i = link - 1;
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(self.corrupted(format!("the free list has a cycle through block {i}")));
            }
            listed.push(i);
            link = self.meta(i).next.load(Ordering::Relaxed);
        }
        Ok(listed)
    }
}
