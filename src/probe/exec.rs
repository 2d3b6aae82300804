//! `probe: exec` — an external probe command configured by the operator
//! (`--exec-probe NAME=COMMAND`) and chosen by name in the order: one run
//! per order and round, printing fping `-C` output.

use super::{Probe, Probed, RoundCx};
use crate::spec::fields::{check_tool_arg, Section};
use crate::spec::OrderError;

/// The `exec:` section: an external probe command configured by the
/// operator (`--exec-probe NAME=COMMAND`), chosen by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// Name of the configured command.
    pub probe: String,
    /// Target, passed to the command as its last argument.
    pub host: String,
    /// Extra arguments, before the host.
    pub args: Vec<String>,
    /// Milliseconds between pings, passed to the command (default 1000).
    pub interval_ms: u32,
}

impl Probe for ExecSpec {
    fn parse(s: &Section<'_>, step: u32, pings: u32) -> Result<Self, OrderError> {
        let probe = s.req_string("probe")?;
        if probe.is_empty()
            || !probe
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(s.err(
                "probe",
                "an exec probe name is letters, digits, `-` and `_` (configured with --exec-probe NAME=COMMAND)",
            ));
        }
        let host = s.req_string("host")?;
        check_tool_arg(&host).map_err(|why| s.err("host", why))?;
        let args = s.string_list("args")?;
        // The command is given the whole round; it has no timeout of its own.
        let interval_ms = s.interval_fit(step, pings, 0)?;
        Ok(ExecSpec {
            probe,
            host,
            args,
            interval_ms,
        })
    }

    fn target(&self) -> String {
        format!("{} {}", self.probe, self.host)
    }

    fn label_host(&self) -> String {
        self.host.clone()
    }

    async fn round<'a>(&'a self, cx: &'a RoundCx<'a>) -> Option<Probed> {
        let Some(template) = cx.deps.exec.get(&self.probe) else {
            cx.deps.warn_once(
                cx.id,
                &format!(
                    "exec probe {:?} is not configured (pingmachine run --exec-probe {}=COMMAND)",
                    self.probe, self.probe
                ),
            );
            return None;
        };
        let mut args = template.args(cx.vars(self.interval_ms));
        args.extend(self.args.iter().cloned());
        args.push(self.host.clone());
        cx.run_command(&template.program, &args, &self.host).await
    }
}
