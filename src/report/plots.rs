//! SVG figures drawn with plotters: the per-scenario timeline (load against fault windows) and
//! the sizing-sweep plot ([`sweep_svg`], in its own file). Each returns the SVG text; callers
//! write it to a file and inline it.

use super::ReportError;
use super::run_data::ScenarioData;
use super::timeline::{self as tl, FaultWindow, Point};
use crate::load::record::OutcomeKind;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;

mod sweep;
pub use sweep::sweep_svg;

pub(super) const WIDTH: u32 = 1100;
const PANEL_H: u32 = 250;
const FAULT_FILL: RGBColor = RGBColor(230, 80, 60);
const DEGRADED: RGBColor = RGBColor(150, 60, 200);
const RECOVERED: RGBColor = RGBColor(20, 150, 70);
const OK_POINT: RGBColor = RGBColor(40, 100, 200);
const DEGRADED_POINT: RGBColor = RGBColor(240, 140, 0);

pub(super) fn plot_err<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// Colour of an outcome kind in the stacked outcome panel (ok is green, failures warm/dark).
pub fn outcome_color(kind: OutcomeKind) -> RGBColor {
    match kind {
        OutcomeKind::Ok => RGBColor(90, 180, 90),
        OutcomeKind::HttpError => RGBColor(220, 50, 40),
        OutcomeKind::ConnectError => RGBColor(120, 20, 20),
        OutcomeKind::TimeoutFirstToken => RGBColor(250, 160, 30),
        OutcomeKind::TimeoutTotal => RGBColor(200, 120, 0),
        OutcomeKind::StreamCut => RGBColor(150, 60, 200),
        OutcomeKind::InBandError => RGBColor(230, 90, 160),
        OutcomeKind::EmptyAnswer => RGBColor(120, 120, 120),
        OutcomeKind::TruncatedReasoning => RGBColor(60, 160, 200),
        OutcomeKind::Malformed => RGBColor(0, 0, 0),
    }
}

/// Everything the timeline draws, computed once from the scenario's records and events.
struct Timeline<'a> {
    x_max: f64,
    faults: Vec<FaultWindow>,
    degraded_s: Option<f64>,
    recovered_s: Option<f64>,
    ttft: Vec<Point>,
    decode: Vec<Point>,
    width: f64,
    bins: usize,
    data: &'a ScenarioData,
}

impl<'a> Timeline<'a> {
    fn new(data: &'a ScenarioData) -> Self {
        let origin = data.meta.started_us;
        let last = data
            .records
            .iter()
            .map(|r| r.end_us)
            .chain(data.timeline.iter().map(|e| e.ts_us))
            .chain([data.meta.ended_us])
            .max()
            .unwrap_or(origin);
        let x_max = tl::secs(origin, last).max(1.0);
        let width = tl::bin_width(x_max);
        Timeline {
            x_max,
            faults: tl::fault_windows(&data.timeline, origin),
            degraded_s: data.meta.degraded_at_us.map(|t| tl::secs(origin, t)),
            recovered_s: data.meta.recovered_at_us.map(|t| tl::secs(origin, t)),
            ttft: tl::ttft_points(&data.records, origin),
            decode: tl::decode_points(&data.records, origin),
            width,
            bins: (x_max / width).ceil() as usize,
            data,
        }
    }

    fn sample_times(&self) -> Vec<f64> {
        (0..=self.bins).map(|i| i as f64 * self.width).collect()
    }
}

/// The timeline of one scenario: TTFT, decode rate, outcomes, concurrency and throughput over
/// time, every fault window shaded and labelled, degraded and recovered moments marked.
pub fn timeline_svg(data: &ScenarioData) -> Result<String, ReportError> {
    let t = Timeline::new(data);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, PANEL_H * 5 + 40)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (title, body) = root.split_vertically(40);
        title
            .titled(
                &format!("{} — load against faults", data.meta.name),
                ("sans-serif", 22),
            )
            .map_err(plot_err)?;
        let panels = body.split_evenly((5, 1));
        points_panel(&panels[0], &t, &t.ttft, "TTFT (ms)", true)?;
        points_panel(
            &panels[1],
            &t,
            &t.decode,
            "decode rate (tok/s per request)",
            false,
        )?;
        outcomes_panel(&panels[2], &t)?;
        concurrency_panel(&panels[3], &t)?;
        throughput_panel(&panels[4], &t)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

