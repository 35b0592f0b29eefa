//! `cargo xtask bench --criterion [--quick] [--no-run]`: runs the criterion
//! benches that compare our layers with their peers (the package
//! `shm-benches`, in `benches/`), then turns criterion's estimates into a
//! generated section of `docs/benchmarks.md` (between [`START`] and [`END`])
//! and a bar chart of the ratios, `docs/benchmarks-criterion.svg`. (Plain
//! `cargo xtask bench` runs the goals harness instead: see `goals.rs`.)
//!
//! - `--quick`: short warm-up and measurement (`--warm-up-time 0.5
//!   --measurement-time 1`), for a smoke run; the numbers are noisier.
//! - `--no-run`: do not run the benches, only report what
//!   `target/criterion` already holds.
//!
//! Each case's time is criterion's point estimate of the time per iteration:
//! the slope of the linear regression where criterion computed one, else the
//! mean. Within a group, the ratio of a pair is *peer time / our time*: above
//! 1, ours is faster. Which case is ours and which are its peers is the
//! explicit table [`PAIRINGS`], taken from the function names the bench files
//! use.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use super::{check_leaks, root, run, segments, Result};

const BENCHES: [&str; 3] = ["segment", "ring", "mempool"];
const QUICK_ARGS: [&str; 4] = ["--warm-up-time", "0.5", "--measurement-time", "1"];
const START: &str = "<!-- xtask-bench:start -->";
const END: &str = "<!-- xtask-bench:end -->";

/// One of our cases in a group and the peers it is compared with. A peer is
/// compared with our case of the same parameter (size, shape, placement)
/// only; where a group has no parameter, both have none.
struct Pairing {
    group: &'static str,
    ours: &'static str,
    peers: &'static [&'static str],
}

const fn pair(group: &'static str, ours: &'static str, peers: &'static [&'static str]) -> Pairing {
    Pairing { group, ours, peers }
}

/// Ours and peers per group, from the bench files' function names.
///
/// - `benches/segment.rs`: ours are `shm`, `shm_reserve_false`, `write_at`,
///   `read_at`, `read_at_page_offsets_0_to_0`; peers are raw libc
///   (`libc_minimal`, `libc_equivalent`) and `memcpy*`.
/// - `benches/ring.rs`: ours start with `ours_`; peers are rtrb, crossbeam,
///   iceoryx2, `std_sync_channel`, pipes and Unix stream sockets.
///   `ours_threads*` in `spsc_processes` is our own reference (the consumer
///   on a thread), with no peer.
/// - `benches/mempool.rs`: ours are `mempool_get_put` and `mempool_channel`;
///   peers are `box_64`, `pipe`, `iceoryx2`.
///
/// A case in none of these is still listed, as "not paired".
const PAIRINGS: &[Pairing] = &[
    // benches/segment.rs
    pair(
        "posix_lifecycle",
        "shm",
        &["libc_minimal", "libc_equivalent"],
    ),
    pair("posix_lifecycle", "shm_reserve_false", &["libc_minimal"]),
    pair(
        "sysv_lifecycle",
        "shm",
        &["libc_minimal", "libc_equivalent"],
    ),
    pair("copy", "write_at", &["memcpy"]),
    pair("copy", "read_at", &["memcpy"]),
    pair(
        "copy_alignment",
        "read_at_page_offsets_0_to_0",
        &["memcpy_page_offsets_0_to_16"],
    ),
    // benches/ring.rs
    pair("spsc_threads", "ours_single", &["rtrb_single"]),
    pair("spsc_threads", "ours_batch32", &["rtrb_batch32"]),
    pair(
        "spsc_processes",
        "ours_process",
        &["pipe_process", "unix_stream_process"],
    ),
    pair(
        "spsc_processes",
        "ours_process_batch32",
        &["pipe_process", "unix_stream_process"],
    ),
    pair("spsc_processes", "ours_threads", &[]),
    pair("spsc_processes", "ours_threads_batch32", &[]),
    pair(
        "round_trip",
        "ours_process",
        &["iceoryx2_process", "pipe_process", "unix_stream_process"],
    ),
    pair("round_trip", "ours_threads", &["rtrb_threads"]),
    pair(
        "mpmc",
        "ours_single",
        &["crossbeam_single", "std_sync_channel"],
    ),
    pair(
        "mpmc",
        "ours_batch32",
        &["crossbeam_single", "std_sync_channel"],
    ),
    pair("blocking_round_trip", "ours_process", &["pipe_process"]),
    // benches/mempool.rs
    pair("alloc_free_64", "mempool_get_put", &["box_64"]),
    pair("alloc_free_64_2_threads", "mempool_get_put", &["box_64"]),
    pair(
        "message_4KiB_process",
        "mempool_channel",
        &["pipe", "iceoryx2"],
    ),
    pair(
        "message_64KiB_process",
        "mempool_channel",
        &["pipe", "iceoryx2"],
    ),
];

