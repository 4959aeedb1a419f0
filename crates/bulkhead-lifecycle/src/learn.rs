//! Learning a seccomp profile for an OCI run (`create/run --learn-seccomp
//! FILE` or the `io.bulkhead.seccomp.learn` annotation): the config's
//! profile is turned into a learning one whose listener is a recorder
//! process (`bulkhead learn-recorder`, started here, outliving `create`),
//! which writes FILE when the container's init exits.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use bulkhead_seccomp::learn::{self, ANNOTATION};
use oci_spec::runtime::Spec;
use rustix::event::{PollFd, PollFlags};

use crate::LifecycleError;

/// The hidden subcommand the recorder runs as.
pub const RECORDER_COMMAND: &str = "learn-recorder";

/// What the recorder needs, decided before anything is created.
#[derive(Debug)]
pub(crate) struct Request {
    pub out: PathBuf,
    /// Where `out` may be: the annotation is confined to the bundle.
    pub confine: learn::Confine,
    /// The config's own profile (None: it has none).
    pub base: Option<serde_json::Value>,
    pub socket: PathBuf,
    /// The flag or the annotation, for messages.
    pub what: String,
}

fn invalid(e: impl std::fmt::Display) -> LifecycleError {
    LifecycleError::Invalid(e.to_string())
}

/// The learning request of a create, if any (the flag wins over the
/// annotation), with `spec`'s profile replaced by the learning one.
pub(crate) fn prepare(
    spec: &mut Spec,
    flag: Option<&Path>,
    bundle: &Path,
    state_dir: &Path,
) -> Result<Option<Request>, LifecycleError> {
    let annotation = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .cloned();
    let (out, what, confine) = match (flag, annotation) {
        (Some(f), _) => (
            f.to_path_buf(),
            "--learn-seccomp".to_string(),
            learn::Confine::Caller,
        ),
        (None, Some(a)) => {
            let what = format!("annotations[\"{ANNOTATION}\"]");
            if !Path::new(&a).is_absolute() {
                return Err(invalid(format!(
                    "{what}: {a:?} is not an absolute path (the runtime's working directory is the engine's, not yours)"
                )));
            }
            // The config's author is not the runtime's caller: the file
            // goes only where root put nothing it needs.
            (
                PathBuf::from(a),
                what,
                learn::Confine::Bundle(bundle.to_path_buf()),
            )
        }
        (None, None) => return Ok(None),
    };
    let out = learn::check_output(&out, &confine, &what).map_err(invalid)?;
    let socket = state_dir.join("learn.sock");
    let base = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(serde_json::to_value)
        .transpose()
        .map_err(invalid)?;
    let learning = learn::learning_profile(base.as_ref(), &socket, &what).map_err(invalid)?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux
        .set_seccomp(Some(serde_json::from_value(learning).map_err(|e| {
            invalid(format!("{what}: the learning profile: {e}"))
        })?));
    spec.set_linux(Some(linux));
    Ok(Some(Request {
        out,
        confine,
        base,
        socket,
        what,
    }))
}

/// Refuses an output directory the container could write (its root or a
/// bind mount's source, or anything beneath them): the container could
/// swap names in it while root writes there.
pub(crate) fn check_not_in_container(
    req: &Request,
    plan: &bulkhead_spec::plan::Plan,
) -> Result<(), LifecycleError> {
    use rustix::fs::{Mode, OFlags};
    let id = |st: &rustix::fs::Stat| (st.st_dev, st.st_ino);
    let mut writable = vec![(plan.rootfs.clone(), "root.path".to_string())];
    for (i, m) in plan.mounts.iter().enumerate() {
        if m.is_bind()
            && let Some(src) = &m.source
        {
            writable.push((PathBuf::from(src), format!("mounts[{i}].source")));
        }
    }
    let ids: Vec<_> = writable
        .iter()
        .filter_map(|(p, what)| Some((id(&rustix::fs::stat(p).ok()?), p, what)))
        .collect();
    let Some(parent) = req.out.parent() else {
        return Ok(());
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(parent, flags, Mode::empty()).map_err(|e| {
        invalid(format!(
            "{}: {}: {}",
            req.what,
            parent.display(),
            std::io::Error::from(e)
        ))
    })?;
    // Walk up by "..", as the kernel sees it (not as the path spells it).
    for _ in 0..4096 {
        let st = rustix::fs::fstat(&dir).map_err(|e| invalid(std::io::Error::from(e)))?;
        if let Some((_, p, what)) = ids.iter().find(|(i, _, _)| *i == id(&st)) {
            return Err(invalid(format!(
                "{}: {}: is inside the container's {what} ({}), which the container can write",
                req.what,
                req.out.display(),
                p.display()
            )));
        }
        let up = rustix::fs::openat(&dir, "..", flags, Mode::empty())
            .map_err(|e| invalid(std::io::Error::from(e)))?;
        let up_st = rustix::fs::fstat(&up).map_err(|e| invalid(std::io::Error::from(e)))?;
        if id(&up_st) == id(&st) {
            break;
        }
        dir = up;
    }
    Ok(())
}

/// The running recorder; killed if the create fails.
pub(crate) struct Recorder {
    child: Child,
    /// Its EOF tells the recorder the create is over.
    control: Option<ChildStdin>,
}

impl Recorder {
    /// Starts the recorder and waits until it listens.
    pub(crate) fn start(req: &Request, state_dir: &Path) -> Result<Recorder, LifecycleError> {
        let io = |what: &str| {
            let what = format!("--learn-seccomp: {what}");
            move |source| LifecycleError::Io { what, source }
        };
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(RECORDER_COMMAND)
            .arg("--socket")
            .arg(&req.socket)
            .arg("--out")
            .arg(&req.out);
        if let learn::Confine::Bundle(b) = &req.confine {
            cmd.arg("--confine-to-bundle").arg(b);
        }
        if let Some(b) = &req.base {
            let f = state_dir.join("learn-base.json");
            std::fs::write(&f, b.to_string()).map_err(io("save the base profile"))?;
            cmd.arg("--base").arg(f);
        }
        // Nothing of the caller's output is held: engines wait for EOF on it.
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("start the recorder"))?;
        let control = child.stdin.take();
        let mut rec = Recorder { child, control };
        let mut line = String::new();
        if let Some(out) = rec.child.stdout.take() {
            BufReader::new(out)
                .read_line(&mut line)
                .map_err(io("start the recorder"))?;
        }
        if line.trim() != "ready" {
            let msg = line.trim().to_string();
            rec.kill();
            return Err(LifecycleError::Invalid(if msg.is_empty() {
                "--learn-seccomp: the recorder exited before listening".into()
            } else {
                msg
            }));
        }
        Ok(rec)
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub(crate) fn kill(&mut self) {
        self.control = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The create succeeded: the recorder goes on alone.
    pub(crate) fn detach(mut self) {
        self.control = None;
    }
}

/// Waits (at most `secs`) for the recorder `pid` (started at `start`) to
/// finish: it writes the profile once the init has exited.
pub(crate) fn wait_recorder(pid: i32, start: u64, secs: i64) {
    let Ok(fd) = crate::proc::pidfd(pid, start) else {
        return;
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut fds, Some(&timeout)) {}
}