type Chart<'b, 'c> = ChartContext<
    'c,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn chart<'b, 'c>(
    area: &'c DrawingArea<SVGBackend<'b>, Shift>,
    t: &Timeline,
    y_max: f64,
    y_desc: &str,
) -> Result<Chart<'b, 'c>, ReportError> {
    // The right margin equals the throughput panel's right axis, so all x axes line up.
    let mut chart = builder(area, 20 + RIGHT_AXIS)
        .build_cartesian_2d(0f64..t.x_max, 0f64..y_max)
        .map_err(plot_err)?;
    mesh(&mut chart, y_desc)?;
    shade_faults(&mut chart, t, y_max)?;
    Ok(chart)
}

const RIGHT_AXIS: u32 = 70;

fn builder<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    margin_right: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.margin(8)
        .margin_right(margin_right)
        .x_label_area_size(36)
        .y_label_area_size(70);
    b
}

fn mesh(chart: &mut Chart, y_desc: &str) -> Result<(), ReportError> {
    chart
        .configure_mesh()
        .x_desc("time since scenario start (s)")
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(plot_err)
}

/// Fault windows as shaded bands with lines at verified and healed; degraded/recovered marks.
fn shade_faults(chart: &mut Chart, t: &Timeline, y_max: f64) -> Result<(), ReportError> {
    for w in &t.faults {
        let Some(start) = w.start_s() else { continue };
        let end = w.end_s().unwrap_or(t.x_max);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(start, 0.0), (end, y_max)],
                FAULT_FILL.mix(0.15).filled(),
            )))
            .map_err(plot_err)?;
        for x in [w.verified_s, w.healed_s].into_iter().flatten() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, y_max)],
                    FAULT_FILL.mix(0.6).stroke_width(1),
                )))
                .map_err(plot_err)?;
        }
    }
    for (x, color) in [(t.degraded_s, DEGRADED), (t.recovered_s, RECOVERED)] {
        if let Some(x) = x {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, y_max)],
                    color.stroke_width(2),
                )))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Fault labels and phase names, drawn once (in the top panel) so they do not clutter the rest.
fn label_faults(chart: &mut Chart, t: &Timeline, y_max: f64) -> Result<(), ReportError> {
    let font = ("sans-serif", 13).into_font();
    let small = ("sans-serif", 11).into_font();
    for (i, w) in t.faults.iter().enumerate() {
        let Some(start) = w.start_s() else { continue };
        let y = y_max * (0.97 - 0.1 * (i % 3) as f64);
        let mut texts = vec![(format!("▼ {}", w.label), start, y, font.color(&FAULT_FILL))];
        if let Some(v) = w.verified_s {
            texts.push(("verified".into(), v, y_max * 0.12, small.color(&BLACK)));
        }
        match w.healed_s {
            Some(h) => texts.push(("healed".into(), h, y_max * 0.05, small.color(&BLACK))),
            None => texts.push(("NOT healed".into(), t.x_max * 0.9, y, font.color(&RED))),
        }
        if w.heal_failed {
            texts.push(("heal FAILED".into(), start, y_max * 0.2, font.color(&RED)));
        }
        for (text, x, y, style) in texts {
            chart
                .draw_series(std::iter::once(Text::new(text, (x, y), style)))
                .map_err(plot_err)?;
        }
    }
    let marks = [
        (t.degraded_s, "degraded mode seen", DEGRADED),
        (t.recovered_s, "recovered", RECOVERED),
    ];
    for (x, name, color) in marks {
        if let Some(x) = x {
            chart
                .draw_series(std::iter::once(Text::new(
                    name.to_string(),
                    (x, y_max * 0.85),
                    small.color(&color),
                )))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

pub(super) fn y_top(values: impl Iterator<Item = f64>) -> f64 {
    let m = values.fold(0.0f64, f64::max);
    if m <= 0.0 { 1.0 } else { m * 1.15 }
}

fn points_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    t: &Timeline,
    points: &[Point],
    y_desc: &str,
    top: bool,
) -> Result<(), ReportError> {
    // Headroom above the highest point keeps the fault labels off the data.
    let y_max = y_top(points.iter().map(|p| p.value)) * 1.5;
    let mut c = chart(area, t, y_max, y_desc)?;
    for (degraded, color, name) in [
        (false, OK_POINT, "request (disaggregated)"),
        (true, DEGRADED_POINT, "request (degraded mode)"),
    ] {
        let pts: Vec<_> = points.iter().filter(|p| p.degraded == degraded).collect();
        if pts.is_empty() {
            continue;
        }
        c.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.t_s, p.value), 2, color.mix(0.5).filled())),
        )
        .map_err(plot_err)?
        .label(name)
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
    }
    let rolling = tl::rolling_percentiles(points, &t.sample_times(), t.width * 2.0);
    for (idx, color, name) in [(1, BLACK, "rolling p50"), (2, RED, "rolling p90")] {
        c.draw_series(LineSeries::new(
            rolling
                .iter()
                .map(|r| (r.0, if idx == 1 { r.1 } else { r.2 })),
            color.stroke_width(2),
        ))
        .map_err(plot_err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if top {
        label_faults(&mut c, t, y_max)?;
    }
    legend(&mut c)
}

fn legend<'b: 'c, 'c>(c: &mut Chart<'b, 'c>) -> Result<(), ReportError> {
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(plot_err)
}

