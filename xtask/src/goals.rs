//! `cargo xtask bench [--quick] [--rounds N] [--no-run]`: runs the goals
//! harness (`benches/goals.rs`: ours and every peer of the goal
//! table, in interleaved rounds of one process) once, then writes its
//! results as the "Goals" section of `docs/benchmarks.md` (between
//! [`BEGIN`] and [`END`]) and the chart `docs/benchmarks.svg`. The rest of
//! `docs/benchmarks.md` is history and stays as it is.
//!
//! - `--quick`: the harness's smoke mode (2 short rounds); noisy numbers.
//! - `--rounds N`: N rounds instead of 5.
//! - `--no-run`: do not run the harness; report `target/goals.json` as the
//!   last run left it.
//!
//! The harness's JSON (`target/goals.json`) has one entry per row: our case,
//! the peer's, their median times per item, the ratio per round (peer /
//! ours for a throughput goal, ours / peer for a time goal) and its median,
//! min and max, the goal and whether the median meets it.

use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use super::bench::{cores, cpu_model, kernel, time, utc_date};
use super::{check_leaks, root, run, segments, Result};

pub(crate) const BEGIN: &str = "<!-- goals:begin -->";
pub(crate) const END: &str = "<!-- goals:end -->";

/// One row of the harness's results.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GoalRow {
    pub(crate) scenario: String,
    pub(crate) ours: String,
    pub(crate) peer_name: String,
    pub(crate) ours_ns: f64,
    pub(crate) peer_ns: f64,
    /// `true`: the ratio is ours / peer (lower is better).
    pub(crate) time_ratio: bool,
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) goal: String,
    pub(crate) goal_value: Option<f64>,
    pub(crate) met: Option<bool>,
    /// The row's floor case and its median ratio against the same peer, in
    /// the same run (see `Row::floor` in the harness).
    pub(crate) floor: Option<(String, f64)>,
    /// Whether the floor itself meets the goal.
    pub(crate) floor_met: Option<bool>,
}

impl GoalRow {
    /// A missed goal that the floor misses too: no implementation can meet
    /// it on this machine.
    pub(crate) fn beyond_the_floor(&self) -> bool {
        self.met == Some(false) && self.floor_met == Some(false)
    }

    /// The ratio as "how many times faster ours is" (above 1: faster),
    /// whatever form the goal uses; for the chart.
    fn speedup(&self, r: f64) -> f64 {
        if self.time_ratio {
            1.0 / r
        } else {
            r
        }
    }
}

/// What a harness run reported.
#[derive(Debug, Clone)]
pub(crate) struct GoalRun {
    pub(crate) quick: bool,
    pub(crate) rounds: u64,
    pub(crate) rows: Vec<GoalRow>,
}

pub(crate) fn goals(args: &[String]) -> Result {
    let mut quick = false;
    let mut no_run = false;
    let mut rounds: Option<String> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--no-run" => no_run = true,
            "--rounds" => {
                let n = it.next().ok_or("--rounds needs a number")?;
                n.parse::<u32>()
                    .map_err(|_| format!("--rounds needs a number, not {n}"))?;
                rounds = Some(n.clone());
            }
            other => return Err(format!("bench: unknown argument {other}")),
        }
    }
    let out = root().join("target/goals.json");
    let out_str = out.to_string_lossy().into_owned();
    let mut cargo_args: Vec<&str> = vec!["bench", "-p", "shm-benches", "--bench", "goals", "--"];
    if quick {
        cargo_args.push("--quick");
    }
    if let Some(r) = &rounds {
        cargo_args.extend(["--rounds", r]);
    }
    cargo_args.extend(["--out", &out_str]);
    let command = format!(
        "cargo {}",
        cargo_args.join(" ").replace(&out_str, "target/goals.json")
    );
    if !no_run {
        let before = segments();
        run("cargo", &cargo_args, &[])?;
        check_leaks(&before)?;
    }
    let text = std::fs::read_to_string(&out)
        .map_err(|e| format!("{}: {e} (run without --no-run)", out.display()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", out.display()))?;
    let results = parse(&json)?;

    let date = utc_date(
        std::fs::metadata(&out)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now()),
    );
    let how = if no_run {
        format!("`cargo xtask bench --no-run`: the last `{command}` run's `target/goals.json`")
    } else {
        format!(
            "`cargo xtask bench{}`, which runs `{command}`",
            if quick { " --quick" } else { "" }
        )
    };
    let section = render(&date, &how, &results);
    let md = root().join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&md).map_err(|e| format!("{}: {e}", md.display()))?;
    let doc = splice(&doc, &section)?;
    std::fs::write(&md, doc).map_err(|e| format!("{}: {e}", md.display()))?;
    println!("\nwrote the Goals section of {}", md.display());
    let svg = root().join("docs/benchmarks.svg");
    chart(&svg, &date, &results)?;
    println!("wrote {}", svg.display());
    let missed = results.rows.iter().filter(|r| r.met == Some(false)).count();
    let goals = results.rows.iter().filter(|r| r.met.is_some()).count();
    let beyond = results.rows.iter().filter(|r| r.beyond_the_floor()).count();
    println!(
        "goals met: {} of {goals}; beyond the floor: {beyond} of the {missed} missed",
        goals - missed
    );
    Ok(())
}

