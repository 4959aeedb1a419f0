//! `bulkhead`: the runc-compatible command line. Parses flags, then hands a
//! validated plan to the lifecycle; the only crate that uses anyhow.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `println!` that fails instead of panicking when stdout is gone (a reader
/// such as `grep -q` that quit early): the caller reports it and exits 1.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))
    }};
}

/// [`outln!`] without the newline.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))
    }};
}

mod commands;
mod logging;

use logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "bulkhead",
    about = "an isolation-first OCI container runtime",
    disable_version_flag = true
)]
struct Cli {
    /// State directory (default /run/bulkhead; $XDG_RUNTIME_DIR/bulkhead when rootless).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Append log lines to this file instead of stderr.
    #[arg(long)]
    log: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[arg(long)]
    debug: bool,
    /// Use systemd's cgroup driver (slice:prefix:name paths).
    #[arg(long)]
    systemd_cgroup: bool,
    /// Run without host privileges: true, false or auto (auto: not root,
    /// or inside a user namespace someone else configured, e.g. rootless podman's).
    #[arg(long, value_enum, default_value = "auto")]
    rootless: RootlessFlag,
    /// Path to criu (accepted for runc compatibility; checkpointing is not supported).
    #[arg(long)]
    criu: Option<String>,
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// `--rootless`, as runc spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RootlessFlag {
    True,
    False,
    Auto,
}

#[derive(Debug, clap::Args, Clone)]
struct CreateArgs {
    /// Path to the bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the container init's host pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Use chroot instead of pivot_root (for ramdisk roots).
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring (accepted; no keyring is created).
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (from 3 on) to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Record the syscalls the container makes and write, when it exits, the
    /// seccomp profile that allows exactly those (bulkhead extension; the
    /// annotation io.bulkhead.seccomp.learn does the same). See docs/audit.md.
    #[arg(long, value_name = "FILE")]
    learn_seccomp: Option<PathBuf>,
}

