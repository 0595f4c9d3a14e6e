//! The server's source of truth: every proxy's config and toxics, and its engine when enabled.
//! One async lock serialises changes so each API call sees and leaves a consistent state.

use super::engine::Engine;
use crate::fault::toxiproxy::api::{NewProxy, ProxyInfo, ProxyPatch, ToxicInfo};
use std::collections::BTreeMap;
use tokio::sync::Mutex;

/// An API failure: the HTTP status and Toxiproxy's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn proxy_not_found() -> Self {
        Self::new(404, "proxy not found")
    }
    fn toxic_not_found() -> Self {
        Self::new(404, "toxic not found")
    }
}

#[derive(Debug)]
struct Entry {
    info: ProxyInfo,
    engine: Option<Engine>,
}

impl Entry {
    /// Hands the toxic list to the running engine (open connections apply it at once).
    fn sync_toxics(&self) {
        if let Some(engine) = &self.engine {
            engine.set_toxics(&self.info.toxics);
        }
    }
}

/// All proxies of one server.
#[derive(Debug, Default)]
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Entry>>,
}

/// Resolves a `:0` listen address of a proxy created disabled (nothing listens yet) to a free
/// port, so the API reports (and enabling reuses) a real address, as Toxiproxy does.
async fn resolve_listen(listen: &str) -> Result<String, ApiError> {
    let probe = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ApiError::new(500, format!("listen {listen}: {e}")))?;
    let addr = probe
        .local_addr()
        .map_err(|e| ApiError::new(500, format!("listen {listen}: {e}")))?;
    Ok(addr.to_string())
}

/// Starts the proxy's engine; a `:0` listen address becomes the port the engine bound (and
/// keeps bound: no other process can take it in between).
async fn start(info: &mut ProxyInfo) -> Result<Engine, ApiError> {
    let engine = Engine::start(&info.listen, &info.upstream, &info.toxics)
        .await
        .map_err(|e| ApiError::new(500, format!("listen {}: {e}", info.listen)))?;
    info.listen = engine.addr().to_string();
    Ok(engine)
}

impl Registry {
    pub async fn list(&self) -> BTreeMap<String, ProxyInfo> {
        let map = self.proxies.lock().await;
        map.iter()
            .map(|(k, e)| (k.clone(), e.info.clone()))
            .collect()
    }

    pub async fn get(&self, name: &str) -> Result<ProxyInfo, ApiError> {
        let map = self.proxies.lock().await;
        map.get(name)
            .map(|e| e.info.clone())
            .ok_or_else(ApiError::proxy_not_found)
    }

    pub async fn create(&self, new: NewProxy) -> Result<ProxyInfo, ApiError> {
        if new.name.is_empty() {
            return Err(ApiError::new(400, "missing required field: name"));
        }
        if new.upstream.is_empty() {
            return Err(ApiError::new(400, "missing required field: upstream"));
        }
        let mut map = self.proxies.lock().await;
        if map.contains_key(&new.name) {
            return Err(ApiError::new(409, "proxy already exists"));
        }
        let listen = if new.listen.is_empty() {
            "127.0.0.1:0"
        } else {
            &new.listen
        };
        let mut info = ProxyInfo {
            listen: listen.to_string(),
            name: new.name,
            upstream: new.upstream,
            enabled: new.enabled,
            toxics: Vec::new(),
        };
        let engine = if info.enabled {
            Some(start(&mut info).await?)
        } else {
            info.listen = resolve_listen(listen).await?;
            None
        };
        map.insert(
            info.name.clone(),
            Entry {
                info: info.clone(),
                engine,
            },
        );
        Ok(info)
    }

