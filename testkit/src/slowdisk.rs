//! Storage a test can make slow on purpose, and fast again: an ext2 file
//! system on a loop device of its own, mounted at a directory the test
//! owns, and a block-I/O cgroup that throttles the processes put into it.
//!
//! * **Fast**: mounted `async`, no limit: writes go to the page cache.
//! * **Slow** ([`SlowDisk::slow`]): remounted `sync`, so every write (data,
//!   inodes, directories) goes to the device at once, from the writing
//!   task; and the cgroup limits that device to a few I/O operations per
//!   second, reads and writes. ext2 has no journal thread, so every I/O is
//!   the process's own and is throttled.
//!
//! The cgroup is cgroup v2's `io.max` where the `io` controller is
//! available, else cgroup v1's `blkio.throttle.*`. Nothing touches the
//! machine's own disks, mounts or cgroups but what it creates; names carry
//! the test's pid, and [`remove_stale`] removes what a killed run left.
//! Dropping the value unmounts, detaches the loop device and removes the
//! cgroup (processes still in it go back to the root cgroup). Needs root.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::impair::run_bounded;

/// Every mount point and cgroup of this kind is named `PREFIX<pid>-<n>`.
pub const PREFIX: &str = "pm-slowdisk-";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

fn run(program: &str, args: &[&str]) -> io::Result<String> {
    let out = run_bounded(program, args, COMMAND_TIMEOUT)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Which cgroup interface throttles the device.
#[derive(Debug, Clone)]
enum Cgroup {
    /// cgroup v2: `io.max` in this directory.
    V2(PathBuf),
    /// cgroup v1: `blkio.throttle.*` in this directory.
    V1(PathBuf),
}

impl Cgroup {
    fn dir(&self) -> &Path {
        match self {
            Cgroup::V2(d) | Cgroup::V1(d) => d,
        }
    }

    /// Creates the cgroup `name` with whichever interface this machine has.
    fn create(name: &str) -> io::Result<Cgroup> {
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        let cg = if controllers.split_whitespace().any(|c| c == "io") {
            let subtree = v2.join("cgroup.subtree_control");
            let on = std::fs::read_to_string(&subtree).unwrap_or_default();
            if !on.split_whitespace().any(|c| c == "io") {
                std::fs::write(&subtree, "+io")?;
            }
            Cgroup::V2(v2.join(name))
        } else if Path::new("/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device").exists() {
            Cgroup::V1(Path::new("/sys/fs/cgroup/blkio").join(name))
        } else {
            return Err(io::Error::other(
                "neither cgroup v2's io controller nor cgroup v1's blkio throttling is available",
            ));
        };
        std::fs::create_dir(cg.dir())?;
        Ok(cg)
    }

    /// Limits the device `dev` (`MAJ:MIN`) to `iops` reads and writes a
    /// second; `None` lifts the limit.
    fn limit(&self, dev: &str, iops: Option<u32>) -> io::Result<()> {
        match self {
            Cgroup::V2(d) => {
                let v = iops.map_or_else(|| "max".to_owned(), |n| n.to_string());
                std::fs::write(d.join("io.max"), format!("{dev} riops={v} wiops={v}"))
            }
            Cgroup::V1(d) => {
                let v = iops.unwrap_or(0);
                for f in [
                    "blkio.throttle.read_iops_device",
                    "blkio.throttle.write_iops_device",
                ] {
                    std::fs::write(d.join(f), format!("{dev} {v}"))?;
                }
                Ok(())
            }
        }
    }

    /// Moves process `pid` (all its threads) into the cgroup.
    fn add(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.dir().join("cgroup.procs"), pid.to_string())
    }

    /// Moves every process back to the root cgroup and removes the cgroup.
    fn remove(&self) -> io::Result<()> {
        let root = self.dir().parent().unwrap_or(Path::new("/sys/fs/cgroup"));
        let procs = std::fs::read_to_string(self.dir().join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(root.join("cgroup.procs"), pid);
        }
        std::fs::remove_dir(self.dir())
    }
}

/// A file system the test can slow down and speed up.
#[derive(Debug)]
pub struct SlowDisk {
    /// Where it is mounted: put the base directory below it.
    pub mount: PathBuf,
    /// The loop device, `/dev/loopN`.
    pub device: String,
    /// `MAJ:MIN` of the loop device.
    pub dev: String,
    cgroup: Cgroup,
    /// Holds the image file and the mount point; removed last.
    dir: tempfile::TempDir,
}

