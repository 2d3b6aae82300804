//! `--user USER`: run as an unprivileged user, keeping only `CAP_NET_RAW`.
//!
//! The mechanism, in the order the daemon uses it:
//!
//! 1. [`RunAs::resolve`] looks the user up (uid, primary gid, supplementary
//!    groups from the group database, as `initgroups(3)` would).
//! 2. [`RunAs::as_user`] runs a closure with the user's *effective* ids
//!    (`setegid`, `setgroups`, `seteuid`) and switches back to root: the
//!    base directory is created and checked for writing as that user, so a
//!    directory the user cannot write is a start-up error on the terminal,
//!    not a failure later in syslog, and what the check creates belongs to
//!    the user.
//! 3. The lock and the ICMP sockets are taken as root.
//! 4. [`RunAs::drop_privileges`], while the process is still single-threaded
//!    (every thread started later inherits the result): the capability
//!    bounding set is reduced to `CAP_NET_RAW`, `PR_SET_KEEPCAPS` keeps the
//!    permitted set across the uid change, `setgroups`, `setresgid` and
//!    `setresuid` switch real, effective and saved ids for good, and then
//!    the permitted and effective sets become `{CAP_NET_RAW}`, the
//!    inheritable and ambient sets empty. `CAP_NET_RAW` stays so that raw
//!    sockets for bindings that appear later (a new `source_ip` or
//!    `interface`) still open; nothing else is kept, and root cannot be
//!    regained.

use std::ffi::CString;

use anyhow::{bail, Context};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};

/// The user to become.
#[derive(Debug, Clone)]
pub struct RunAs {
    /// The name given.
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups (the primary group included).
    pub groups: Vec<Gid>,
}

impl RunAs {
    /// Looks `name` up. Fails when the user does not exist, or when this
    /// process is not root (and is not already that user).
    pub fn resolve(name: &str) -> anyhow::Result<Option<RunAs>> {
        let user = User::from_name(name)
            .with_context(|| format!("--user {name}: cannot read the user database"))?
            .ok_or_else(|| anyhow::anyhow!("--user {name}: no such user"))?;
        let me = Uid::effective();
        if me == user.uid {
            // Already that user: nothing to switch.
            return Ok(None);
        }
        if !me.is_root() {
            bail!("--user {name}: switching to another user needs root (running as uid {me})");
        }
        let cname = CString::new(name).context("--user: the name holds a NUL byte")?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .with_context(|| format!("--user {name}: cannot list its groups"))?;
        Ok(Some(RunAs {
            name: name.to_owned(),
            uid: user.uid,
            gid: user.gid,
            groups,
        }))
    }

    /// Runs `f` with this user's effective uid, gid and groups, then
    /// switches back to root. Single-threaded callers only.
    pub fn as_user<T>(&self, f: impl FnOnce() -> T) -> anyhow::Result<T> {
        let root_groups = nix::unistd::getgroups().context("getgroups")?;
        nix::unistd::setgroups(&self.groups).context("setgroups")?;
        nix::unistd::setegid(self.gid).context("setegid")?;
        nix::unistd::seteuid(self.uid).context("seteuid")?;
        let out = f();
        nix::unistd::seteuid(Uid::from_raw(0)).context("seteuid back to root")?;
        nix::unistd::setegid(Gid::from_raw(0)).context("setegid back to root")?;
        nix::unistd::setgroups(&root_groups).context("setgroups back")?;
        Ok(out)
    }

    /// Becomes this user for good, keeping only `CAP_NET_RAW` (see the
    /// module docs). Call while the process is single-threaded.
    pub fn drop_privileges(&self) -> anyhow::Result<()> {
        let keep: CapsHashSet = [Capability::CAP_NET_RAW].into_iter().collect();
        // The bounding set first: it needs CAP_SETPCAP, which goes next.
        let bounding =
            caps::read(None, CapSet::Bounding).context("cannot read the bounding set")?;
        for cap in bounding {
            if cap != Capability::CAP_NET_RAW {
                caps::drop(None, CapSet::Bounding, cap)
                    .with_context(|| format!("cannot drop {cap} from the bounding set"))?;
            }
        }
        nix::sys::prctl::set_keepcaps(true).context("PR_SET_KEEPCAPS")?;
        nix::unistd::setgroups(&self.groups).context("setgroups")?;
        nix::unistd::setresgid(self.gid, self.gid, self.gid).context("setresgid")?;
        nix::unistd::setresuid(self.uid, self.uid, self.uid).context("setresuid")?;
        nix::sys::prctl::set_keepcaps(false).context("PR_SET_KEEPCAPS off")?;
        caps::clear(None, CapSet::Ambient).context("cannot clear the ambient set")?;
        caps::clear(None, CapSet::Inheritable).context("cannot clear the inheritable set")?;
        caps::set(None, CapSet::Permitted, &keep).context("cannot set the permitted set")?;
        caps::set(None, CapSet::Effective, &keep).context("cannot set the effective set")?;
        // Root must be out of reach.
        if nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            bail!(
                "--user {}: root could be regained after switching",
                self.name
            );
        }
        Ok(())
    }
}

/// Makes `CAP_NET_RAW` effective when it is permitted but not effective:
/// a binary with the file capability `cap_net_raw=p` (no effective bit, as
/// in the container image) gets it permitted on exec, and raises it only
/// here, so that the exec never fails where a container's bounding set
/// lacks it. Returns whether it was raised. Call before the runtime starts
/// its threads (they inherit the effective set).
pub fn raise_permitted_net_raw() -> bool {
    let cap = Capability::CAP_NET_RAW;
    let permitted = caps::has_cap(None, CapSet::Permitted, cap).unwrap_or(false);
    let effective = caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
    permitted && !effective && caps::raise(None, CapSet::Effective, cap).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_a_clear_error() {
        let e = RunAs::resolve("pm-no-such-user-xyz")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--user pm-no-such-user-xyz: no such user");
    }

    #[test]
    fn own_user_needs_no_switch() {
        let me = User::from_uid(Uid::effective()).unwrap().unwrap();
        assert!(RunAs::resolve(&me.name).unwrap().is_none());
    }
}