    pub async fn update(&self, name: &str, patch: ProxyPatch) -> Result<ProxyInfo, ApiError> {
        let mut map = self.proxies.lock().await;
        let entry = map.get_mut(name).ok_or_else(ApiError::proxy_not_found)?;
        let mut next = entry.info.clone();
        if let Some(listen) = patch.listen.filter(|l| *l != entry.info.listen) {
            next.listen = listen;
        }
        if let Some(upstream) = patch.upstream {
            next.upstream = upstream;
        }
        if let Some(enabled) = patch.enabled {
            next.enabled = enabled;
        }
        if !next.enabled && next.listen != entry.info.listen {
            next.listen = resolve_listen(&next.listen).await?;
        }
        let moved = next.listen != entry.info.listen || next.upstream != entry.info.upstream;
        if (moved || !next.enabled)
            && let Some(engine) = entry.engine.take()
        {
            engine.stop().await;
        }
        if next.enabled && entry.engine.is_none() {
            match start(&mut next).await {
                Ok(engine) => entry.engine = Some(engine),
                Err(e) => {
                    // Report what is true: the proxy is not running.
                    entry.info = ProxyInfo {
                        enabled: false,
                        ..next
                    };
                    return Err(e);
                }
            }
        }
        entry.info = next;
        Ok(entry.info.clone())
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let entry = {
            let mut map = self.proxies.lock().await;
            map.remove(name).ok_or_else(ApiError::proxy_not_found)?
        };
        if let Some(engine) = entry.engine {
            engine.stop().await;
        }
        Ok(())
    }

    pub async fn toxics(&self, proxy: &str) -> Result<Vec<ToxicInfo>, ApiError> {
        Ok(self.get(proxy).await?.toxics)
    }

    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicInfo, ApiError> {
        self.toxics(proxy)
            .await?
            .into_iter()
            .find(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: ToxicInfo) -> Result<ToxicInfo, ApiError> {
        let mut map = self.proxies.lock().await;
        let entry = map.get_mut(proxy).ok_or_else(ApiError::proxy_not_found)?;
        if entry.info.toxics.iter().any(|t| t.name == toxic.name) {
            return Err(ApiError::new(409, "toxic already exists"));
        }
        entry.info.toxics.push(toxic.clone());
        entry.sync_toxics();
        Ok(toxic)
    }

    /// Replaces a toxic (same name), in place: live connections re-time what it holds.
    pub async fn replace_toxic(
        &self,
        proxy: &str,
        toxic: ToxicInfo,
    ) -> Result<ToxicInfo, ApiError> {
        let mut map = self.proxies.lock().await;
        let entry = map.get_mut(proxy).ok_or_else(ApiError::proxy_not_found)?;
        let slot = entry
            .info
            .toxics
            .iter_mut()
            .find(|t| t.name == toxic.name)
            .ok_or_else(ApiError::toxic_not_found)?;
        *slot = toxic.clone();
        entry.sync_toxics();
        Ok(toxic)
    }

    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let mut map = self.proxies.lock().await;
        let entry = map.get_mut(proxy).ok_or_else(ApiError::proxy_not_found)?;
        let index = entry
            .info
            .toxics
            .iter()
            .position(|t| t.name == toxic)
            .ok_or_else(ApiError::toxic_not_found)?;
        entry.info.toxics.remove(index);
        entry.sync_toxics();
        Ok(())
    }

    /// `POST /reset`: every proxy enabled and every toxic removed (both streams).
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut map = self.proxies.lock().await;
        for entry in map.values_mut() {
            entry.info.toxics.clear();
            entry.sync_toxics();
            if entry.engine.is_none() {
                let mut enabled = ProxyInfo {
                    enabled: true,
                    ..entry.info.clone()
                };
                entry.engine = Some(start(&mut enabled).await?);
                entry.info = enabled;
            }
        }
        Ok(())
    }

    /// `POST /populate`: create each proxy; one with the same name is kept if its listen and
    /// upstream match, else replaced (Toxiproxy's rule).
    pub async fn populate(&self, proxies: Vec<NewProxy>) -> Result<Vec<ProxyInfo>, ApiError> {
        let mut out = Vec::new();
        for new in proxies {
            if let Ok(existing) = self.get(&new.name).await {
                let same_listen = existing.listen == new.listen || new.listen.ends_with(":0");
                if same_listen && existing.upstream == new.upstream {
                    out.push(existing);
                    continue;
                }
                self.delete(&new.name).await?;
            }
            out.push(self.create(new).await?);
        }
        Ok(out)
    }

    /// Stops every engine (server shutdown).
    pub async fn shutdown(&self) {
        let entries: Vec<Entry> = {
            let mut map = self.proxies.lock().await;
            std::mem::take(&mut *map).into_values().collect()
        };
        for entry in entries {
            if let Some(engine) = entry.engine {
                engine.stop().await;
            }
        }
    }
}
