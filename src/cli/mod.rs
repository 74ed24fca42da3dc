//! One file per subcommand; each is thin: parse → call the library.

pub mod exec;
pub mod list;
pub mod spec;
