//! The D-Bus client to systemd's manager (`org.freedesktop.systemd1`), on
//! the `dbus` crate (libdbus) with its blocking API. It connects to the
//! system bus, else straight to systemd's private socket (root only; what
//! `systemctl` uses when there is no dbus-daemon), and waits for jobs through
//! the `JobRemoved` signal. No thread is started: the create path forks
//! after talking to systemd.
//!
//! Why not zbus: systemd marks the messages it sends on its private socket
//! with the sender `org.freedesktop.systemd1`, a well-known name, and zbus 5
//! takes any sender for a unique name and panics on them.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbus::arg::{RefArg, Variant};
use dbus::blocking::Connection;
use dbus::channel::{Channel, MatchingReceiver};
use dbus::message::MatchRule;

use super::{PropValue, Property, SystemdError};

/// The system bus socket.
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
/// systemd's own socket, for root, without a bus daemon.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a start or stop job may take (runc waits 30 s too).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one method call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to systemd.
pub struct Systemd {
    conn: Connection,
    /// Where it was made (for messages).
    pub socket: PathBuf,
    /// The `JobRemoved` collector, once registered.
    signals_seen: RefCell<Option<Seen>>,
}

/// What [`Systemd::start_transient_unit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The unit was created and its start job finished.
    Created,
    /// A unit of that name exists and is running: the caller joins it.
    Exists,
}

