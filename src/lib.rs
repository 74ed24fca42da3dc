//! husk: a fast, runc-compatible OCI container runtime.

pub mod cgroups;
pub mod cli;
pub mod config;
pub mod container;
pub mod hooks;
pub mod log;
pub mod rootless;
pub mod spawn;
pub mod state;
pub mod sys;
pub mod tty;
