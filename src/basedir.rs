//! The base directory (the original's layout): its layout, creation and the `.lock` that
//! keeps a second daemon off it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Default base directory.
pub const DEFAULT: &str = "/var/lib/pingmachine";

/// Paths of one base directory.
#[derive(Debug, Clone)]
pub struct BaseDir {
    /// The base directory itself.
    pub root: PathBuf,
    /// `orders/`: order files, any depth.
    pub orders: PathBuf,
    /// `telegraf/`: old-interface line-protocol sidecars.
    pub telegraf: PathBuf,
    /// `output/<id>/`: results of active orders.
    pub output: PathBuf,
    /// `archive/<id>/`: results of removed orders.
    pub archive: PathBuf,
    /// `rejected/<id>` and `rejected/<id>.error`: invalid orders and why.
    pub rejected: PathBuf,
}

/// Holds the exclusive lock until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl BaseDir {
    /// The layout below `root`.
    pub fn new(root: &Path) -> BaseDir {
        BaseDir {
            root: root.to_path_buf(),
            orders: root.join("orders"),
            telegraf: root.join("telegraf"),
            output: root.join("output"),
            archive: root.join("archive"),
            rejected: root.join("rejected"),
        }
    }

    /// Creates the directories that are missing.
    pub fn create(&self) -> anyhow::Result<()> {
        for d in [
            &self.root,
            &self.orders,
            &self.telegraf,
            &self.output,
            &self.archive,
            &self.rejected,
        ] {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create directory {}", d.display()))?;
        }
        Ok(())
    }

    /// Checks that files can be created in every directory the daemon
    /// writes (the base directory itself, `orders/`, `output/`, `archive/`,
    /// `rejected/`): creates and removes a probe file in each.
    pub fn check_writable(&self) -> anyhow::Result<()> {
        let name = format!(".pingmachine-write-check.{}", std::process::id());
        for d in [
            &self.root,
            &self.orders,
            &self.output,
            &self.archive,
            &self.rejected,
        ] {
            let p = d.join(&name);
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&p)
                .with_context(|| format!("cannot create files in {}", d.display()))?;
            std::fs::remove_file(&p)
                .with_context(|| format!("cannot remove files in {}", d.display()))?;
        }
        Ok(())
    }

    /// Opens (creating if needed) `.lock`, without locking it.
    pub fn lock_file(&self) -> anyhow::Result<File> {
        let path = self.root.join(".lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))
    }

    /// Takes the exclusive, non-blocking `flock` on `.lock`.
    pub fn lock(&self) -> anyhow::Result<Lock> {
        let path = self.root.join(".lock");
        let file = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(
                "another pingmachine is already running on {} (it holds the lock on {})",
                self.root.display(),
                path.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let b = BaseDir::new(&dir.path().join("base"));
        b.create().unwrap();
        assert!(
            b.orders.is_dir() && b.telegraf.is_dir() && b.output.is_dir() && b.archive.is_dir()
        );
        assert!(b.rejected.is_dir());
        let _l = b.lock().unwrap();
        let e = b.lock().unwrap_err().to_string();
        assert!(e.contains("another pingmachine is already running"), "{e}");
    }
}
