//! The JSON shapes of the Toxiproxy REST API, shared by the server and the client.

use crate::fault::model::{Stream, Toxic};
use serde::{Deserialize, Serialize};

/// A toxic as the API shows it: `{"name", "type", "stream", "toxicity", "attributes"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicJson {
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub toxic: Toxic,
    #[serde(default)]
    pub stream: Stream,
    #[serde(default = "one")]
    pub toxicity: f32,
}

fn one() -> f32 {
    1.0
}

impl ToxicJson {
    /// Toxiproxy's default name: `{type}_{stream}`.
    pub fn default_name(&self) -> String {
        let kind = serde_json::to_value(&self.toxic)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_else(|| "toxic".into());
        let stream = match self.stream {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        };
        format!("{kind}_{stream}")
    }
}

/// A proxy as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyJson {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<ToxicJson>,
}

fn yes() -> bool {
    true
}

/// A partial proxy update (`POST`/`PATCH /proxies/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}
