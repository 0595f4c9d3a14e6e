//! The fault journal: every fault step as a JSONL line, flushed and fsync'd before the action,
//! so that a runner killed mid-fault leaves enough behind for `pdchaos heal` to put things back.

use crate::fault::model::{FaultId, FaultPhase, TimelineEvent, Undo};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("journal {path}:{line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
}

/// An append-only journal file.
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Journal {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and syncs it to disk before returning.
    pub fn write(&mut self, event: &TimelineEvent) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut line = serde_json::to_vec(event).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        self.file.flush().map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// Reads every event of a journal (a missing file is an empty journal).
pub fn read(path: &Path) -> Result<Vec<TimelineEvent>, JournalError> {
    let shown = path.display().to_string();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Io {
                path: shown,
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| JournalError::Io {
            path: shown.clone(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ev = serde_json::from_str(&line).map_err(|e| JournalError::Line {
            path: shown.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(ev);
    }
    Ok(out)
}

/// A fault the journal says was planned but never healed.
#[derive(Debug, Clone, PartialEq)]
pub struct Unhealed {
    pub id: FaultId,
    pub last_phase: FaultPhase,
    pub undo: Vec<Undo>,
    pub description: String,
}

/// Folds the events into the faults still open (planned, not healed and verified).
pub fn unhealed(events: &[TimelineEvent]) -> Vec<Unhealed> {
    let mut open: BTreeMap<FaultId, Unhealed> = BTreeMap::new();
    for e in events {
        match e.phase {
            FaultPhase::Planned => {
                let description = e
                    .spec
                    .as_ref()
                    .map(|s| format!("{:?} on {:?}", s.kind, s.target))
                    .unwrap_or_default();
                open.insert(
                    e.fault.clone(),
                    Unhealed {
                        id: e.fault.clone(),
                        last_phase: e.phase,
                        undo: e.undo.clone(),
                        description,
                    },
                );
            }
            FaultPhase::HealVerified => {
                open.remove(&e.fault);
            }
            phase => {
                if let Some(u) = open.get_mut(&e.fault) {
                    u.last_phase = phase;
                }
            }
        }
    }
    open.into_values().collect()
}
