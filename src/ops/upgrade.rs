//! Graceful upgrade: a new jitgate process takes over the listening sockets of a running one,
//! so a new binary or config goes live without a refused connection or a failed request.
//!
//! This is pingora's zero-downtime upgrade, started from `jitgate run --upgrade`:
//!
//! ```text
//! new process                                   old process
//! load config and policies, open the store
//! (any problem: exit here, the old one never noticed)
//! SIGQUIT to the pid in --pid-file   ────────>  sends its listening sockets over the
//! wait on listen.upgrade_socket      <────────  upgrade socket, then drains (gate/draining.rs):
//! accept on the same sockets                    still answers for 5 s, every answer with
//! write --pid-file, tell systemd MAINPID        `Connection: close`; stops accepting; lets
//!                                               requests in flight finish (drain_timeout)
//! ```
//!
//! Both processes accept on the same sockets for those 5 s, so no connection is refused. The
//! sessions live in the store (SQLite in WAL mode, or PostgreSQL), which both use at once.
//! Without `--pid-file` the operator sends SIGQUIT to the old process: it retries handing
//! over its sockets for about 5 s, and the new one waits for them as long.

use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(
        "cannot read the pid file {path}: {source}; is jitgate running with --pid-file {path}?"
    )]
    ReadPidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pid file {path} holds `{text}`, not a process id")]
    BadPid { path: PathBuf, text: String },
    #[error("no process {pid} (from {path}) is running: start jitgate without --upgrade")]
    NotRunning { pid: i32, path: PathBuf },
    #[error("the pid file {path} names this process")]
    OwnPid { path: PathBuf },
    #[error("process {pid} (from {path}) is `{name}`, not jitgate: the pid file is stale")]
    NotJitgate {
        pid: i32,
        path: PathBuf,
        name: String,
    },
    #[error("cannot signal process {pid} (from {path}): {source}")]
    Signal {
        pid: i32,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("cannot create the upgrade socket {path}: {source} (set listen.upgrade_socket to a path in a directory jitgate can write)")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the pid file {path}: {source}")]
    WritePidFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The running jitgate named by a pid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldProcess(i32);

impl OldProcess {
    /// Reads the pid file and checks that the process it names is alive and is not us.
    pub fn from_pid_file(path: &Path) -> Result<Self, UpgradeError> {
        let text = std::fs::read_to_string(path).map_err(|source| UpgradeError::ReadPidFile {
            path: path.to_path_buf(),
            source,
        })?;
        let pid: i32 = text
            .trim()
            .parse()
            .ok()
            .filter(|pid| *pid > 0)
            .ok_or_else(|| UpgradeError::BadPid {
                path: path.to_path_buf(),
                text: text.trim().to_string(),
            })?;
        if pid == std::process::id() as i32 {
            return Err(UpgradeError::OwnPid {
                path: path.to_path_buf(),
            });
        }
        // Signal "none" only checks that the process exists and may be signalled.
        match kill(Pid::from_raw(pid), None) {
            Ok(()) => {
                // A pid file left by a crash may name a process that took the number since:
                // SIGQUIT would stop it. Its name must be ours.
                let name = |proc: &str| std::fs::read_to_string(format!("/proc/{proc}/comm"));
                match (name(&pid.to_string()), name("self")) {
                    (Ok(theirs), Ok(ours)) if theirs.trim() != ours.trim() => {
                        Err(UpgradeError::NotJitgate {
                            pid,
                            path: path.to_path_buf(),
                            name: theirs.trim().to_string(),
                        })
                    }
                    _ => Ok(Self(pid)),
                }
            }
            Err(nix::Error::ESRCH) => Err(UpgradeError::NotRunning {
                pid,
                path: path.to_path_buf(),
            }),
            Err(source) => Err(UpgradeError::Signal {
                pid,
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn pid(self) -> i32 {
        self.0
    }

    /// SIGQUIT: the old process hands its listening sockets to the upgrade socket and drains.
    pub fn hand_over(self, pid_file: &Path) -> Result<(), UpgradeError> {
        kill(Pid::from_raw(self.0), Signal::SIGQUIT).map_err(|source| UpgradeError::Signal {
            pid: self.0,
            path: pid_file.to_path_buf(),
            source,
        })
    }
}

/// Checks that a unix socket can be created at `path` before pingora tries (it panics when it
/// cannot). Leaves nothing behind.
pub fn check_socket_path(path: &Path) -> Result<(), UpgradeError> {
    let failed = |source| UpgradeError::Socket {
        path: path.to_path_buf(),
        source,
    };
    // A socket left by an earlier upgrade is stale: pingora removes it too.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    drop(std::os::unix::net::UnixListener::bind(path).map_err(failed)?);
    std::fs::remove_file(path).map_err(failed)
}

/// Writes this process's id to `path` (through a temporary file and a rename, so a reader
/// never sees half a number).
pub fn write_pid_file(path: &Path) -> Result<(), UpgradeError> {
    let failed = |source| UpgradeError::WritePidFile {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(failed)?;
    writeln!(file, "{}", std::process::id()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}

/// Removes the pid file at exit, unless a newer process has already written its own id there.
pub fn remove_pid_file_if_ours(path: &Path) {
    let ours = std::fs::read_to_string(path)
        .map(|text| text.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the pid file");
        }
    }
}

/// Under systemd (`Type=notify`, `NotifyAccess=all`): tells it that this process is ready and
/// is now the service's main process. It is how systemd follows an upgrade to the new pid.
/// Does nothing when `NOTIFY_SOCKET` is not set.
pub fn notify_systemd_ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = format!("READY=1\nMAINPID={}\n", std::process::id());
    if let Err(e) = send_notification(&socket, message.as_bytes()) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn send_notification(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    let bytes = socket.as_bytes();
    // `@name` is a socket in the abstract namespace.
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(Path::new(socket))?,
    };
    let sender = UnixDatagram::unbound()?;
    sender.send_to_addr(message, &address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trip_and_clear_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jitgate.pid");
        assert!(matches!(
            OldProcess::from_pid_file(&path),
            Err(UpgradeError::ReadPidFile { .. })
        ));
        write_pid_file(&path).unwrap();
        // Our own pid is refused: signalling ourselves would stop the new process.
        assert!(matches!(
            OldProcess::from_pid_file(&path),
            Err(UpgradeError::OwnPid { .. })
        ));
        std::fs::write(&path, "not a pid\n").unwrap();
        let err = OldProcess::from_pid_file(&path).unwrap_err().to_string();
        assert!(err.contains("not a process id"), "{err}");
        // A pid far above pid_max is never a running process.
        std::fs::write(&path, "2147483000\n").unwrap();
        assert!(matches!(
            OldProcess::from_pid_file(&path),
            Err(UpgradeError::NotRunning { .. })
        ));
        // A running process that is not jitgate (this test's own parent, cargo).
        std::fs::write(&path, format!("{}\n", std::os::unix::process::parent_id())).unwrap();
        let err = OldProcess::from_pid_file(&path).unwrap_err().to_string();
        assert!(err.contains("not jitgate"), "{err}");
        // Not ours any more: left alone.
        remove_pid_file_if_ours(&path);
        assert!(path.exists());
        write_pid_file(&path).unwrap();
        remove_pid_file_if_ours(&path);
        assert!(!path.exists());
    }

    #[test]
    fn upgrade_socket_in_a_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        check_socket_path(&dir.path().join("upgrade.sock")).unwrap();
        assert!(!dir.path().join("upgrade.sock").exists());
        let err = check_socket_path(&dir.path().join("missing/upgrade.sock"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen.upgrade_socket"), "{err}");
    }
}
