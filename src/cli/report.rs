//! `pdchaos report DIR [--baseline OLD_DIR] [--tolerance PCT]`: writes the HTML report, the
//! figures and the Markdown summary of a recorded run.

use crate::report::{ReportOptions, write_report};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder written by `pdchaos run` (holds run.json).
    pub dir: PathBuf,
    /// A previous run folder to compare against; metrics that moved are marked.
    #[arg(long, value_name = "OLD_DIR")]
    pub baseline: Option<PathBuf>,
    /// Relative change (percent) beyond which a metric counts as moved.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub tolerance: f64,
    /// Where to write the report (default: into DIR).
    #[arg(long, value_name = "OUT_DIR")]
    pub out: Option<PathBuf>,
    /// Exit 1 when a metric regressed against the baseline (for CI gates).
    #[arg(long)]
    pub fail_on_regression: bool,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<i32> {
    if !args.tolerance.is_finite() || args.tolerance < 0.0 {
        return Err(super::bad_input(format!(
            "--tolerance {}: expected a percentage >= 0",
            args.tolerance
        )));
    }
    let opts = ReportOptions {
        out_dir: args.out,
        tolerance_pct: args.tolerance,
    };
    let files = write_report(&args.dir, args.baseline.as_deref(), &opts).map_err(|e| {
        if e.is_bad_input() {
            super::bad_input(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    })?;
    println!("report: {}", files.html.display());
    println!("markdown: {}", files.markdown.display());
    for f in &files.figures {
        println!("figure: {}", f.display());
    }
    if args.baseline.is_some() {
        println!("regressions against the baseline: {}", files.regressions);
    }
    Ok(if args.fail_on_regression && files.regressions > 0 {
        1
    } else {
        0
    })
}
