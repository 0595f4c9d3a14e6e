//! An async, typed Toxiproxy client that trusts nothing: every HTTP status is checked (a 400 or
//! 404 is an error carrying the server's text), and every change can be read back with the
//! `verify_*` methods. Written on reqwest rather than using `toxiproxy_rust`, which is blocking,
//! reports 4xx answers as success and panics inside tokio (see the README).

use crate::fault::toxiproxy::api::{ProxyJson, ProxyUpdate, ToxicJson};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a Toxiproxy call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    #[error("toxiproxy {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("toxiproxy {method} {url}: HTTP {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("toxiproxy {url}: unexpected answer: {reason}")]
    Decode { url: String, reason: String },
    #[error("toxiproxy: {0}")]
    NotInEffect(String),
}

#[derive(Debug, Clone)]
pub struct ToxiproxyClient {
    base: String,
    http: reqwest::Client,
}

impl ToxiproxyClient {
    pub fn new(base_url: impl Into<String>) -> ToxiproxyClient {
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

    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, String), ToxiproxyError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| ToxiproxyError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ToxiproxyError::Status {
                method: method.to_string(),
                url,
                status: status.as_u16(),
                body: text,
            });
        }
        Ok((status, text))
    }

    async fn json<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ToxiproxyError> {
        let (_, text) = self.call(method, path, body).await?;
        serde_json::from_str(&text).map_err(|e| ToxiproxyError::Decode {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    pub async fn version(&self) -> Result<String, ToxiproxyError> {
        Ok(self.call::<()>(Method::GET, "/version", None).await?.1)
    }

    pub async fn proxies(&self) -> Result<BTreeMap<String, ProxyJson>, ToxiproxyError> {
        self.json::<_, ()>(Method::GET, "/proxies", None).await
    }

    pub async fn proxy(&self, name: &str) -> Result<ProxyJson, ToxiproxyError> {
        self.json::<_, ()>(Method::GET, &format!("/proxies/{name}"), None)
            .await
    }

    pub async fn create(
        &self,
        name: &str,
        listen: &str,
        upstream: &str,
    ) -> Result<ProxyJson, ToxiproxyError> {
        let body = ProxyJson {
            name: name.into(),
            listen: listen.into(),
            upstream: upstream.into(),
            enabled: true,
            toxics: vec![],
        };
        self.json(Method::POST, "/proxies", Some(&body)).await
    }

    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<ProxyJson, ToxiproxyError> {
        let body = ProxyUpdate {
            enabled: Some(enabled),
            ..ProxyUpdate::default()
        };
        self.json(Method::POST, &format!("/proxies/{name}"), Some(&body))
            .await
    }

    pub async fn delete(&self, name: &str) -> Result<(), ToxiproxyError> {
        self.call::<()>(Method::DELETE, &format!("/proxies/{name}"), None)
            .await
            .map(|_| ())
    }

    pub async fn add_toxic(
        &self,
        proxy: &str,
        toxic: &ToxicJson,
    ) -> Result<ToxicJson, ToxiproxyError> {
        self.json(
            Method::POST,
            &format!("/proxies/{proxy}/toxics"),
            Some(toxic),
        )
        .await
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ToxiproxyError> {
        self.call::<()>(
            Method::DELETE,
            &format!("/proxies/{proxy}/toxics/{toxic}"),
            None,
        )
        .await
        .map(|_| ())
    }

    pub async fn reset(&self) -> Result<(), ToxiproxyError> {
        self.call::<()>(Method::POST, "/reset", None)
            .await
            .map(|_| ())
    }

    /// Reads the proxy back: is it enabled as expected?
    pub async fn verify_enabled(&self, name: &str, enabled: bool) -> Result<(), ToxiproxyError> {
        let p = self.proxy(name).await?;
        if p.enabled != enabled {
            return Err(ToxiproxyError::NotInEffect(format!(
                "proxy {name} reads back enabled={} (expected {enabled})",
                p.enabled
            )));
        }
        Ok(())
    }

    /// Reads the proxy back: is the toxic there (or gone)?
    pub async fn verify_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        present: bool,
    ) -> Result<(), ToxiproxyError> {
        let p = self.proxy(proxy).await?;
        if p.toxics.iter().any(|t| t.name == toxic) != present {
            let state = if present { "missing" } else { "still present" };
            return Err(ToxiproxyError::NotInEffect(format!(
                "toxic {toxic} on {proxy} is {state}"
            )));
        }
        Ok(())
    }
}
