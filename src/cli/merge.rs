//! `pdchaos merge`: the summary of a load run from the shard files of its processes.
//!
//! The files come from `pdchaos load --shard I/N --save-shard FILE`; the merge itself (and the
//! checks that the files belong together) is [`crate::load::shard::merge`], and the output is
//! the one `pdchaos load` prints and writes ([`crate::cli::load::ReportArgs`]).

use crate::cli::bad_input;
use crate::cli::load::ReportArgs;
use crate::load::shard::{self, Shard};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(after_long_help = "Examples:\n  \
  pdchaos merge shard-0.json shard-1.json shard-2.json --json summary.json\n  \
  pdchaos merge /out --csv run.csv --fail-under-success 99      # every shard*.json in /out\n\n\
Counts and token sums add, HDR histograms add bucket by bucket (percentiles as exact as one \
process's), and the window runs from the earliest send to the latest end on absolute time \
(docs/metrics.md, \"Load from several machines\").\n\
Exit codes: 0 ok, 1 a --fail-under/--fail-over threshold broken, 2 a bad, mismatched or \
missing shard file.")]
pub struct MergeArgs {
    /// Shard files written by `pdchaos load --save-shard`; a directory stands for the
    /// shard*.json files in it.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Merge even when some of the N shards have no file (the figures then cover only the
    /// shards given).
    #[arg(long)]
    pub allow_missing: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

pub async fn run(args: MergeArgs) -> anyhow::Result<i32> {
    let mut files = Vec::new();
    for path in expand(&args.files)? {
        let file = shard::read(&path).map_err(|e| bad_input(e.to_string()))?;
        files.push((path, file));
    }
    let merged = shard::merge(&files).map_err(|e| bad_input(e.to_string()))?;
    let name = |i: &u32| {
        Shard {
            index: *i,
            count: merged.count,
        }
        .to_string()
    };
    let missing: Vec<String> = merged.missing.iter().map(name).collect();
    if !missing.is_empty() {
        let msg = format!("no file carries shard {}", missing.join(", "));
        if !args.allow_missing {
            return Err(bad_input(format!(
                "{msg} (pass --allow-missing to merge the others)"
            )));
        }
        eprintln!("warning: {msg}; the figures cover the other shards only");
    }
    eprintln!(
        "merged {} of {} shards from {} files",
        merged.merged.len(),
        merged.count,
        files.len()
    );
    args.report.report(&merged.summary())
}

/// Files as given, and each directory as its `shard*.json` files in name order.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found =
            shard_files(p).map_err(|e| bad_input(format!("{}: cannot list: {e}", p.display())))?;
        if found.is_empty() {
            return Err(bad_input(format!("{}: no shard*.json files", p.display())));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn shard_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_shard_file_name(&path) && path.is_file() {
            found.push(path);
        }
    }
    Ok(found)
}

/// Whether a directory given to `pdchaos merge` includes this file: `shard*.json`.
pub fn is_shard_file_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("shard") && name.ends_with(".json")
}
