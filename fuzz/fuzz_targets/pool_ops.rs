//! Fuzz bytes as a sequence of pool and channel operations on a `Channel`
//! in a `HeapRegion` (two handles: the creator and a second `attach`),
//! checked step by step against a model: the free list as a queue (the
//! channel's pool hands out free blocks first in, first out), the blocks
//! held through guards, the ids in transit (`into_id`), the queue of sent
//! ids, and every block's bytes and `used` count.
//!
//! Byte 0 picks the set-up: bits 0-2 the block count (1 to 8), bits 3-4 the
//! block size (1, 64, 100 or 200 bytes, rounded up to 64, 64, 128, 256), bit
//! 5 futex wake-ups (a blocking channel). Then each operation takes an opcode byte (low
//! 4 bits: the operation, bit 4: the handle) and an argument byte. After
//! every step both handles' `stats()` and `check()` must equal the model;
//! blocks that come out of the pool must hold the bytes last written into
//! them; `put` and `from_id` take only ids in transit, and a free block, a
//! guarded one (a second claim) or an out-of-range id must be a typed error
//! that changes nothing. ASan (on by default in `cargo fuzz`) catches any
//! access outside the region.
#![no_main]

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shm_mempool::{Block, BlockId, BlockState, Channel, ChannelOptions, PoolError, RecvError};
use shm_segment::{HeapRegion, ProcessId, Region};

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
}

struct Model {
    blocks: u32,
    size: usize,
    /// Free blocks as a queue: `front()` is what `get` returns next, and a
    /// block given back goes to the back.
    free: VecDeque<u32>,
    ids: BTreeSet<u32>,
    queue: VecDeque<u32>,
    mem: Vec<Vec<u8>>,
    used: Vec<usize>,
}

impl Model {
    /// An id for `put`/`from_id` picked by `arg`, and the state the pool
    /// must report for it (`None`: in transit, so the call succeeds;
    /// `Some(None)`: out of range; `Some(Some(state))`: wrong state).
    /// `guarded`: the ids of the blocks held through guards.
    fn pick(&self, arg: u8, guarded: Vec<u32>) -> (BlockId, Option<Option<BlockState>>) {
        let k = usize::from(arg >> 2);
        let nth = |v: Vec<u32>| (!v.is_empty()).then(|| v[k % v.len()]);
        let choice = match arg & 3 {
            0 => nth(self.ids.iter().copied().collect()).map(|id| (id, None)),
            1 => nth(self.free.iter().copied().collect()).map(|id| (id, Some(Some(BlockState::Free)))),
            2 => nth(guarded).map(|id| (id, Some(Some(BlockState::Held)))),
            _ => None,
        };
        match choice {
            Some((id, want)) => (BlockId(id), want),
            None => {
                let id = if arg & 0x80 != 0 {
                    u32::MAX
                } else {
                    self.blocks + u32::from(arg >> 2 & 3)
                };
                (BlockId(id), Some(None))
            }
        }
    }
}

fn bytes_of(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ 0xA5)
        .collect()
}

fn check_bytes<R: Region>(block: &Block<'_, R>, model: &Model) {
    let mut bytes = vec![0; model.size];
    block.read_at(0, &mut bytes).unwrap();
    assert!(
        bytes == model.mem[block.id().0 as usize],
        "block {} does not hold what was last written into it",
        block.id().0
    );
}