fn field<'a>(row: &'a Value, key: &str) -> Result<&'a Value> {
    row.get(key)
        .ok_or_else(|| format!("goals.json: a row without `{key}`"))
}

fn num(row: &Value, key: &str) -> Result<f64> {
    field(row, key)?
        .as_f64()
        .ok_or_else(|| format!("goals.json: `{key}` is not a number"))
}

fn text(row: &Value, key: &str) -> Result<String> {
    field(row, key)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("goals.json: `{key}` is not a string"))
}

/// The harness's JSON (version 1).
pub(crate) fn parse(json: &Value) -> Result<GoalRun> {
    if json["version"].as_u64() != Some(1) {
        return Err("goals.json: not version 1".into());
    }
    let rows = json["rows"]
        .as_array()
        .ok_or("goals.json: no `rows`")?
        .iter()
        .map(|r| {
            Ok(GoalRow {
                scenario: text(r, "scenario")?,
                ours: text(r, "ours")?,
                peer_name: text(r, "peer_name")?,
                ours_ns: num(r, "ours_ns")?,
                peer_ns: num(r, "peer_ns")?,
                time_ratio: text(r, "ratio_kind")? == "time",
                median: num(r, "ratio_median")?,
                min: num(r, "ratio_min")?,
                max: num(r, "ratio_max")?,
                goal: text(r, "goal")?,
                goal_value: r["goal_value"].as_f64(),
                met: r["met"].as_bool(),
                floor: r["floor"]
                    .as_str()
                    .zip(r["floor_ratio_median"].as_f64())
                    .map(|(id, ratio)| (id.to_string(), ratio)),
                floor_met: r["floor_met"].as_bool(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GoalRun {
        quick: json["quick"].as_bool().unwrap_or(false),
        rounds: json["rounds"].as_u64().unwrap_or(0),
        rows,
    })
}

pub(crate) fn render(date: &str, how: &str, run: &GoalRun) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Goals, {date}");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Generated by `cargo xtask bench` (`xtask/src/goals.rs`) from one run of \
         `benches/goals.rs`: our rings, pool and channel and their peers back to \
         back in one process, in {} interleaved rounds{}. Everything between the \
         `goals` markers is rewritten on each run; the sections below are history. \
         Chart: [`benchmarks.svg`](benchmarks.svg).",
        run.rounds,
        if run.quick {
            " of the quick smoke mode (short steps: noisy, not a measurement)"
        } else {
            ""
        }
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
    let met = run.rows.iter().filter(|r| r.met == Some(true)).count();
    let goals = run.rows.iter().filter(|r| r.met.is_some()).count();
    let beyond = run.rows.iter().filter(|r| r.beyond_the_floor()).count();
    let _ = writeln!(
        s,
        "**{met} of {goals} goals met; {beyond} of the other {} lie beyond the floor in this \
         run.** A row's floor is the least any implementation must do for it (one \
         cache line per direction for a round trip, a copy and one store for a \
         message), measured in the same rounds; a goal lies beyond the floor when the \
         floor, put in our place, misses it too.",
        goals - met
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Times are medians per item (message, round \
         trip, get + drop) over the rounds. The ratio is taken within each round and \
         given as its median (min–max over the rounds): for a \"≥\" goal it is peer \
         time / our time (above 1, ours is faster), for a \"≤\" goal our time / peer \
         time (below 1, ours is faster); a goal is met when the median meets it. \
         Rows marked \"report\" have no goal."
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| scenario | ours | peer | ours / item | peer / item | ratio | goal | |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in &run.rows {
        let form = if r.time_ratio {
            "ours/peer"
        } else {
            "peer/ours"
        };
        let verdict = match (&r.floor, r.met) {
            (_, Some(true)) => "**met**".to_string(),
            (Some((case, ratio)), Some(false)) if r.beyond_the_floor() => {
                format!("**missed**: beyond the floor (`{case}` {ratio:.2}×)")
            }
            (_, Some(false)) => "**missed**".to_string(),
            (_, None) => "—".to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {:.2}× ({:.2}–{:.2}) {form} | {} | {verdict} |",
            r.scenario,
            r.ours,
            r.peer_name,
            time(r.ours_ns),
            time(r.peer_ns),
            r.median,
            r.min,
            r.max,
            r.goal
        );
    }
    s
}

/// `text` with the Goals section between the markers, which are added
/// before the first generated or hand-written section (the first
/// `<!-- xtask-bench:start -->`, `---` rule or `## ` heading) where
/// missing. Nothing outside the markers changes.
pub(crate) fn splice(text: &str, section: &str) -> Result<String> {
    let before = ["\n<!-- xtask-bench:start -->", "\n---\n", "\n## "];
    crate::bench::splice_between(text, BEGIN, END, &before, section)
}

/// One bar per row: how many times faster ours is than the peer (log
/// scale), with the min–max over the rounds as a whisker and the goal as a
/// tick; green where the goal is met, amber where it lies beyond the floor,
/// red where missed, grey for rows reported without a goal.
fn chart(path: &Path, date: &str, run: &GoalRun) -> Result {
    if run.rows.is_empty() {
        return Err("goals.json has no rows to chart".into());
    }
    let height = 120 + 24 * run.rows.len() as u32;
    let area = SVGBackend::new(path, (1100, height)).into_drawing_area();
    draw(&area, date, run).map_err(|e| format!("chart: {e}"))?;
    area.present()
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn draw(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    date: &str,
    run: &GoalRun,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    area.fill(&WHITE)?;
    let rows = &run.rows;
    let n = rows.len() as i32;
    let values = rows.iter().flat_map(|r| {
        let g = r.goal_value.map(|g| r.speedup(g));
        [r.speedup(r.min), r.speedup(r.max)].into_iter().chain(g)
    });
    let (lo, hi) = values.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let x_lo = (lo / 1.5).clamp(0.01, 0.5);
    let x_hi = (hi * 1.5).clamp(2.0, 1000.0);
    let labels: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} vs {}",
                r.scenario.replace('`', ""),
                r.peer_name.replace('`', "")
            )
        })
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("how many times faster ours is, {date} (log scale; tick: the goal)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(480)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if (0..n).contains(i) => labels
                .get((n - 1 - *i) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_style(("monospace", 12))
        .x_desc("our speed / peer's speed")
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x}"))
        .draw()?;
    let green = RGBColor(60, 150, 80);
    let red = RGBColor(200, 70, 60);
    let amber = RGBColor(230, 160, 40);
    let grey = RGBColor(150, 150, 150);
    for (k, r) in rows.iter().enumerate() {
        let i = n - 1 - k as i32; // the first row on top
        let color = match r.met {
            Some(true) => green,
            Some(false) if r.beyond_the_floor() => amber,
            Some(false) => red,
            None => grey,
        };
        let v = r.speedup(r.median).clamp(x_lo, x_hi);
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (1.0, SegmentValue::Exact(i)),
                (v, SegmentValue::Exact(i + 1)),
            ],
            color.mix(0.75).filled(),
        )))?;
        // Min–max over the rounds.
        let (a, b) = (
            r.speedup(r.min).clamp(x_lo, x_hi),
            r.speedup(r.max).clamp(x_lo, x_hi),
        );
        chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (a, SegmentValue::CenterOf(i)),
                (b, SegmentValue::CenterOf(i)),
            ],
            BLACK.stroke_width(1),
        )))?;
        if let Some(g) = r.goal_value {
            let g = r.speedup(g).clamp(x_lo, x_hi);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(g, SegmentValue::Exact(i)), (g, SegmentValue::Exact(i + 1))],
                BLACK.stroke_width(3),
            )))?;
        }
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.2}", r.speedup(r.median)),
            (
                if v * 1.6 > x_hi {
                    v / 1.6
                } else {
                    v.max(1.0) * 1.08
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

    fn sample() -> Value {
        serde_json::json!({
            "version": 1, "quick": true, "rounds": 2,
            "rows": [
                {"id": "spsc_heap", "scenario": "SPSC threads", "ours": "spsc_heap",
                 "peer": "rtrb_single", "peer_name": "rtrb", "ours_ns": 10.0, "peer_ns": 12.0,
                 "ratio_kind": "speed", "ratio_median": 1.2, "ratio_min": 1.1, "ratio_max": 1.3,
                 "ratios": [1.1, 1.3], "goal": "≥ 1.0× rtrb", "goal_value": 1.0, "met": true},
                {"id": "rt", "scenario": "round trip", "ours": "rt_threads",
                 "peer": "floor_threads", "peer_name": "floor", "ours_ns": 400.0, "peer_ns": 200.0,
                 "ratio_kind": "time", "ratio_median": 2.0, "ratio_min": 1.9, "ratio_max": 2.1,
                 "ratios": [1.9, 2.1], "goal": "≤ 1.3× floor", "goal_value": 1.3, "met": false,
                 "floor": "floor_threads_2", "floor_ratio_median": 1.5, "floor_met": false},
                {"id": "b", "scenario": "batches", "ours": "spsc_batch32",
                 "peer": "rtrb_chunk32", "peer_name": "rtrb", "ours_ns": 2.0, "peer_ns": 2.4,
                 "ratio_kind": "speed", "ratio_median": 1.2, "ratio_min": 1.1, "ratio_max": 1.3,
                 "ratios": [1.1, 1.3], "goal": "≥ 1.5×", "goal_value": 1.5, "met": false,
                 "floor": "floor_batch32", "floor_ratio_median": 1.6, "floor_met": true},
                {"id": "x", "scenario": "report row", "ours": "a", "peer": "b",
                 "peer_name": "b", "ours_ns": 1.0, "peer_ns": 1.0, "ratio_kind": "speed",
                 "ratio_median": 1.0, "ratio_min": 1.0, "ratio_max": 1.0, "ratios": [1.0],
                 "goal": "report", "goal_value": null, "met": null}
            ]
        })
    }

    #[test]
    fn parses_and_renders_the_harness_json() {
        let run = parse(&sample()).unwrap();
        assert_eq!(run.rows.len(), 4);
        assert!(run.rows[1].time_ratio);
        assert_eq!(run.rows[3].met, None);
        assert!((run.rows[1].speedup(2.0) - 0.5).abs() < 1e-12);
        assert_eq!(run.rows[0].floor, None);
        assert_eq!(run.rows[1].floor, Some(("floor_threads_2".into(), 1.5)));
        // Missed, and so is the floor: beyond it. Missed, floor met: not.
        assert!(run.rows[1].beyond_the_floor());
        assert!(!run.rows[2].beyond_the_floor());
        assert!(!run.rows[0].beyond_the_floor() && !run.rows[3].beyond_the_floor());
        let md = render("2026-01-01", "test", &run);
        assert!(
            md.contains("**1 of 3 goals met; 1 of the other 2 lie beyond the floor in this run.**"),
            "{md}"
        );
        assert!(md.contains("| **met** |") && md.contains("| **missed** |"));
        assert!(md.contains("| **missed**: beyond the floor (`floor_threads_2` 1.50×) |"));
        assert!(md.contains("1.20× (1.10–1.30) peer/ours"));
        assert!(md.contains("2.00× (1.90–2.10) ours/peer"));
        assert!(md.contains("quick smoke mode"));
    }

    #[test]
    fn rejects_other_versions() {
        let mut json = sample();
        json["version"] = serde_json::json!(2);
        assert!(parse(&json).is_err());
    }

    #[test]
    fn splice_inserts_before_the_generated_history_then_replaces() {
        let doc =
            "# B\n\nintro\n\n<!-- xtask-bench:start -->\nold\n<!-- xtask-bench:end -->\n\n## S\n";
        let once = splice(doc, "one\n").unwrap();
        assert!(once.starts_with("# B\n\nintro\n\n<!-- goals:begin -->\n\none\n"));
        assert!(
            once.ends_with("<!-- xtask-bench:start -->\nold\n<!-- xtask-bench:end -->\n\n## S\n")
        );
        let twice = splice(&once, "two\n").unwrap();
        assert!(twice.contains("two") && !twice.contains("one"));
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(splice("a <!-- goals:end --> b", "x").is_err());
    }
}
