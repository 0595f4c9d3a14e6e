//! Reading a run folder (see [`super::layout`]) into memory, with errors that name the file and
//! line that is wrong.

use super::ReportError;
use super::layout::{
    RECORDS, RUN_INDEX, RunIndex, SCENARIO_META, ScenarioEntry, ScenarioMeta, TIMELINE, VERDICTS,
    WINDOWS,
};
use crate::check::Verdict;
use crate::fault::model::TimelineEvent;
use crate::load::record::RequestRecord;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A whole run as recorded.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    pub index: RunIndex,
    pub scenarios: Vec<ScenarioData>,
}

/// One scenario's files. Window summaries stay untyped JSON so the report does not depend on
/// the load engine's `Summary` struct, only on its documented keys (see [`metric`]).
#[derive(Debug, Clone)]
pub struct ScenarioData {
    pub entry: ScenarioEntry,
    pub meta: ScenarioMeta,
    pub records: Vec<RequestRecord>,
    pub timeline: Vec<TimelineEvent>,
    pub windows: BTreeMap<String, Value>,
    pub verdicts: Vec<Verdict>,
}

/// Reads `run.json` and every scenario folder it lists.
pub fn read_run(dir: &Path) -> Result<RunData, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotARunDir(dir.to_path_buf()));
    }
    let index: RunIndex = read_json(&dir.join(RUN_INDEX))?;
    let mut scenarios = Vec::with_capacity(index.scenarios.len());
    for entry in &index.scenarios {
        let sdir = dir.join(&entry.dir);
        let meta: ScenarioMeta = read_json(&sdir.join(SCENARIO_META))?;
        let records = read_jsonl_opt(&sdir.join(RECORDS))?;
        let timeline = read_jsonl_opt(&sdir.join(TIMELINE))?;
        let windows = read_json_opt(&sdir.join(WINDOWS))?.unwrap_or_default();
        let verdicts = read_json_opt(&sdir.join(VERDICTS))?.unwrap_or_default();
        scenarios.push(ScenarioData {
            entry: entry.clone(),
            meta,
            records,
            timeline,
            windows,
            verdicts,
        });
    }
    Ok(RunData {
        dir: dir.to_path_buf(),
        index,
        scenarios,
    })
}

/// A number from a window summary by dotted key (`ttft_ms.p90`, `outcomes.stream_cut`).
pub fn metric(summary: &Value, key: &str) -> Option<f64> {
    key.split('.')
        .try_fold(summary, |v, part| v.get(part))
        .and_then(Value::as_f64)
}

fn read_text(path: &Path) -> Result<String, ReportError> {
    std::fs::read_to_string(path).map_err(|e| ReportError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        reason: e.to_string(),
    })
}

fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ReportError> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// A JSONL file; a missing file is an empty list (a scenario without load has no records).
fn read_jsonl_opt<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, ReportError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(line).map_err(|e| ReportError::Parse {
            path: path.to_path_buf(),
            line: n + 1,
            reason: e.to_string(),
        })?;
        out.push(item);
    }
    Ok(out)
}
