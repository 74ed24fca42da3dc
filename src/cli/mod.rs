//! One file per subcommand; each is thin: parse → call the library.

pub mod events;
pub mod exec;
pub mod features;
pub mod list;
pub mod ps;
pub mod spec;
pub mod update;

/// Print a line of command output. A reader that went away (`husk state x | head -c1`) is
/// not an error worth a panic: the rest of the output is dropped.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
