//! Toxiproxy: the wire types of its REST API ([`api`]), an async typed client that checks every
//! status and reads state back ([`client`]), and an embedded Toxiproxy-compatible server with a
//! proxy engine of our own ([`server`]) for local runs (`pdchaos toxiproxy`, [`cli`]).

pub mod api;
pub mod cli;
pub mod client;
pub mod server;

pub use api::{ProxyInfo, ToxicInfo};

pub use client::{ToxiproxyClient, ToxiproxyError};
pub use server::{RunningServer, ServerError};
