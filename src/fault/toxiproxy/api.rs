//! The JSON shapes of the Toxiproxy REST API, shared by the client and the embedded server.
//!
//! A toxic on the wire is `{"name", "type", "stream", "toxicity", "attributes": {...}}`; the
//! `type`/`attributes` pair is exactly [`crate::fault::model::Toxic`]'s serde form, so the fault
//! model's toxics travel unchanged.

use crate::fault::model::{Stream, Toxic};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A proxy as the API reports it (`GET /proxies/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyInfo {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<ToxicInfo>,
}

/// A toxic as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicInfo {
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

/// The body of `POST /proxies` and of each `POST /populate` element.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewProxy {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// The body of `POST|PATCH /proxies/{name}`: every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// An error body as Toxiproxy writes it: `{"error": "...", "status": 404}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub status: u16,
}

/// The Toxiproxy type name of a toxic (`latency`, `reset_peer`, ...).
pub fn toxic_type(toxic: &Toxic) -> &'static str {
    match toxic {
        Toxic::Latency { .. } => "latency",
        Toxic::Bandwidth { .. } => "bandwidth",
        Toxic::SlowClose { .. } => "slow_close",
        Toxic::Timeout { .. } => "timeout",
        Toxic::ResetPeer { .. } => "reset_peer",
        Toxic::Slicer { .. } => "slicer",
        Toxic::LimitData { .. } => "limit_data",
    }
}

/// The attribute names of a toxic type, or `None` for a type this server does not know.
fn attribute_names(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate"],
        "slow_close" => &["delay"],
        "timeout" => &["timeout"],
        "reset_peer" => &["timeout"],
        "slicer" => &["average_size", "size_variation", "delay"],
        "limit_data" => &["bytes"],
        _ => return None,
    })
}

/// Builds a typed toxic from a type name and a (possibly partial) attribute object. Missing
/// attributes are 0 and unknown ones are ignored, as in Toxiproxy.
pub fn parse_toxic(kind: &str, attributes: &Value) -> Result<Toxic, String> {
    let names = attribute_names(kind).ok_or_else(|| format!("unknown toxic type: {kind}"))?;
    let given = match attributes {
        Value::Null => Map::new(),
        Value::Object(map) => map.clone(),
        other => return Err(format!("attributes must be an object, got {other}")),
    };
    let mut attrs = Map::new();
    for name in names {
        let value = given.get(*name).cloned().unwrap_or(Value::from(0u64));
        attrs.insert((*name).to_string(), value);
    }
    let tagged = serde_json::json!({"type": kind, "attributes": attrs});
    serde_json::from_value(tagged).map_err(|e| format!("bad attributes for {kind}: {e}"))
}

/// The attributes of a typed toxic as a JSON object (for merging updates).
pub fn toxic_attributes(toxic: &Toxic) -> Value {
    match serde_json::to_value(toxic) {
        Ok(Value::Object(mut map)) => map.remove("attributes").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxic_info_has_toxiproxy_shape() {
        let info = ToxicInfo {
            name: "lat".into(),
            toxic: Toxic::Latency {
                latency: 100,
                jitter: 5,
            },
            stream: Stream::Upstream,
            toxicity: 0.5,
        };
        let value = serde_json::to_value(&info).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"name": "lat", "type": "latency", "stream": "upstream",
                "toxicity": 0.5, "attributes": {"latency": 100, "jitter": 5}})
        );
        let back: ToxicInfo = serde_json::from_value(value).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn partial_attributes_default_to_zero_and_unknown_types_fail() {
        let toxic = parse_toxic("latency", &serde_json::json!({"latency": 7})).unwrap();
        assert_eq!(
            toxic,
            Toxic::Latency {
                latency: 7,
                jitter: 0
            }
        );
        assert!(parse_toxic("gremlin", &Value::Null).is_err());
        assert!(parse_toxic("latency", &serde_json::json!({"latency": "x"})).is_err());
    }
}
