//! The local P/D serving stack (router, prefill and decode as separate processes) to break.