fn check_refusal(err: PoolError, id: BlockId, want: Option<BlockState>, blocks: u32) {
    match (err, want) {
        (
            PoolError::WrongState {
                id: got,
                expected: BlockState::InTransit,
                found,
                ..
            },
            Some(state),
        ) => assert_eq!((got, found), (id, state)),
        (
            PoolError::OutOfRange {
                id: got, blocks: b, ..
            },
            None,
        ) => {
            assert_eq!((got, b), (id, blocks as usize))
        }
        (other, want) => panic!("id {}: got {other:?}, expected {want:?}", id.0),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    let blocks = 1 + u32::from(setup & 7);
    let asked = [1usize, 64, 100, 200][usize::from(setup >> 3 & 3)];
    let opts = ChannelOptions::new().blocking(setup & 32 != 0);
    let region = HeapRegion::new(Channel::required_size(blocks as usize, asked));
    let created = Channel::create_with(&region, blocks as usize, asked, opts).unwrap();
    let attached = Channel::attach(&region).unwrap();
    let chans = [&created, &attached];
    let size = created.pool().block_size();
    assert_eq!(size, asked.next_multiple_of(64));
    let mut model = Model {
        blocks,
        size,
        free: (0..blocks).collect(),
        ids: BTreeSet::new(),
        queue: VecDeque::new(),
        mem: vec![vec![0; size]; blocks as usize],
        used: vec![0; blocks as usize],
    };
    // Each guard with the handle it came from (a block is sent through it).
    let mut guards: Vec<(usize, Block<'_, _>)> = Vec::new();
    let me = ProcessId::current().pid;

    while let Some(op) = input.byte() {
        let arg = input.byte().unwrap_or(0);
        let h = usize::from(op >> 4 & 1);
        let (ch, pool) = (chans[h], chans[h].pool());
        let g = usize::from(arg);
        match op & 15 {
            0 | 1 => match (pool.get(), model.free.pop_front()) {
                (Ok(block), Some(id)) => {
                    assert_eq!(block.id(), BlockId(id), "not the head of the free queue");
                    assert_eq!(block.used(), 0);
                    model.used[id as usize] = 0;
                    check_bytes(&block, &model);
                    if op & 15 == 1 {
                        model.ids.insert(block.into_id().unwrap().0);
                    } else {
                        guards.push((h, block));
                    }
                }
                (Err(PoolError::Exhausted { blocks: b, .. }), None) => assert_eq!(b, blocks as usize),
                (got, want) => panic!("get gave {got:?}, the model {want:?}"),
            },
            2 if !guards.is_empty() => {
                let (_, block) = guards.swap_remove(g % guards.len());
                model.free.push_back(block.id().0);
            }
            3 if !guards.is_empty() => {
                let (_, block) = guards.swap_remove(g % guards.len());
                model.ids.insert(block.into_id().unwrap().0);
            }
            4 => {
                let (id, want) = model.pick(arg, guards.iter().map(|(_, b)| b.id().0).collect());
                match (pool.put(id), want) {
                    (Ok(()), None) => {
                        model.ids.remove(&id.0);
                        model.free.push_back(id.0);
                    }
                    (Err(e), Some(state)) => check_refusal(e, id, state, blocks),
                    (got, want) => panic!("put({}) gave {got:?}, want {want:?}", id.0),
                }
            }
            5 => {
                let (id, want) = model.pick(arg, guards.iter().map(|(_, b)| b.id().0).collect());
                match (pool.from_id(id), want) {
                    (Ok(block), None) => {
                        assert_eq!(block.used(), model.used[id.0 as usize]);
                        check_bytes(&block, &model);
                        model.ids.remove(&id.0);
                        guards.push((h, block));
                    }
                    (Err(e), Some(state)) => check_refusal(e, id, state, blocks),
                    (got, want) => panic!("from_id({}) gave {got:?}, want {want:?}", id.0),
                }
            }
            6 | 7 if !guards.is_empty() => {
                // Write `len` bytes at `offset`, both from the next byte too.
                let extra = usize::from(input.byte().unwrap_or(0));
                let block = &guards[g % guards.len()].1;
                let offset = (usize::from(arg) * 3) % (size + 8);
                let len = extra % 80;
                let data = bytes_of(len, arg);
                let got = block.write_at(offset, &data);
                if offset + len <= size {
                    got.unwrap();
                    model.mem[block.id().0 as usize][offset..offset + len].copy_from_slice(&data);
                } else {
                    assert!(got.is_err(), "a write past the block's end succeeded");
                }
                if op & 15 == 7 {
                    block.set_used(usize::from(arg) * 2);
                    model.used[block.id().0 as usize] = (usize::from(arg) * 2).min(size);
                }
                check_bytes(block, &model);
            }
            8 | 9 if !guards.is_empty() => {
                let (from, block) = guards.swap_remove(g % guards.len());
                let id = block.id().0;
                // The queue has a cell for every block: a send never fails.
                match chans[from].send(block) {
                    Ok(()) => model.queue.push_back(id),
                    Err(e) => panic!("send of block {id}: {e}"),
                }
            }
            10 => {
                let len = usize::from(arg) + usize::from(input.byte().unwrap_or(0));
                let data = bytes_of(len, arg);
                match (ch.send_bytes(&data), model.free.front().copied()) {
                    (Ok(()), Some(id)) if len <= size => {
                        model.free.pop_front();
                        model.mem[id as usize][..len].copy_from_slice(&data);
                        model.used[id as usize] = len;
                        model.queue.push_back(id);
                    }
                    // Too long: the block was taken and given back (to the back).
                    (Err(PoolError::Segment(_)), Some(id)) if len > size => {
                        model.free.pop_front();
                        model.free.push_back(id);
                        model.used[id as usize] = 0;
                    }
                    (Err(PoolError::Exhausted { .. }), None) => {}
                    (got, next) => panic!("send_bytes({len}) gave {got:?}, next free {next:?}"),
                }
            }
            11 | 12 => {
                let got = if op & 15 == 11 {
                    ch.recv()
                } else {
                    ch.recv_blocking(Duration::ZERO)
                };
                match (got, model.queue.pop_front()) {
                    (Ok(block), Some(id)) => {
                        assert_eq!(block.id(), BlockId(id), "not FIFO");
                        assert_eq!(block.used(), model.used[id as usize]);
                        check_bytes(&block, &model);
                        guards.push((h, block));
                    }
                    (Err(RecvError::Empty), None) => {}
                    (got, want) => panic!("recv gave {got:?}, the model {want:?}"),
                }
            }
            13 => assert!(pool.reclaim_dead().unwrap().is_empty()),
            14 => {
                let in_transit: Vec<BlockId> = model
                    .queue
                    .iter()
                    .chain(&model.ids)
                    .map(|&i| BlockId(i))
                    .collect();
                assert!(pool.recover_orphans(&in_transit).unwrap().is_empty());
            }
            _ => {}
        }

        let held = guards.len();
        for ch in chans {
            let s = ch.pool().stats();
            assert_eq!(
                (s.free, s.held, s.in_transit, s.queued, s.dead, s.unknown),
                (
                    model.free.len(),
                    held,
                    model.ids.len(),
                    model.queue.len(),
                    0,
                    0
                )
            );
            let owners = if held > 0 { vec![(me, held)] } else { vec![] };
            assert_eq!(s.by_owner, owners);
            assert_eq!(ch.pool().check().unwrap(), model.free.len());
            assert_eq!(ch.len(), model.queue.len());
        }
    }
});
