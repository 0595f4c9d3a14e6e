//! An async, typed Toxiproxy REST client on reqwest.
//!
//! Unlike `toxiproxy_rust` (blocking, reports a 400 or 404 as success), every call checks the
//! HTTP status and turns anything unexpected into [`ToxiproxyError::Status`] with the body text,
//! and the `verify_*` helpers read state back so a caller knows a fault is really in effect.

use super::api::{NewProxy, ProxyInfo, ProxyPatch, ToxicInfo, toxic_type};
use crate::fault::model::{Stream, Toxic};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    #[error("toxiproxy {method} {url}: {source}")]
    Transport {
        method: Method,
        url: String,
        source: reqwest::Error,
    },
    #[error("toxiproxy {method} {url}: HTTP {status}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("toxiproxy {url}: unexpected response body: {message}")]
    Body { url: String, message: String },
    #[error("toxiproxy proxy {proxy}: {message}")]
    Verify { proxy: String, message: String },
}

impl ToxiproxyError {
    /// The HTTP status, when the server answered with an unexpected one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ToxiproxyError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ToxiproxyError>;

/// A client for one Toxiproxy API (e.g. `http://127.0.0.1:8474`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: String,
    http: reqwest::Client,
}

impl ToxiproxyClient {
    /// A client with a 10 s per-request timeout (a hung API is an error, not a hang).
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ToxiproxyClient {
            base: base_url.into().trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the body, failing unless the status is `expect`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        expect: StatusCode,
    ) -> Result<bytes::Bytes> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let transport = |source| ToxiproxyError::Transport {
            method: method.clone(),
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status != expect {
            return Err(ToxiproxyError::Status {
                method,
                url,
                status,
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            });
        }
        Ok(bytes)
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        expect: StatusCode,
    ) -> Result<T> {
        let bytes = self.call(method, path, body, expect).await?;
        serde_json::from_slice(&bytes).map_err(|e| ToxiproxyError::Body {
            url: format!("{}{}", self.base, path),
            message: e.to_string(),
        })
    }

    /// `GET /version` (the server's version text).
    pub async fn version(&self) -> Result<String> {
        let bytes = self
            .call(Method::GET, "/version", None, StatusCode::OK)
            .await?;
        Ok(String::from_utf8_lossy(&bytes).trim().to_string())
    }

    pub async fn list_proxies(&self) -> Result<BTreeMap<String, ProxyInfo>> {
        self.call_json(Method::GET, "/proxies", None, StatusCode::OK)
            .await
    }

    pub async fn get_proxy(&self, name: &str) -> Result<ProxyInfo> {
        self.call_json(Method::GET, &proxy_path(name), None, StatusCode::OK)
            .await
    }

    pub async fn create_proxy(&self, proxy: &NewProxy) -> Result<ProxyInfo> {
        let body = serde_json::to_value(proxy).ok();
        self.call_json(Method::POST, "/proxies", body, StatusCode::CREATED)
            .await
    }

    pub async fn update_proxy(&self, name: &str, patch: &ProxyPatch) -> Result<ProxyInfo> {
        let body = serde_json::to_value(patch).ok();
        self.call_json(Method::POST, &proxy_path(name), body, StatusCode::OK)
            .await
    }

