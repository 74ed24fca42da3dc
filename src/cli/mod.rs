//! One file per subcommand; each is thin: parse → call the library.

pub mod events;
pub mod exec;
pub mod features;
pub mod list;
pub mod ps;
pub mod spec;
pub mod update;
