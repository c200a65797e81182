//! Pieces shared by the pages.

pub mod graph;
pub mod live;
pub mod state;
pub mod toast;
pub mod trigger;
pub mod yaml;