    pub async fn delete_proxy(&self, name: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &proxy_path(name),
            None,
            StatusCode::NO_CONTENT,
        )
        .await
        .map(|_| ())
    }

    /// `POST /populate`: creates or replaces the proxies; returns what the server reports.
    pub async fn populate(&self, proxies: &[NewProxy]) -> Result<Vec<ProxyInfo>> {
        #[derive(serde::Deserialize)]
        struct Populated {
            proxies: Vec<ProxyInfo>,
        }
        let body = serde_json::to_value(proxies).ok();
        let out: Populated = self
            .call_json(Method::POST, "/populate", body, StatusCode::CREATED)
            .await?;
        Ok(out.proxies)
    }

    /// Disables the proxy (a partition: no new connections, open ones closed) and verifies it.
    pub async fn disable(&self, name: &str) -> Result<ProxyInfo> {
        self.set_enabled(name, false).await
    }

    /// Enables the proxy and verifies it.
    pub async fn enable(&self, name: &str) -> Result<ProxyInfo> {
        self.set_enabled(name, true).await
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<ProxyInfo> {
        let patch = ProxyPatch {
            enabled: Some(enabled),
            ..ProxyPatch::default()
        };
        self.update_proxy(name, &patch).await?;
        self.verify_enabled(name, enabled).await
    }

    /// Reads the proxy back and fails unless `enabled` is as expected.
    pub async fn verify_enabled(&self, name: &str, expected: bool) -> Result<ProxyInfo> {
        let proxy = self.get_proxy(name).await?;
        if proxy.enabled != expected {
            return Err(ToxiproxyError::Verify {
                proxy: name.to_string(),
                message: format!("enabled is {}, expected {expected}", proxy.enabled),
            });
        }
        Ok(proxy)
    }

    pub async fn list_toxics(&self, proxy: &str) -> Result<Vec<ToxicInfo>> {
        let path = format!("{}/toxics", proxy_path(proxy));
        self.call_json(Method::GET, &path, None, StatusCode::OK)
            .await
    }

    /// Adds a toxic and verifies it is installed with the same type, stream and attributes.
    pub async fn add_toxic(&self, proxy: &str, toxic: &ToxicInfo) -> Result<ToxicInfo> {
        let path = format!("{}/toxics", proxy_path(proxy));
        let body = serde_json::to_value(toxic).ok();
        let _: ToxicInfo = self
            .call_json(Method::POST, &path, body, StatusCode::OK)
            .await?;
        self.verify_toxic(proxy, toxic).await
    }

    /// Replaces a toxic's attributes, stream and toxicity (same name and type) and verifies it.
    pub async fn update_toxic(&self, proxy: &str, toxic: &ToxicInfo) -> Result<ToxicInfo> {
        let path = format!("{}/toxics/{}", proxy_path(proxy), encode(&toxic.name));
        let body = serde_json::to_value(toxic).ok();
        let _: ToxicInfo = self
            .call_json(Method::POST, &path, body, StatusCode::OK)
            .await?;
        self.verify_toxic(proxy, toxic).await
    }

    /// Removes a toxic by name and verifies it is gone.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<()> {
        let path = format!("{}/toxics/{}", proxy_path(proxy), encode(name));
        self.call(Method::DELETE, &path, None, StatusCode::NO_CONTENT)
            .await?;
        self.verify_toxic_absent(proxy, name).await
    }

    /// Reads the toxics back and fails unless one equal to `expected` is present.
    pub async fn verify_toxic(&self, proxy: &str, expected: &ToxicInfo) -> Result<ToxicInfo> {
        let toxics = self.list_toxics(proxy).await?;
        match toxics.into_iter().find(|t| t.name == expected.name) {
            Some(found) if found == *expected => Ok(found),
            Some(found) => Err(ToxiproxyError::Verify {
                proxy: proxy.to_string(),
                message: format!(
                    "toxic {} is {found:?}, expected {expected:?}",
                    expected.name
                ),
            }),
            None => Err(ToxiproxyError::Verify {
                proxy: proxy.to_string(),
                message: format!("toxic {} is not installed", expected.name),
            }),
        }
    }

    /// Reads the toxics back and fails if one named `name` is still there.
    pub async fn verify_toxic_absent(&self, proxy: &str, name: &str) -> Result<()> {
        if self
            .list_toxics(proxy)
            .await?
            .iter()
            .any(|t| t.name == name)
        {
            return Err(ToxiproxyError::Verify {
                proxy: proxy.to_string(),
                message: format!("toxic {name} is still installed"),
            });
        }
        Ok(())
    }

    /// `POST /reset` (every proxy enabled, every toxic removed), then verifies exactly that.
    pub async fn reset(&self) -> Result<()> {
        self.call(Method::POST, "/reset", None, StatusCode::NO_CONTENT)
            .await?;
        self.verify_clean().await
    }

    /// Fails unless every proxy is enabled and has no toxics (the state after healing).
    pub async fn verify_clean(&self) -> Result<()> {
        for (name, proxy) in self.list_proxies().await? {
            if !proxy.enabled || !proxy.toxics.is_empty() {
                let names: Vec<&str> = proxy.toxics.iter().map(|t| t.name.as_str()).collect();
                return Err(ToxiproxyError::Verify {
                    proxy: name,
                    message: format!("enabled={} toxics={names:?}", proxy.enabled),
                });
            }
        }
        Ok(())
    }
}

/// A toxic with Toxiproxy's default name `{type}_{stream}` (give distinct names to stack two).
pub fn toxic(toxic: Toxic, stream: Stream, toxicity: f32) -> ToxicInfo {
    let stream_name = match stream {
        Stream::Upstream => "upstream",
        Stream::Downstream => "downstream",
    };
    ToxicInfo {
        name: format!("{}_{stream_name}", toxic_type(&toxic)),
        toxic,
        stream,
        toxicity,
    }
}

fn proxy_path(name: &str) -> String {
    format!("/proxies/{}", encode(name))
}

/// Percent-encodes a path segment (names are usually plain, but a `/` must not split the path).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
