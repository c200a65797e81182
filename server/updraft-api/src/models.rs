//! The response bodies, from `updraft_types::api` (shared with the web app): the handlers
//! build them and the OpenAPI document (`openapi`) is generated from them, so the document and
//! the answers cannot drift apart.

pub use updraft_types::api::*;
