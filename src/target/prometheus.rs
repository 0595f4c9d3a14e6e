//! The mode of a deployment that shows it only through metrics: a Prometheus instant query
//! polled while the load runs ([`poll`]), recorded as samples, and afterwards written onto each
//! request record ([`annotate`]) so the same mode checks judge it as they judge the header.
//!
//! The samples are only as fresh as the query: a `rate(...[30s])` lags the system by up to its
//! window, so detection bounds on such targets must allow for it (docs/targets.md).

use crate::clock::{self, Micros};
use crate::load::record::RequestRecord;
use crate::pd::PdMode;
use crate::target::PrometheusSignal;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One reading of the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeSample {
    pub ts_us: Micros,
    pub value: f64,
}

/// Sums an instant-query answer (`vector` or `scalar`); an empty vector is 0.
pub fn parse_answer(body: &Value) -> Result<f64, String> {
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus answered {}: {}",
            body["status"], body["error"]
        ));
    }
    let num = |v: &Value| -> Result<f64, String> {
        v.get(1)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("not a sample value: {v}"))
    };
    match body["data"]["resultType"].as_str() {
        Some("vector") => body["data"]["result"]
            .as_array()
            .map(|a| a.iter().map(|s| num(&s["value"])).sum())
            .unwrap_or(Ok(0.0)),
        Some("scalar") => num(&body["data"]["result"]),
        other => Err(format!("unsupported result type {other:?}")),
    }
}

/// Runs the query once.
pub async fn query(client: &reqwest::Client, signal: &PrometheusSignal) -> Result<f64, String> {
    let url = format!("{}/api/v1/query", signal.url.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .query(&[("query", signal.query.as_str())])
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let body: Value = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
    parse_answer(&body)
}

/// Polls every `every` until `cancel`; failed queries are skipped (and counted in the result).
pub fn poll(
    signal: PrometheusSignal,
    every: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<(Vec<ModeSample>, usize)> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(every.max(Duration::from_secs(2)))
            .build()
            .unwrap_or_default();
        let (mut samples, mut failed) = (Vec::new(), 0);
        loop {
            match query(&client, &signal).await {
                Ok(value) => samples.push(ModeSample {
                    ts_us: clock::now_us(),
                    value,
                }),
                Err(_) => failed += 1,
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        (samples, failed)
    })
}

/// Gives each record the mode the metric showed when its first token came (or when it ended,
/// without one): degraded (`signal.mode`) while the value is above `signal.above`.
pub fn annotate(records: &mut [RequestRecord], samples: &[ModeSample], signal: &PrometheusSignal) {
    for r in records {
        let at = r
            .first_reasoning_us
            .into_iter()
            .chain(r.first_answer_us)
            .min()
            .unwrap_or(r.end_us);
        let last = samples.iter().rev().find(|s| s.ts_us <= at);
        r.server.mode = last.map(|s| {
            if s.value > signal.above {
                signal.mode
            } else {
                PdMode::Disaggregated
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::record::OutcomeKind;
    use serde_json::json;

    #[test]
    fn answers_are_summed_and_errors_named() {
        let v = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.0, "0.5"]}, {"metric": {}, "value": [1.0, "2"]}]}});
        assert_eq!(parse_answer(&v).unwrap(), 2.5);
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(parse_answer(&empty).unwrap(), 0.0);
        let s =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}});
        assert_eq!(parse_answer(&s).unwrap(), 3.0);
        let e = json!({"status": "error", "error": "parse error"});
        assert!(parse_answer(&e).unwrap_err().contains("parse error"));
    }

    #[test]
    fn records_take_the_mode_seen_at_their_first_token() {
        let signal = PrometheusSignal {
            url: "http://p".into(),
            query: "q".into(),
            above: 0.0,
            mode: PdMode::DecodeOnly,
        };
        let samples = [
            ModeSample {
                ts_us: 100,
                value: 0.0,
            },
            ModeSample {
                ts_us: 200,
                value: 1.0,
            },
            ModeSample {
                ts_us: 300,
                value: 0.0,
            },
        ];
        let rec = |first: Option<u64>, end: u64| RequestRecord {
            first_answer_us: first,
            end_us: end,
            ..RequestRecord::fixture(0, OutcomeKind::Ok)
        };
        let mut rs = vec![
            rec(Some(150), 400),
            rec(Some(250), 400),
            rec(None, 350),
            rec(Some(50), 60),
        ];
        annotate(&mut rs, &samples, &signal);
        let modes: Vec<_> = rs.iter().map(|r| r.server.mode).collect();
        assert_eq!(
            modes,
            vec![
                Some(PdMode::Disaggregated),
                Some(PdMode::DecodeOnly),
                Some(PdMode::Disaggregated),
                None
            ]
        );
    }
}
