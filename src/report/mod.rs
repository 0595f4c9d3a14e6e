//! Reports built from a run folder: a self-contained `report.html`, the figures as SVG files
//! beside it, and `report.md` for CI job summaries, optionally compared against a baseline run.
//!
//! Everything here reads what the run recorded ([`layout`]) and computes the rest; nothing
//! talks to the system under test.

pub mod baseline;
pub mod html;
pub mod layout;
pub mod markdown;
pub mod plots;
pub mod run_data;
pub mod scorecard;
pub mod tables;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The HTML report's file name in the output folder.
pub const REPORT_HTML: &str = "report.html";
/// The Markdown report (not `summary.md`, which the runner writes).
pub const REPORT_MD: &str = "report.md";
/// Folder of the figure files.
pub const FIGURES: &str = "figures";

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: not a run folder (expected a directory with {})", .0.display(), layout::RUN_INDEX)]
    NotARunDir(PathBuf),
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("drawing a figure failed: {0}")]
    Plot(String),
}

impl ReportError {
    /// True when the input (a run folder, a baseline) is at fault rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReportError::NotARunDir(_) | ReportError::Read { .. } | ReportError::Parse { .. }
        )
    }
}

/// How to write the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Where to write; `None` writes into the run folder itself.
    pub out_dir: Option<PathBuf>,
    /// A baseline metric moving by more than this many percent is marked.
    pub tolerance_pct: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            out_dir: None,
            tolerance_pct: 10.0,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub figures: Vec<PathBuf>,
    /// Metrics that regressed against the baseline (0 without a baseline).
    pub regressions: usize,
}

/// Reads the run in `run_dir` (and `baseline`), and writes `report.html`, `report.md` and
/// `figures/<scenario>-timeline.svg` (plus `-sweep.svg` for sweeps).
pub fn write_report(
    run_dir: &Path,
    baseline: Option<&Path>,
    opts: &ReportOptions,
) -> Result<ReportFiles, ReportError> {
    let run = run_data::read_run(run_dir)?;
    let base = baseline.map(run_data::read_run).transpose()?;
    let deltas = base
        .as_ref()
        .map(|b| baseline::compare(&run, b, opts.tolerance_pct));
    let out = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| run_dir.to_path_buf());
    let fig_dir = out.join(FIGURES);
    std::fs::create_dir_all(&fig_dir).map_err(|e| write_err(&fig_dir, e))?;

    let mut figures: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut files = Vec::new();
    for s in &run.scenarios {
        let mut figs = Vec::new();
        if !s.records.is_empty() || !s.timeline.is_empty() {
            figs.push((
                "timeline",
                "Timeline: shaded bands are fault windows (applied → healed); thin lines mark \
                 verified and healed; purple marks the degraded mode seen, green the recovery.",
                plots::timeline_svg(s)?,
            ));
        }
        if !s.meta.sweep.is_empty() {
            figs.push((
                "sweep",
                "Sizing sweep: filled points meet every target, hollow ones do not.",
                plots::sweep_svg(&s.meta.name, &s.meta.sweep, s.meta.sweep_targets)?,
            ));
        }
        for (suffix, caption, svg) in figs {
            let path = fig_dir.join(format!("{}-{suffix}.svg", s.entry.dir));
            std::fs::write(&path, &svg).map_err(|e| write_err(&path, e))?;
            files.push(path);
            figures
                .entry(s.entry.dir.clone())
                .or_default()
                .push((caption.to_string(), svg));
        }
    }
    // A sizing study is often one scenario per ratio: one figure puts every ratio side by side.
    let with_sweep: Vec<_> = run
        .scenarios
        .iter()
        .filter(|s| !s.meta.sweep.is_empty())
        .collect();
    let mut run_figures = Vec::new();
    if with_sweep.len() > 1 {
        let rows: Vec<_> = with_sweep
            .iter()
            .flat_map(|s| s.meta.sweep.clone())
            .collect();
        let targets = with_sweep.iter().find_map(|s| s.meta.sweep_targets);
        let svg = plots::sweep_svg("All ratios", &rows, targets)?;
        let path = fig_dir.join("sweep.svg");
        std::fs::write(&path, &svg).map_err(|e| write_err(&path, e))?;
        files.push(path);
        run_figures.push((
            "Sizing sweep of every ratio in the run: filled points meet every target, hollow ones do not."
                .to_string(),
            svg,
        ));
    }
    let with_tol = deltas.as_deref().map(|d| (d, opts.tolerance_pct));
    let html_path = out.join(REPORT_HTML);
    let html = html::render(&run, with_tol, &figures, &run_figures);
    std::fs::write(&html_path, html).map_err(|e| write_err(&html_path, e))?;
    let md_path = out.join(REPORT_MD);
    std::fs::write(&md_path, markdown::render(&run, with_tol))
        .map_err(|e| write_err(&md_path, e))?;
    Ok(ReportFiles {
        html: html_path,
        markdown: md_path,
        figures: files,
        regressions: deltas.map_or(0, |d| d.iter().filter(|d| d.regression).count()),
    })
}

fn write_err(path: &Path, e: std::io::Error) -> ReportError {
    ReportError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