fn outcomes_panel(area: &DrawingArea<SVGBackend, Shift>, t: &Timeline) -> Result<(), ReportError> {
    let bins = tl::outcome_bins(&t.data.records, t.data.meta.started_us, t.width, t.bins);
    let totals = bins.iter().map(|b| b.values().sum::<u32>() as f64);
    let y_max = y_top(totals);
    let desc = format!("requests ended per {} s", t.width);
    let mut c = chart(area, t, y_max, &desc)?;
    let present: Vec<OutcomeKind> = OutcomeKind::ALL
        .into_iter()
        .filter(|k| bins.iter().any(|b| b.contains_key(k)))
        .collect();
    for kind in present {
        let color = outcome_color(kind);
        let rects = bins.iter().enumerate().filter_map(|(i, b)| {
            let n = *b.get(&kind)? as f64;
            let below: f64 = stacked_below(b, kind);
            let x0 = i as f64 * t.width;
            Some(Rectangle::new(
                [(x0, below), (x0 + t.width * 0.9, below + n)],
                color.filled(),
            ))
        });
        c.draw_series(rects)
            .map_err(plot_err)?
            .label(kind.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    legend(&mut c)
}

/// Count of the kinds stacked below `kind` in one bin (stack order is `OutcomeKind::ALL`).
fn stacked_below(bin: &BTreeMap<OutcomeKind, u32>, kind: OutcomeKind) -> f64 {
    OutcomeKind::ALL
        .into_iter()
        .take_while(|k| *k != kind)
        .map(|k| *bin.get(&k).unwrap_or(&0) as f64)
        .sum()
}

fn concurrency_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    t: &Timeline,
) -> Result<(), ReportError> {
    let samples: Vec<f64> = (0..=t.bins * 4).map(|i| i as f64 * t.width / 4.0).collect();
    let conc = tl::concurrency(&t.data.records, t.data.meta.started_us, &samples);
    let y_max = y_top(conc.iter().map(|c| *c as f64));
    let mut c = chart(area, t, y_max, "requests in flight")?;
    c.draw_series(LineSeries::new(
        samples.iter().zip(&conc).map(|(x, y)| (*x, *y as f64)),
        OK_POINT.stroke_width(2),
    ))
    .map_err(plot_err)?
    .label("concurrency")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], OK_POINT.stroke_width(2)));
    legend(&mut c)
}

fn throughput_panel(
    area: &DrawingArea<SVGBackend, Shift>,
    t: &Timeline,
) -> Result<(), ReportError> {
    let raw = tl::throughput(&t.data.records, t.data.meta.started_us, t.width, t.bins);
    // A centred mean over five bins: per-bin counts of a few requests are mostly noise.
    let tp: Vec<(f64, f64)> = (0..raw.len())
        .map(|i| {
            let near = &raw[i.saturating_sub(2)..(i + 3).min(raw.len())];
            let n = near.len() as f64;
            (
                near.iter().map(|p| p.0).sum::<f64>() / n,
                near.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect();
    let y_max = y_top(tp.iter().map(|p| p.0));
    let tok_max = y_top(tp.iter().map(|p| p.1));
    // Mesh after the secondary coordinates, or plotters draws the primary labels on the right.
    let mut c = builder(area, 20)
        .right_y_label_area_size(RIGHT_AXIS)
        .build_cartesian_2d(0f64..t.x_max, 0f64..y_max)
        .map_err(plot_err)?
        .set_secondary_coord(0f64..t.x_max, 0f64..tok_max);
    mesh(&mut c, "successful requests/s")?;
    shade_faults(&mut c, t, y_max)?;
    c.configure_secondary_axes()
        .y_desc("output tokens/s")
        .draw()
        .map_err(plot_err)?;
    let mid = |i: usize| (i as f64 + 0.5) * t.width;
    c.draw_series(LineSeries::new(
        tp.iter().enumerate().map(|(i, p)| (mid(i), p.0)),
        RECOVERED.stroke_width(2),
    ))
    .map_err(plot_err)?
    .label("successful req/s, 5-bin mean (left)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RECOVERED.stroke_width(2)));
    c.draw_secondary_series(LineSeries::new(
        tp.iter().enumerate().map(|(i, p)| (mid(i), p.1)),
        BLACK.mix(0.6).stroke_width(1),
    ))
    .map_err(plot_err)?
    .label("output tok/s (right)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(plot_err)
}