type Props = Vec<(&'static str, Variant<Box<dyn RefArg>>)>;

fn to_variant(v: &PropValue) -> Variant<Box<dyn RefArg>> {
    Variant(match v {
        PropValue::Bool(b) => Box::new(*b),
        PropValue::U64(n) => Box::new(*n),
        PropValue::Str(s) => Box::new(s.clone()),
        PropValue::Strs(v) => Box::new(v.clone()),
        PropValue::U32s(v) => Box::new(v.clone()),
        PropValue::Bytes(v) => Box::new(v.clone()),
        PropValue::Pairs(v) => Box::new(v.clone()),
    })
}

fn to_props(props: &[Property]) -> Props {
    props.iter().map(|(n, v)| (*n, to_variant(v))).collect()
}

fn is_error(e: &SystemdError, name: &str) -> bool {
    matches!(e, SystemdError::Call { source, .. } if source.name() == Some(name))
}

/// `JobRemoved` results seen so far: (job path, result).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

impl Systemd {
    /// Connect: the system bus when its socket exists and systemd answers
    /// there, else systemd's private socket.
    pub fn connect() -> Result<Systemd, SystemdError> {
        Self::connect_to(Path::new(SYSTEM_BUS), Path::new(PRIVATE_SOCKET))
    }

    /// [`Systemd::connect`] with other socket paths.
    pub fn connect_to(bus: &Path, private: &Path) -> Result<Systemd, SystemdError> {
        let address = |p: &Path| format!("unix:path={}", p.display());
        let bus_error = match Channel::open_private(&address(bus)).and_then(|mut ch| {
            ch.register()?;
            Ok(ch)
        }) {
            Ok(ch) => {
                let sd = Systemd {
                    conn: Connection::from(ch),
                    socket: bus.to_path_buf(),
                    signals_seen: RefCell::default(),
                };
                // A bus without systemd on it (a container's dbus-daemon)
                // is no use: check that the manager answers.
                match sd.version_string() {
                    Ok(_) => return Ok(sd),
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        // A direct connection: no bus, so no Hello.
        match Channel::open_private(&address(private)) {
            Ok(ch) => Ok(Systemd {
                conn: Connection::from(ch),
                socket: private.to_path_buf(),
                signals_seen: RefCell::default(),
            }),
            Err(e) => Err(SystemdError::Connect {
                bus: bus.to_path_buf(),
                bus_error,
                private: private.to_path_buf(),
                private_error: e.to_string(),
            }),
        }
    }

    fn call<A, R>(&self, method: &'static str, unit: &str, args: A) -> Result<R, SystemdError>
    where
        A: dbus::arg::AppendAll,
        R: dbus::arg::ReadAll,
    {
        self.conn
            .with_proxy(DEST, PATH, CALL_TIMEOUT)
            .method_call(MANAGER, method, args)
            .map_err(|source| SystemdError::Call {
                method,
                unit: unit.to_string(),
                source,
            })
    }

    fn version_string(&self) -> Result<String, SystemdError> {
        let (v,): (Variant<String>,) = self
            .conn
            .with_proxy(DEST, PATH, CALL_TIMEOUT)
            .method_call(
                "org.freedesktop.DBus.Properties",
                "Get",
                (MANAGER, "Version"),
            )
            .map_err(|source| SystemdError::Call {
                method: "Get Version",
                unit: String::new(),
                source,
            })?;
        Ok(v.0)
    }

    /// systemd's version number (`252` of `252.39-1~deb12u2`); 0 when it
    /// cannot be read, which leaves out the newer properties.
    pub fn version(&self) -> u32 {
        self.version_string()
            .ok()
            .and_then(|v| {
                let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .unwrap_or(0)
    }

    /// Start collecting `JobRemoved` signals, before a job is queued so that
    /// its end cannot be missed. Direct connections get every signal; on the
    /// bus, `Subscribe` asks systemd to send them and a match rule lets the
    /// daemon pass them on.
    fn job_signals(&self) -> Result<Seen, SystemdError> {
        if let Some(seen) = self.signals_seen.borrow().as_ref() {
            return Ok(seen.clone());
        }
        let seen: Seen = Arc::default();
        let rule = MatchRule::new_signal(MANAGER, "JobRemoved");
        if self.socket != Path::new(PRIVATE_SOCKET) {
            let _: () = self.call("Subscribe", "", ())?;
            self.conn
                .add_match_no_cb(&rule.match_str())
                .map_err(|source| SystemdError::Call {
                    method: "AddMatch JobRemoved",
                    unit: String::new(),
                    source,
                })?;
        }
        let sink = seen.clone();
        self.conn.start_receive(
            rule,
            Box::new(move |msg, _| {
                if let Ok((_, job, _, result)) = msg.read4::<u32, dbus::Path, String, String>() {
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((job.to_string(), result));
                }
                true
            }),
        );
        *self.signals_seen.borrow_mut() = Some(seen.clone());
        Ok(seen)
    }

    /// Wait for `JobRemoved` of `job`; its result must be `done`.
    fn wait_job(&self, seen: &Seen, unit: &str, job: &dbus::Path) -> Result<(), SystemdError> {
        let deadline = Instant::now() + JOB_TIMEOUT;
        loop {
            let found = seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(j, _)| **j == **job)
                .map(|(_, r)| r.clone());
            if let Some(result) = found {
                if result == "done" {
                    return Ok(());
                }
                return Err(SystemdError::JobFailed {
                    unit: unit.to_string(),
                    job: job.to_string(),
                    result,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SystemdError::JobTimeout {
                    unit: unit.to_string(),
                    secs: JOB_TIMEOUT.as_secs(),
                });
            }
            self.conn
                .process(left)
                .map_err(|source| SystemdError::Call {
                    method: "waiting for JobRemoved",
                    unit: unit.to_string(),
                    source,
                })?;
        }
    }

    /// `StartTransientUnit(unit, "replace", props, [])` and wait for the
    /// job. A unit that exists already is reset (if it failed) and tried
    /// once more; if it still exists it is running, and is joined.
    pub fn start_transient_unit(
        &self,
        unit: &str,
        props: &[Property],
    ) -> Result<Started, SystemdError> {
        let seen = self.job_signals()?;
        for attempt in 0..2 {
            let aux: Vec<(&str, Props)> = Vec::new();
            match self.call::<_, (dbus::Path,)>(
                "StartTransientUnit",
                unit,
                (unit, "replace", to_props(props), aux),
            ) {
                Ok((job,)) => {
                    return match self.wait_job(&seen, unit, &job) {
                        Ok(()) => Ok(Started::Created),
                        Err(e) => {
                            self.reset_failed_unit(unit);
                            Err(e)
                        }
                    };
                }
                Err(e) if is_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                    if attempt == 0 {
                        // A failed or dead leftover of that name: clear it.
                        self.reset_failed_unit(unit);
                        continue;
                    }
                    return Ok(Started::Exists);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Started::Exists)
    }

    /// `SetUnitProperties(unit, true, props)`: runtime only, as runc does.
    pub fn set_unit_properties(&self, unit: &str, props: &[Property]) -> Result<(), SystemdError> {
        if props.is_empty() {
            return Ok(());
        }
        self.call("SetUnitProperties", unit, (unit, true, to_props(props)))
    }

    /// `StopUnit(unit, "replace")` and wait for the job; a unit systemd no
    /// longer knows (a scope is dropped once its last process is gone) is
    /// already stopped.
    pub fn stop_unit(&self, unit: &str) -> Result<(), SystemdError> {
        let seen = self.job_signals()?;
        match self.call::<_, (dbus::Path,)>("StopUnit", unit, (unit, "replace")) {
            Ok((job,)) => self.wait_job(&seen, unit, &job),
            Err(e) if is_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `ResetFailedUnit(unit)`, so that a failed unit does not linger and
    /// block the name; errors (no such unit, not failed) do not matter.
    pub fn reset_failed_unit(&self, unit: &str) {
        let _: Result<(), _> = self.call("ResetFailedUnit", unit, (unit,));
    }
}
