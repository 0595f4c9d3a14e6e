//! The sizing-sweep figure: TTFT p90 and decode-rate p50 against concurrency, one line per
//! P:D ratio, with the targets drawn.

use super::{WIDTH, plot_err, y_top};
use crate::report::ReportError;
use crate::report::layout::{SweepRow, SweepTargets};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// Line colours of the sweep's ratios, far from the red of the target bounds.
const SERIES: [RGBColor; 5] = [
    RGBColor(40, 100, 200),
    RGBColor(20, 150, 70),
    RGBColor(240, 140, 0),
    RGBColor(150, 60, 200),
    RGBColor(90, 90, 90),
];
/// A sweep panel: axis description, the value plotted, its bound, and the bound's kind.
type SweepPanel<'a> = (&'a str, fn(&SweepRow) -> f64, Option<f64>, &'a str);

/// The sizing sweep: TTFT p90 and decode-rate p50 against concurrency, one line per ratio,
/// with the target bounds drawn as dashed horizontal lines.
pub fn sweep_svg(
    title: &str,
    rows: &[SweepRow],
    targets: Option<SweepTargets>,
) -> Result<String, ReportError> {
    let targets = targets.unwrap_or_default();
    let mut by_ratio: BTreeMap<&str, Vec<&SweepRow>> = BTreeMap::new();
    for r in rows {
        by_ratio.entry(r.ratio.as_str()).or_default().push(r);
    }
    for v in by_ratio.values_mut() {
        v.sort_by_key(|r| r.concurrency);
    }
    let x_max = rows.iter().map(|r| r.concurrency).max().unwrap_or(1) as f64 * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let (head, body) = root.split_vertically(40);
        head.titled(&format!("{title} — sizing sweep"), ("sans-serif", 22))
            .map_err(plot_err)?;
        let halves = body.split_evenly((1, 2));
        let panels: [SweepPanel; 2] = [
            (
                "TTFT p90 (ms)",
                |r| r.ttft_p90_ms,
                targets.ttft_p90_ms_max,
                "max",
            ),
            (
                "decode rate p50 (tok/s)",
                |r| r.decode_tps_p50,
                targets.decode_tps_p50_min,
                "min",
            ),
        ];
        // Legends where curves rarely are: TTFT rises to the right, decode rate starts high.
        let corners = [
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::LowerLeft,
        ];
        for ((area, (desc, get, bound, which)), corner) in halves.iter().zip(panels).zip(corners) {
            let y_max = y_top(rows.iter().map(get).chain(bound));
            let mut c = ChartBuilder::on(area)
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(70)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)
                .map_err(plot_err)?;
            c.configure_mesh()
                .light_line_style(WHITE.mix(0.0))
                .x_desc("concurrency (streams)")
                .y_desc(desc)
                .draw()
                .map_err(plot_err)?;
            for (i, (ratio, pts)) in by_ratio.iter().enumerate() {
                let color = SERIES[i % SERIES.len()];
                c.draw_series(LineSeries::new(
                    pts.iter().map(|r| (r.concurrency as f64, get(r))),
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(*ratio)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
                // Filled where the point meets every target, hollow where it does not.
                c.draw_series(pts.iter().map(|r| {
                    let style = if r.meets_targets {
                        color.filled()
                    } else {
                        color.stroke_width(2)
                    };
                    Circle::new((r.concurrency as f64, get(r)), 4, style)
                }))
                .map_err(plot_err)?;
            }
            if let Some(b) = bound {
                c.draw_series(DashedLineSeries::new(
                    [(0.0, b), (x_max, b)],
                    8,
                    5,
                    RED.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(format!("target {which} {b}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
            }
            c.configure_series_labels()
                .position(corner)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}