/// The order of the groups in the report: the benches' own order.
const GROUP_ORDER: &[&str] = &[
    "posix_lifecycle",
    "sysv_lifecycle",
    "copy",
    "copy_alignment",
    "spsc_threads",
    "spsc_processes",
    "round_trip",
    "mpmc",
    "blocking_round_trip",
    "alloc_free_64",
    "alloc_free_64_2_threads",
    "message_4KiB_process",
    "message_64KiB_process",
];

/// One criterion case: `group/name[/param]`, and its time per iteration.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    param: Option<String>,
    ns: f64,
}

impl Case {
    fn label(&self) -> String {
        match &self.param {
            Some(p) => format!("{}/{p}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A row of a group's table: our case (or an unpaired one) and maybe a peer.
#[derive(Debug)]
struct Row {
    case: Case,
    peer: Option<Case>,
}

impl Row {
    /// Peer time / our time.
    fn ratio(&self) -> Option<f64> {
        self.peer.as_ref().map(|p| p.ns / self.case.ns)
    }
}

pub(crate) fn bench(args: &[String]) -> Result {
    let quick = args.iter().any(|a| a == "--quick");
    let no_run = args.iter().any(|a| a == "--no-run");
    if let Some(bad) = args
        .iter()
        .skip(1)
        .find(|a| *a != "--quick" && *a != "--no-run" && *a != "--criterion")
    {
        return Err(format!("bench: unknown argument {bad}"));
    }
    // The benches are the package shm-benches (`benches/`), whose
    // dependencies are the peers; no other package builds them.
    let mut cargo_args: Vec<&str> = vec!["bench", "-p", "shm-benches"];
    for b in BENCHES {
        cargo_args.extend(["--bench", b]);
    }
    if quick {
        cargo_args.push("--");
        cargo_args.extend(QUICK_ARGS);
    }
    let command = format!("cargo {}", cargo_args.join(" "));

    let started = SystemTime::now();
    if !no_run {
        let before = segments();
        run("cargo", &cargo_args, &[])?;
        check_leaks(&before)?;
    }
    // After a run, estimates older than it are of cases the benches no longer
    // have (or did not run): leave them out.
    let since = (!no_run).then_some(started);
    let groups = read_criterion(&root().join("target/criterion"), since)?;
    if groups.is_empty() {
        return Err("no estimates under target/criterion: run without --no-run".into());
    }
    let tables = pair_up(&groups);

    let date = utc_date(SystemTime::now());
    let how = if no_run {
        format!(
            "`cargo xtask bench --criterion --no-run`: the estimates already under `target/criterion`, \
             from earlier runs of `{command}` or of single benches"
        )
    } else if quick {
        format!("`cargo xtask bench --criterion --quick`, which runs `{command}`")
    } else {
        format!("`cargo xtask bench --criterion`, which runs `{command}`")
    };
    let section = render_section(&date, &how, &tables);

    let md = root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&md).map_err(|e| format!("{}: {e}", md.display()))?;
    let text = splice(&text, &section)?;
    std::fs::write(&md, text).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("\nwrote the generated section of {}", md.display());

    let svg = root().join("docs/benchmarks-criterion.svg");
    chart(&svg, &date, &tables)?;
    println!("wrote {}", svg.display());
    Ok(())
}

/// Every `new/benchmark.json` + `new/estimates.json` under `dir`, by group
/// name, newer than `since` where given.
fn read_criterion(dir: &Path, since: Option<SystemTime>) -> Result<BTreeMap<String, Vec<Case>>> {
    let mut found = Vec::new();
    walk(dir, &mut found);
    let mut groups: BTreeMap<String, Vec<Case>> = BTreeMap::new();
    for new in found {
        let estimates = new.join("estimates.json");
        if let Some(since) = since {
            let modified = std::fs::metadata(&estimates).and_then(|m| m.modified());
            if modified.map_or(true, |m| m < since) {
                continue;
            }
        }
        let bench: Value = read_json(&new.join("benchmark.json"))?;
        let est: Value = read_json(&estimates)?;
        let group = bench["group_id"].as_str().unwrap_or_default().to_owned();
        let function = bench["function_id"].as_str().map(str::to_owned);
        let value = bench["value_str"].as_str().map(str::to_owned);
        // `BenchmarkId::from_parameter(x)` has no function, only a value.
        let (name, param) = match (function, value) {
            (Some(f), v) => (f, v),
            (None, Some(v)) => (v, None),
            (None, None) => (String::new(), None),
        };
        let ns = est["slope"]["point_estimate"]
            .as_f64()
            .or_else(|| est["mean"]["point_estimate"].as_f64())
            .ok_or_else(|| format!("{}: no slope or mean", estimates.display()))?;
        groups
            .entry(group)
            .or_default()
            .push(Case { name, param, ns });
    }
    Ok(groups)
}

/// The `new` folders holding a `benchmark.json` under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        if e.file_name() == "new" && path.join("benchmark.json").is_file() {
            out.push(path);
        } else if e.file_name() != "base" && e.file_name() != "change" {
            walk(&path, out);
        }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Natural order of parameters: "4KiB" < "64KiB" < "1MiB", "1x1" < "2x2".
fn param_key(p: &Option<String>) -> (u64, String) {
    let Some(p) = p else {
        return (0, String::new());
    };
    let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    let rest = &p[digits.len()..];
    let scale = if rest.starts_with("KiB") {
        1 << 10
    } else if rest.starts_with("MiB") {
        1 << 20
    } else if rest.starts_with("GiB") {
        1 << 30
    } else {
        1
    };
    (n * scale, p.clone())
}

/// Each group's rows, in [`GROUP_ORDER`] (then any other group by name).
fn pair_up(groups: &BTreeMap<String, Vec<Case>>) -> Vec<(String, Vec<Row>)> {
    let mut names: Vec<&String> = groups.keys().collect();
    names.sort_by_key(|g| {
        (
            GROUP_ORDER
                .iter()
                .position(|o| o == g)
                .unwrap_or(GROUP_ORDER.len()),
            (*g).clone(),
        )
    });
    let mut out = Vec::new();
    for group in names {
        let mut cases = groups[group].clone();
        cases.sort_by_key(|a| param_key(&a.param));
        let pairings: Vec<&Pairing> = PAIRINGS.iter().filter(|p| p.group == *group).collect();
        let mut rows = Vec::new();
        let mut used = vec![false; cases.len()];
        // Our cases in the order of the pairings, each parameter in order.
        for p in &pairings {
            for (case_index, case) in cases.iter().enumerate() {
                if case.name != p.ours {
                    continue;
                }
                used[case_index] = true;
                let peers: Vec<(usize, &Case)> = p
                    .peers
                    .iter()
                    .filter_map(|peer| {
                        cases
                            .iter()
                            .enumerate()
                            .find(|(_, c)| c.name == *peer && c.param == case.param)
                    })
                    .collect();
                if peers.is_empty() {
                    rows.push(Row {
                        case: case.clone(),
                        peer: None,
                    });
                }
                for (i, peer) in peers {
                    used[i] = true;
                    rows.push(Row {
                        case: case.clone(),
                        peer: Some(peer.clone()),
                    });
                }
            }
        }
        // Whatever no pairing names, or a peer without our case beside it.
        for (i, case) in cases.iter().enumerate() {
            if !used[i] {
                rows.push(Row {
                    case: case.clone(),
                    peer: None,
                });
            }
        }
        out.push((group.clone(), rows));
    }
    out
}

fn is_ours(group: &str, name: &str) -> bool {
    PAIRINGS.iter().any(|p| p.group == group && p.ours == name)
}

/// A time in ns with 3 significant digits and a unit.
pub(crate) fn time(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {unit}")
}

fn render_section(date: &str, how: &str, tables: &[(String, Vec<Row>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Latest generated run, {date}");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Generated by `cargo xtask bench` (`xtask/src/bench.rs`); everything between \
         the `xtask-bench` markers is rewritten on each run, the hand-written \
         sections below are not. Chart: [`benchmarks-criterion.svg`](benchmarks-criterion.svg)."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "| | |");
    let _ = writeln!(s, "|---|---|");
    let _ = writeln!(s, "| date (UTC) | {date} |");
    let _ = writeln!(s, "| CPU | `{}` |", cpu_model());
    let _ = writeln!(s, "| cores | {} |", cores());
    let _ = writeln!(s, "| kernel | Linux {} |", kernel());
    let _ = writeln!(s, "| command | {how} |");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Times are criterion's point estimates per iteration (the regression slope, \
         else the mean). Ratio = peer time / our time: above 1, ours is faster. \
         Cases without a peer are listed for reference. One run on a possibly \
         shared machine: read the ratios, and the hand-written sections for the \
         goals and the analysis."
    );
    for (group, rows) in tables {
        let _ = writeln!(s);
        let _ = writeln!(s, "### `{group}`");
        let _ = writeln!(s);
        let _ = writeln!(s, "| case | time | peer | peer time | ratio |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for row in rows {
            let ours = is_ours(group, &row.case.name);
            let case = if ours {
                format!("`{}`", row.case.label())
            } else {
                format!("`{}` (not paired)", row.case.label())
            };
            let (peer, peer_time, ratio) = match (&row.peer, row.ratio()) {
                (Some(p), Some(r)) => (format!("`{}`", p.label()), time(p.ns), format!("{r:.2}x")),
                _ => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
            };
            let _ = writeln!(
                s,
                "| {case} | {} | {peer} | {peer_time} | {ratio} |",
                time(row.case.ns)
            );
        }
    }
    s
}

/// `text` with the generated section between the markers, which are added
/// after the intro paragraph (before the first `---` rule or `## `
/// heading) where missing. Nothing outside the markers changes.
fn splice(text: &str, section: &str) -> Result<String> {
    splice_between(text, START, END, &["\n---\n", "\n## "], section)
}

/// `text` with `section` between the markers `start` and `end`. Where both
/// are missing they are added before the first of `before` found in `text`
/// (at the end if none is); one without the other, or both in the wrong
/// order, is an error. Nothing outside the markers changes.
pub(crate) fn splice_between(
    text: &str,
    start: &str,
    end: &str,
    before: &[&str],
    section: &str,
) -> Result<String> {
    let block = format!("{start}\n\n{section}\n{end}");
    match (text.find(start), text.find(end)) {
        (Some(a), Some(b)) if a < b => {
            Ok(format!("{}{block}{}", &text[..a], &text[b + end.len()..]))
        }
        (None, None) => {
            let at = before
                .iter()
                .filter_map(|m| text.find(m))
                .min()
                .map_or(text.len(), |i| i + 1);
            Ok(format!("{}{block}\n\n{}", &text[..at], &text[at..]))
        }
        _ => Err(format!(
            "docs/benchmarks.md has one of the markers {start} / {end} but not the other, \
             or in the wrong order"
        )),
    }
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub(crate) fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// `YYYY-MM-DD` in UTC (days to civil date, Howard Hinnant's algorithm).
pub(crate) fn utc_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Horizontal bars, one per (our case, peer) pair, from 1 to the ratio on a
/// log axis clipped to [1/100, 100]: right of 1 (green), ours is faster.
fn chart(path: &Path, date: &str, tables: &[(String, Vec<Row>)]) -> Result {
    let bars: Vec<(String, f64)> = tables
        .iter()
        .flat_map(|(group, rows)| {
            rows.iter().filter_map(move |r| {
                let ratio = r.ratio()?;
                let peer = r.peer.as_ref()?;
                let param = r
                    .case
                    .param
                    .as_ref()
                    .map_or(String::new(), |p| format!(" [{p}]"));
                Some((
                    format!("{group}: {} vs {}{param}", r.case.name, peer.name),
                    ratio,
                ))
            })
        })
        .collect();
    if bars.is_empty() {
        return Err("no pair of ours and a peer to chart".into());
    }
    let (lo, hi) = (0.01f64, 100.0f64);
    let min = bars.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let x_lo = if min < 0.1 { lo } else { 0.1 };
    let x_hi = if max > 10.0 { hi } else { 10.0 };
    let n = bars.len();
    let height = 120 + 20 * n as u32;
    let root_area = SVGBackend::new(path, (1100, height)).into_drawing_area();
    draw(&root_area, date, &bars, x_lo, x_hi).map_err(|e| format!("chart: {e}"))?;
    root_area
        .present()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn draw(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    date: &str,
    bars: &[(String, f64)],
    x_lo: f64,
    x_hi: f64,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    area.fill(&WHITE)?;
    let n = bars.len() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("peer time / our time, {date} (log scale; > 1: ours faster)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(430)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (0..n).into_segmented())?;
    let labels: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if (0..n).contains(i) => labels
                .get((n - 1 - *i) as usize)
                .map_or(String::new(), |s| (*s).to_owned()),
            _ => String::new(),
        })
        .y_label_style(("monospace", 12))
        .x_desc("ratio")
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x}"))
        .draw()?;
    let green = RGBColor(60, 150, 80);
    let red = RGBColor(200, 70, 60);
    for (i, (_, ratio)) in bars.iter().enumerate() {
        // The first bar on top.
        let i = n - 1 - i as i32;
        let r = ratio.clamp(x_lo, x_hi);
        let color = if *ratio >= 1.0 { green } else { red };
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (1.0, SegmentValue::Exact(i)),
                (r, SegmentValue::Exact(i + 1)),
            ],
            color.mix(0.8).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{ratio:.2}"),
            // Inside the bar where it reaches the right edge.
            (
                if r * 1.6 > x_hi {
                    r / 1.6
                } else {
                    r.max(1.0) * 1.05
                },
                SegmentValue::CenterOf(i),
            ),
            ("sans-serif", 11),
        )))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n))],
        BLACK,
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_inserts_then_replaces() {
        let doc = "# B\n\nintro\n\n---\n\n## S\n\nhand\n";
        let once = splice(doc, "one\n").unwrap();
        assert!(once.starts_with("# B\n\nintro\n\n<!-- xtask-bench:start -->"));
        assert!(once.ends_with("---\n\n## S\n\nhand\n"));
        let twice = splice(&once, "two\n").unwrap();
        assert!(twice.contains("two") && !twice.contains("one"));
        assert_eq!(twice.matches(START).count(), 1);
        assert!(twice.ends_with("---\n\n## S\n\nhand\n"));
    }

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(utc_date(t), "2023-11-14");
    }
}