// Each subcommand's arguments are built only when it is the one invoked (or
// for help): building all of them cost every start of the runtime 116 KB of
// heap and the code of every subcommand's argument list (docs/benchmark.md).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Cmd {
    /// Create a container, set up and blocked before its program runs.
    Create {
        #[command(flatten)]
        args: CreateArgs,
        id: String,
    },
    /// Run the program of a created container.
    Start { id: String },
    /// Create and start a container, then wait for it (unless --detach).
    Run {
        #[command(flatten)]
        args: CreateArgs,
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        no_subreaper: bool,
        id: String,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (name or number, default SIGTERM) to a container.
    Kill {
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container and everything it holds.
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Show the processes of a container.
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a new process inside a running container.
    Exec(Box<commands::exec::ExecArgs>),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the resource limits of a container.
    Update(Box<commands::update::UpdateArgs>),
    /// Print a container's resource usage and OOM events as JSON.
    Events(commands::events::EventsArgs),
    /// Write a starting config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features JSON).
    Features,
    /// Run a command in a hardened sandbox (docker-like flags; profiles
    /// restricted, baseline, privileged). See docs/sandbox.md.
    Sandbox(Box<commands::sandbox::SandboxArgs>),
    /// Print what a detached sandbox wrote to stdout and stderr.
    Logs {
        /// Keep printing until the sandbox stops.
        #[arg(short = 'f', long)]
        follow: bool,
        name: String,
    },
    /// Stop a sandbox: its stop signal, then SIGKILL after --time seconds.
    Stop {
        #[arg(short = 't', long, default_value_t = 10)]
        time: u64,
        name: String,
    },
    /// How isolated a container is: findings and a Pod Security Standards
    /// verdict, from the kernel's view and/or a config. See docs/audit.md.
    Audit(commands::audit::AuditArgs),
    /// Bridge networks for sandboxes (create, ls, inspect, rm). See docs/network.md.
    #[command(subcommand)]
    Network(commands::network::NetworkCmd),
    /// Attach to the terminal of a sandbox started with -d -t (detach:
    /// ctrl-p ctrl-q, or --detach-keys).
    Attach {
        /// Do not send this terminal's input.
        #[arg(long)]
        no_stdin: bool,
        /// Keys that detach, comma-separated: a character or ctrl-<a-z, @, [, \, ], ^, _>
        /// (podman's syntax, e.g. ctrl-a,d); "" never detaches.
        #[arg(long, value_name = "KEYS", default_value = commands::sandbox::attach::DEFAULT_DETACH_KEYS)]
        detach_keys: String,
        name: String,
    },
    /// Wait for sandboxes to stop; print their exit codes.
    Wait {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print what is known of sandboxes (status, exit code, log) as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The recorder of a learning run (started by create; not for users).
    #[command(name = "learn-recorder", hide = true)]
    LearnRecorder(commands::learn::RecorderArgs),
    /// Remove sandboxes (their container and directory).
    Rm {
        /// Also remove running sandboxes (killed first).
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Whether the subcommand on the command line is `sandbox` (global flags
/// that take a value are skipped).
fn is_sandbox_invocation() -> bool {
    argv_command().as_deref() == Some("sandbox")
}

/// The command's name as argv spells it, found without clap: global options
/// that take a separate value are skipped with their value.
fn argv_command() -> Option<String> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let a = a.into_string().ok()?;
        match a.as_str() {
            "--root" | "--log" | "--log-format" | "--rootless" | "--criu" => {
                args.next();
            }
            s if s.starts_with('-') => {}
            _ => return Some(a),
        }
    }
    None
}

/// Whether argv names a command that puts a process into a container,
/// judged before clap runs: those commands re-execute the binary (see
/// `main`), and doing it first spares a whole argument parse and logging
/// setup in the process that is replaced. Only a hint: the check after
/// parsing is the one that counts.
fn argv_enters_container() -> bool {
    matches!(
        argv_command().as_deref(),
        Some("create" | "run" | "exec" | "sandbox")
    )
}

fn protect_or_exit() {
    if let Err(e) = bulkhead_sys::exe::ensure_protected() {
        eprintln!("bulkhead: cannot protect the runtime binary: {e}");
        std::process::exit(if is_sandbox_invocation() {
            commands::sandbox::EXIT_RUNTIME
        } else {
            1
        });
    }
}

fn main() {
    // Where the entry point (bulkhead_sys, entry.rs) already re-executed the
    // binary, this takes what it found without looking again.
    let protected_early = argv_enters_container();
    if protected_early {
        protect_or_exit();
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // docker's code for a bad flag of `run`.
        Err(e) if e.use_stderr() && is_sandbox_invocation() => {
            let _ = e.print();
            std::process::exit(commands::sandbox::EXIT_RUNTIME);
        }
        Err(e) => e.exit(),
    };
    if cli.version {
        let _ = outln!(
            "bulkhead version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            bulkhead_spec::template::OCI_VERSION
        );
        return;
    }
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("bulkhead: {e}");
        std::process::exit(1);
    }
    let Some(cmd) = cli.cmd else {
        eprintln!("bulkhead: no command given (see bulkhead --help)");
        std::process::exit(1);
    };
    // The commands that put a process into a container first make sure this
    // binary cannot be overwritten from inside it (CVE-2019-5736).
    if !protected_early
        && matches!(
            cmd,
            Cmd::Create { .. } | Cmd::Run { .. } | Cmd::Sandbox(_) | Cmd::Exec(_)
        )
    {
        protect_or_exit();
    }
    // Decided once: a flag, the euid, and (as root) one read of uid_map.
    let rootless = bulkhead_lifecycle::rootless::detect(match cli.rootless {
        RootlessFlag::True => Some(true),
        RootlessFlag::False => Some(false),
        RootlessFlag::Auto => None,
    });
    let root = match cli.root.clone() {
        Some(r) => Ok(r),
        None => bulkhead_lifecycle::rootless::default_root(rootless),
    };
    let ctx = commands::Ctx {
        root,
        systemd_cgroup: cli.systemd_cgroup,
        rootless,
    };
    match commands::dispatch(&ctx, cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = commands::error_text(&e);
            // With --log the message goes to the log file too; stderr always
            // gets it, as clients that do not pass --log read stderr.
            if cli.log.is_some() {
                tracing::error!("{msg}");
            }
            eprintln!("{msg}");
            std::process::exit(1);
        }
    }
}
