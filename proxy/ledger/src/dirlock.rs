//! One process per directory: an advisory exclusive lock on `<dir>/.lock` (`flock`), held for as
//! long as the returned file lives and dropped by the OS when the process dies, so a crash never
//! leaves a stale lock. The ledger writer locks its directory (two writers would interleave two
//! chains in one file) and the engine its data directory (approvals and keys).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a lock is waited for: long enough for a holder in this process that is shutting down to
/// let go, short enough to fail a second process quickly.
pub const WAIT: Duration = Duration::from_secs(2);

/// Why a directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another holder kept the lock for the whole wait.
    InUse { lock: PathBuf },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Locks `dir` (which must exist), waiting up to `wait` for another holder.
pub fn lock(dir: &Path, wait: Duration) -> Result<File, LockError> {
    let path = dir.join(".lock");
    let file = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(source) => return Err(LockError::Io { path, source }),
    };
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => return Err(LockError::InUse { lock: path }),
            Err(TryLockError::Error(source)) => return Err(LockError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_is_refused_until_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path(), Duration::ZERO).unwrap();
        match lock(dir.path(), Duration::from_millis(30)) {
            Err(LockError::InUse { lock }) => assert_eq!(lock, dir.path().join(".lock")),
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(held);
        assert!(lock(dir.path(), Duration::ZERO).is_ok());
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        match lock(&missing, Duration::ZERO) {
            Err(LockError::Io { path, .. }) => assert_eq!(path, missing.join(".lock")),
            other => panic!("expected Io, got {other:?}"),
        }
    }
}