impl SlowDisk {
    /// Makes a file system of `size_mb` MB, mounted fast, with an empty
    /// cgroup beside it.
    pub fn create(size_mb: u64) -> io::Result<SlowDisk> {
        let stale = remove_stale();
        if !stale.is_empty() {
            eprintln!("slowdisk: removed what killed runs left: {stale:?}");
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        let dir = tempfile::Builder::new().prefix(&name).tempdir()?;
        let image = dir.path().join("image");
        let mount = dir.path().join(&name);
        std::fs::create_dir(&mount)?;
        std::fs::File::create(&image)?.set_len(size_mb << 20)?;
        let image_s = image.to_string_lossy().into_owned();
        let device = run("losetup", &["--find", "--show", &image_s])?;
        let dev = match Self::dev_of(&device) {
            Ok(d) => d,
            Err(e) => {
                let _ = run("losetup", &["-d", &device]);
                return Err(e);
            }
        };
        let cgroup = match Cgroup::create(&name) {
            Ok(c) => c,
            Err(e) => {
                let _ = run("losetup", &["-d", &device]);
                return Err(e);
            }
        };
        let disk = SlowDisk {
            mount,
            device,
            dev,
            cgroup,
            dir,
        };
        // From here on, Drop undoes everything.
        run("mkfs.ext2", &["-q", "-F", "-b", "4096", &disk.device])?;
        let m = disk.mount.to_string_lossy().into_owned();
        run("mount", &["-t", "ext2", "-o", "async", &disk.device, &m])?;
        Ok(disk)
    }

    fn dev_of(device: &str) -> io::Result<String> {
        let base = Path::new(device)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(std::fs::read_to_string(format!("/sys/block/{base}/dev"))?
            .trim()
            .to_owned())
    }

    /// Puts process `pid` under the disk's throttle.
    pub fn add_process(&self, pid: u32) -> io::Result<()> {
        self.cgroup.add(pid)
    }

    /// Makes the disk slow: synchronous writes, at most `iops` reads and
    /// writes a second for the processes added.
    pub fn slow(&self, iops: u32) -> io::Result<()> {
        let m = self.mount.to_string_lossy().into_owned();
        run("mount", &["-o", "remount,sync", &m])?;
        self.cgroup.limit(&self.dev, Some(iops))
    }

    /// Makes the disk fast again: no limit, writes to the page cache.
    pub fn fast(&self) -> io::Result<()> {
        self.cgroup.limit(&self.dev, None)?;
        let m = self.mount.to_string_lossy().into_owned();
        run("mount", &["-o", "remount,async", &m])?;
        Ok(())
    }
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        let _ = self.cgroup.limit(&self.dev, None);
        if let Err(e) = self.cgroup.remove() {
            eprintln!(
                "slowdisk: cannot remove cgroup {}: {e}",
                self.cgroup.dir().display()
            );
        }
        let m = self.mount.to_string_lossy().into_owned();
        if let Err(e) = run("umount", &[&m]) {
            eprintln!("slowdisk: {e}; detaching lazily");
            let _ = run("umount", &["-l", &m]);
        }
        if let Err(e) = run("losetup", &["-d", &self.device]) {
            eprintln!("slowdisk: {e}");
        }
        let _ = &self.dir;
    }
}

/// Removes the mounts, loop devices and cgroups of runs whose process is
/// gone (a test killed before its `Drop` ran). Returns what it removed.
pub fn remove_stale() -> Vec<String> {
    let dead = |name: &str| -> bool {
        name.split(PREFIX)
            .nth(1)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
    };
    let mut removed = Vec::new();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(device), Some(point)) = (f.next(), f.next()) else {
            continue;
        };
        let leaf = Path::new(point)
            .file_name()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        if leaf.starts_with(PREFIX) && dead(&leaf) {
            if run("umount", &["-l", point]).is_ok() {
                removed.push(point.to_owned());
            }
            if device.starts_with("/dev/loop") {
                let _ = run("losetup", &["-d", device]);
            }
            if let Some(parent) = Path::new(point).parent() {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
    }
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/blkio"] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) && dead(&name) {
                let cg = Cgroup::V1(e.path());
                if cg.remove().is_ok() {
                    removed.push(e.path().display().to_string());
                }
            }
        }
    }
    removed
}
