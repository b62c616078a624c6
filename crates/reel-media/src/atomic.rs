//! Outputs that appear under their requested name only when complete.
//!
//! A writer works on a hidden sibling (`.NAME.reel-tmp-PID-N`) and renames it
//! over the requested path in [`PendingOutput::commit`]. Dropping a pending
//! output (an error, a panic) removes the temporary, so the requested name
//! never holds a half-written video. A `kill -9` can leave the hidden
//! temporary behind, never a partial file under the requested name.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{MediaError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary path that is deleted (file or directory) when dropped.
#[derive(Debug)]
pub(crate) struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            let _ = if self.path.is_dir() { fs::remove_dir_all(&self.path) } else { fs::remove_file(&self.path) };
        }
    }
}

/// A hidden sibling path of `target`, with `suffix` appended.
pub(crate) fn sibling_temp(target: &Path, suffix: &str) -> TempPath {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "video".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let file = format!(".{name}.reel-tmp-{}-{n}{suffix}", std::process::id());
    TempPath { path: target.with_file_name(file), armed: true }
}

/// The directory an output will be written into; checked before anything is created.
fn check_parent(target: &Path) -> Result<()> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(MediaError::Unwritable {
            path: target.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, format!("'{}' is not a directory", parent.display())),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(MediaError::MissingDirectory { path: parent.to_path_buf() })
        }
        Err(source) => Err(MediaError::Unwritable { path: target.to_path_buf(), source }),
    }
}

/// An output being written; see the module docs.
#[derive(Debug)]
pub(crate) struct PendingOutput {
    target: PathBuf,
    temp: TempPath,
}

impl PendingOutput {
    /// Starts a file output: returns the guard and the open temporary file.
    pub(crate) fn file(target: &Path) -> Result<(Self, File)> {
        check_parent(target)?;
        if target.is_dir() {
            return Err(MediaError::Unwritable {
                path: target.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::IsADirectory, "a directory is in the way"),
            });
        }
        let temp = sibling_temp(target, "");
        let file = File::create(temp.path())
            .map_err(|source| MediaError::Unwritable { path: target.to_path_buf(), source })?;
        Ok((Self { target: target.to_path_buf(), temp }, file))
    }

    /// Starts a directory output (a folder of frames).
    pub(crate) fn dir(target: &Path) -> Result<Self> {
        check_parent(target)?;
        if target.exists() && !target.is_dir() {
            return Err(MediaError::Unwritable {
                path: target.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a file is in the way"),
            });
        }
        let temp = sibling_temp(target, "");
        fs::create_dir(temp.path()).map_err(|source| MediaError::Unwritable { path: target.to_path_buf(), source })?;
        Ok(Self { target: target.to_path_buf(), temp })
    }

    pub(crate) fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the finished temporary into place. An existing file is replaced
    /// atomically; an existing directory is moved aside first and then deleted.
    pub(crate) fn commit(mut self) -> Result<PathBuf> {
        let io = |source| MediaError::Io { path: self.target.clone(), source };
        if self.temp.path().is_dir() && self.target.is_dir() {
            let old = sibling_temp(&self.target, ".old");
            fs::rename(&self.target, old.path()).map_err(io)?;
            fs::rename(self.temp.path(), &self.target).map_err(io)?;
            drop(old);
        } else {
            fs::rename(self.temp.path(), &self.target).map_err(io)?;
        }
        self.temp.disarm();
        Ok(self.target.clone())
    }
}

/// Writes `bytes` to `path` so that the name only ever holds the whole content: written to a
/// hidden sibling, then renamed over it (an error leaves nothing, and any old file intact).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    use std::io::Write;
    let (pending, mut file) = PendingOutput::file(path)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|source| MediaError::Unwritable { path: path.to_path_buf(), source })?;
    drop(file);
    pending.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_output_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("v.mp4");
        {
            let (_pending, _file) = PendingOutput::file(&target).unwrap();
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_replaces_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("frames");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("stale.png"), b"x").unwrap();
        let pending = PendingOutput::dir(&target).unwrap();
        fs::write(pending.temp_path().join("new.png"), b"y").unwrap();
        pending.commit().unwrap();
        assert!(target.join("new.png").exists());
        assert!(!target.join("stale.png").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_parent_is_reported_before_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let err = PendingOutput::file(&dir.path().join("nope/v.mp4")).unwrap_err();
        assert!(matches!(err, MediaError::MissingDirectory { .. }), "{err}");
    }

    #[test]
    fn a_whole_file_replaces_the_old_one_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.json");
        fs::write(&target, b"old").unwrap();
        assert_eq!(write_atomic(&target, b"new").unwrap(), target);
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("missing/a.json"), b"x").unwrap_err();
        assert!(matches!(err, MediaError::MissingDirectory { .. }), "{err}");
    }
}
