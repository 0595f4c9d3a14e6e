//! Toxiproxy: the REST API server embedded in pdchaos, and the typed client the fault layer uses.
//!
//! The server (`pdchaos toxiproxy`) speaks Toxiproxy's REST API over the `noxious` crate's proxy
//! engine, so the published Toxiproxy clients work against it unchanged and the same client code
//! drives a real Toxiproxy in a cluster. Differences from Toxiproxy: `docs/toxiproxy.md`.

pub mod api;
pub mod client;
pub mod server;

pub use client::{ToxiproxyClient, ToxiproxyError};
