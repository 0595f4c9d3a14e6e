//! Where the system under test is: the local stack, or a cluster described by a target file.
//!
//! A target file (YAML, `targets/*.yaml`) names one deployment and says three things the runner
//! cannot guess: where to send load, what it may touch (the allow-list), and how it sees the
//! degraded mode. The schema is strict (unknown keys are errors) because a misspelt allow-list or
//! selector would otherwise turn into a silent no-op fault and a false pass.

pub mod kubernetes;
pub mod port_forward;
pub mod prometheus;
pub mod rbac;
mod schema;

pub use schema::{
    DegradedSignal, DistributedLoad, IN_CLUSTER, KubeTarget, LinkName, LocalRouter, LocalTarget,
    PrometheusSignal, Ratio, RoleSelectors, ToxiproxyAccess, WorkloadKind, WorkloadRef, Workloads,
};

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The deployment a run acts on.
// Parsed once per run: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The embedded simulator started by the runner on loopback.
    Local(LocalTarget),
    /// A real cluster reached through the current kubeconfig, limited to an allow-list.
    Kubernetes(KubeTarget),
}

/// A whole target file: a name, the prose that explains it, and the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    pub name: String,
    /// What can be injected there and how the degraded mode is seen (shown in reports).
    pub description: String,
    pub target: Target,
}

/// Why a target file could not be used; always names the file, and the line when known.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    local: Option<LocalTarget>,
    #[serde(default)]
    kubernetes: Option<KubeTarget>,
}

/// Reads and validates a target file.
pub fn load_target(path: &Path) -> Result<Target, TargetError> {
    load_target_file(path).map(|f| f.target)
}

/// Reads and validates a target file, keeping its name and description.
pub fn load_target_file(path: &Path) -> Result<TargetFile, TargetError> {
    let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_target(&text, path)
}

/// Parses target-file text; `path` only names the source in errors.
pub fn parse_target(text: &str, path: &Path) -> Result<TargetFile, TargetError> {
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        TargetError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: first_line(&e.to_string()),
        }
    })?;
    let invalid = |message: String| TargetError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let target = match (raw.local, raw.kubernetes) {
        (Some(l), None) => {
            l.validate().map_err(invalid)?;
            Target::Local(l)
        }
        (None, Some(k)) => {
            k.validate().map_err(invalid)?;
            Target::Kubernetes(k)
        }
        (None, None) => return Err(invalid("needs one of `local:` or `kubernetes:`".into())),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "has both `local:` and `kubernetes:`; a target file describes one deployment"
                    .into(),
            ));
        }
    };
    Ok(TargetFile {
        name: raw.name,
        description: raw.description,
        target,
    })
}

/// serde-saphyr renders a caret snippet below the message; the runner wants one line.
fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid YAML")
        .to_string()
}

#[cfg(test)]
mod tests;
