use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use husk::container::{self, CreateOpts, Global};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "husk",
    version,
    about = "A fast, runc-compatible OCI container runtime"
)]
struct Cli {
    /// Directory for container state (default /run/husk as root, $XDG_RUNTIME_DIR/husk otherwise)
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Write log lines to this file
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug lines
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Bundle directory (default: current directory)
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// Write the container's pid to this file
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a session keyring (accepted; husk never creates one)
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many fds beyond stdio (3, 4, ...) to the container process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a container (it waits for `start`)
    Create(CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to a container's process (default SIGTERM)
    Kill {
        /// Signal every process of the container
        #[arg(long, short = 'a')]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container
    Delete {
        /// Kill a running container first
        #[arg(long, short = 'f')]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container's process
        #[arg(long, short = 'd')]
        detach: bool,
    },
    /// Run another process in a container
    Exec(husk::cli::exec::ExecArgs),
    /// List containers
    List {
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List the processes of a container
    Ps {
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Arguments for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Update a container's resource limits
    Update {
        #[command(flatten)]
        flags: Box<husk::cli::update::Flags>,
        id: String,
    },
    /// Print container events (stats, OOM) as JSON
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats events
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print what this husk supports (the runtime-spec features document)
    Features,
    /// checkpoint (CRIU) is not supported
    #[command(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    Checkpoint { args: Vec<String> },
    /// restore (CRIU) is not supported
    #[command(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    Restore { args: Vec<String> },
    /// Write a default config.json
    Spec {
        #[arg(long, short = 'b', default_value = ".")]
        bundle: PathBuf,
        /// A config for an unprivileged user: user namespace with the caller's subuid/subgid ranges
        #[arg(long)]
        rootless: bool,
    },
}

fn default_root() -> Result<PathBuf> {
    if !husk::sys::rootless() {
        return Ok(PathBuf::from("/run/husk"));
    }
    let d = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => bail!("--root is not given and XDG_RUNTIME_DIR is not set: cannot choose a state directory for an unprivileged user"),
    };
    let rwx = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
    if let Err(e) = nix::unistd::access(&d, rwx) {
        bail!(
            "XDG_RUNTIME_DIR {} is not a directory this user can write to ({}): give --root DIR",
            d.display(),
            e.desc()
        );
    }
    Ok(d.join("husk"))
}

fn create_opts(a: CreateArgs, foreground: bool) -> CreateOpts {
    let _ = a.no_new_keyring;
    CreateOpts {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        preserve_fds: a.preserve_fds,
        foreground,
    }
}

fn real_main(cli: Cli) -> Result<i32> {
    husk::log::init(cli.log.as_deref(), cli.log_format == "json", cli.debug)?;
    match &cli.cmd {
        Cmd::Features => {
            husk::cli::features::run()?;
            return Ok(0);
        }
        Cmd::Checkpoint { .. } | Cmd::Restore { .. } => {
            bail!("checkpoint/restore is not supported by husk (no CRIU integration)")
        }
        _ => {}
    }
    if let Cmd::Spec { bundle, rootless } = &cli.cmd {
        husk::cli::spec::run(bundle, *rootless)?;
        return Ok(0);
    }
    let g = Global {
        root: match cli.root {
            Some(r) => r,
            None => default_root()?,
        },
        systemd_cgroup: cli.systemd_cgroup,
    };
    match cli.cmd {
        Cmd::Create(a) => {
            container::create(&g, &create_opts(a, false))?;
        }
        Cmd::Start { id } => container::start(&g, &id)?,
        Cmd::State { id } => husk::out!("{}", container::state_json(&g, &id)?),
        Cmd::Kill { all, id, signal } => {
            let sig = container::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            container::kill(&g, &id, sig, all)?;
        }
        Cmd::Delete { force, id } => container::delete(&g, &id, force)?,
        Cmd::Run { create, detach } => {
            return container::run(&g, &create_opts(create, !detach), detach)
        }
        Cmd::Exec(a) => return husk::cli::exec::run(&g, a),
        Cmd::List { format, quiet } => husk::cli::list::run(&g, &format, quiet)?,
        Cmd::Pause { id } => container::pause(&g, &id)?,
        Cmd::Resume { id } => container::resume(&g, &id)?,
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => husk::cli::ps::run(&g, &id, &format, &ps_args)?,
        Cmd::Update { flags, id } => husk::cli::update::run(&g, &id, &flags)?,
        Cmd::Events {
            stats,
            interval,
            id,
        } => husk::cli::events::run(&g, &id, stats, &interval)?,
        Cmd::Spec { .. } | Cmd::Features | Cmd::Checkpoint { .. } | Cmd::Restore { .. } => {
            unreachable!()
        }
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            husk::log::fatal(&format!("{e:#}"));
            std::process::exit(1);
        }
    }
}
