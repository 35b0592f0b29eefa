//! `shm inspect`: decode this project's structures in a segment, read-only.

use std::io::{self, Write};

use serde::Serialize;
use shm_segment::{Access, Header, Kind, Region};

use crate::ops;
use crate::output::Render;
use crate::spec::Spec;

/// What a segment holds.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) target: String,
    pub(crate) kind: String,
    pub(crate) layout_version: u32,
    pub(crate) elem_size: u32,
    pub(crate) capacity: u64,
    pub(crate) total_size: u64,
    pub(crate) creator_pid: u32,
    pub(crate) creator_alive: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ring: Option<RingPart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pool: Option<PoolPart>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RingPart {
    pub(crate) kind: String,
    pub(crate) capacity: u64,
    pub(crate) head: u64,
    pub(crate) tail: u64,
    pub(crate) len: u64,
    pub(crate) fill_percent: f64,
    pub(crate) blocking: bool,
    pub(crate) producer_pid: Option<u32>,
    pub(crate) consumer_pid: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PoolPart {
    pub(crate) blocks: usize,
    pub(crate) block_size: usize,
    pub(crate) free: usize,
    pub(crate) held: usize,
    /// Blocks queued in the pool's channel queue.
    pub(crate) queued: usize,
    /// Blocks handed on as ids, not claimed yet.
    pub(crate) in_transit: usize,
    /// Held blocks whose owner is gone (what `reclaim_dead` would give back).
    pub(crate) dead: usize,
    /// `(pid, blocks held)`.
    pub(crate) owners: Vec<(u32, usize)>,
}

fn ring_part(info: shm_ring::RingInfo) -> RingPart {
    RingPart {
        kind: info.kind.to_string(),
        capacity: info.capacity,
        head: info.head,
        tail: info.tail,
        len: info.len(),
        fill_percent: info.len() as f64 * 100.0 / info.capacity.max(1) as f64,
        blocking: info.blocking,
        producer_pid: info.producer.map(|p| p.pid),
        consumer_pid: info.consumer.map(|p| p.pid),
    }
}

/// A channel's queue, in the ring's shape (a queue of block ids between
/// senders and receivers, with no roles).
fn queue_part(q: shm_mempool::QueueInfo) -> RingPart {
    RingPart {
        kind: "channel queue".into(),
        capacity: q.capacity as u64,
        head: q.head,
        tail: q.tail,
        len: q.len as u64,
        fill_percent: q.len as f64 * 100.0 / q.capacity.max(1) as f64,
        blocking: q.blocking,
        producer_pid: None,
        consumer_pid: None,
    }
}

fn pool_part(stats: shm_mempool::PoolStats) -> PoolPart {
    PoolPart {
        blocks: stats.blocks,
        block_size: stats.block_size,
        free: stats.free,
        held: stats.held,
        queued: stats.queued,
        in_transit: stats.in_transit,
        dead: stats.dead,
        owners: stats.by_owner,
    }
}

/// Why `inspect` could not decode a segment.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Opening or reading the segment, or its header.
    #[error(transparent)]
    Segment(#[from] shm_segment::Error),
    /// The header says ring, the ring's own header disagrees.
    #[error("inspect {target}: {source}")]
    Ring {
        target: String,
        #[source]
        source: shm_ring::RingError,
    },
    /// The header says pool or channel, the pool's own header disagrees.
    #[error("inspect {target}: {source}")]
    Pool {
        target: String,
        #[source]
        source: shm_mempool::PoolError,
    },
}

/// Opens the target read-only and decodes its header and state: in the
/// mapping of a System V segment, in a copy of a POSIX one (see `ops::Opened`).
pub(crate) fn run(target: &Spec) -> Result<Report, Error> {
    let opened = ops::open(target, Access::ReadOnly, "inspect")?;
    let copy = opened.region(None)?;
    let region: &dyn Region = &*copy;
    let info = Header::read(&region)?;
    let ring_err = |source| Error::Ring {
        target: target.to_string(),
        source,
    };
    let pool_err = |source| Error::Pool {
        target: target.to_string(),
        source,
    };
    let (ring, pool) = match info.kind {
        Kind::SPSC_RING | Kind::MPMC_RING => (
            Some(ring_part(shm_ring::inspect(&region).map_err(ring_err)?)),
            None,
        ),
        Kind::MEMPOOL => (
            None,
            Some(pool_part(
                shm_mempool::pool::inspect(&region).map_err(pool_err)?,
            )),
        ),
        Kind::CHANNEL => {
            let chan = shm_mempool::inspect_channel(&region).map_err(pool_err)?;
            (Some(queue_part(chan.queue)), Some(pool_part(chan.pool)))
        }
        _ => (None, None),
    };
    Ok(Report {
        target: target.to_string(),
        kind: info.kind.to_string(),
        layout_version: info.version,
        elem_size: info.elem_size,
        capacity: info.capacity,
        total_size: info.total_size,
        creator_pid: info.creator.pid,
        creator_alive: info.creator.is_alive(),
        ring,
        pool,
    })
}

impl Render for Report {
    fn render(&self, out: &mut dyn Write) -> io::Result<()> {
        let r = self;
        writeln!(
            out,
            "{}: {} (layout v{})",
            r.target, r.kind, r.layout_version
        )?;
        writeln!(
            out,
            "  created by pid {} ({}), {} bytes",
            r.creator_pid,
            if r.creator_alive { "alive" } else { "gone" },
            r.total_size
        )?;
        if let Some(ring) = &r.ring {
            writeln!(
                out,
                "  {}: {} of {} slots used ({:.1}%), head {} tail {}, {}",
                if ring.kind == "channel queue" {
                    "queue"
                } else {
                    "ring"
                },
                ring.len,
                ring.capacity,
                ring.fill_percent,
                ring.head,
                ring.tail,
                if ring.blocking {
                    "futex blocking"
                } else {
                    "polling"
                }
            )?;
            if ring.kind == "spsc-ring" {
                let who = |p: Option<u32>| p.map_or("none".to_owned(), |p| format!("pid {p}"));
                writeln!(
                    out,
                    "  producer {}, consumer {}",
                    who(ring.producer_pid),
                    who(ring.consumer_pid)
                )?;
            }
        }
        if let Some(pool) = &r.pool {
            writeln!(
                out,
                "  pool: {} blocks of {} bytes: {} free, {} held, {} queued, {} in transit",
                pool.blocks, pool.block_size, pool.free, pool.held, pool.queued, pool.in_transit
            )?;
            for (pid, n) in &pool.owners {
                writeln!(out, "    pid {pid} holds {n}")?;
            }
            if pool.dead > 0 {
                writeln!(
                    out,
                    "    {} held by processes that are gone (reclaim_dead gives them back)",
                    pool.dead
                )?;
            }
        }
        if r.ring.is_none() && r.pool.is_none() {
            writeln!(
                out,
                "  element size {}, capacity {}",
                r.elem_size, r.capacity
            )?;
        }
        Ok(())
    }
}
