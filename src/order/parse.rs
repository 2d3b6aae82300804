//! YAML → [`Order`]: parse the file into a YAML tree, then check each field
//! with a small rule function whose error names file, field, value and rule.
//!
//! Policy decisions (documented in `docs/ORDERS.md`):
//! * unknown top-level keys are accepted (the original ignored them) and
//!   reported as warnings, so typos are visible in the log;
//! * numbers may be written quoted (`step: "300"`), as Perl clients often do;
//! * a file is at most [`MAX_ORDER_BYTES`] and must be UTF-8.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::{Order, OrderError, OrderId, RrdTemplate, TelegrafMeta};
use crate::probe::{ProbeKind, ProbeSpec};
use crate::spec::fields::{
    opt_string, req_string, req_uint, scalar_text, show_value, Ctx, Section,
};

/// Largest order file accepted.
pub const MAX_ORDER_BYTES: usize = 64 * 1024;
/// Largest `step` accepted (one day).
pub const MAX_STEP: u32 = 86_400;
/// Largest `pings` accepted (each ping is a data source in `main.rrd`).
pub const MAX_PINGS: u32 = 1000;

/// The top-level fields of an order other than the probe sections.
pub const ORDER_KEYS: [&str; 8] = [
    "user",
    "task",
    "step",
    "pings",
    "probe",
    "rrd_template",
    "measurement_name",
    "tags",
];

/// Every top-level field an order may have: [`ORDER_KEYS`], then one
/// section per probe type ([`ProbeKind::ALL`]).
pub const TOP_LEVEL_KEYS: [&str; ORDER_KEYS.len() + ProbeKind::COUNT] = {
    let mut out = [""; ORDER_KEYS.len() + ProbeKind::COUNT];
    let mut i = 0;
    while i < ORDER_KEYS.len() {
        out[i] = ORDER_KEYS[i];
        i += 1;
    }
    let mut j = 0;
    while j < ProbeKind::COUNT {
        out[i + j] = ProbeKind::ALL[j].name();
        j += 1;
    }
    out
};

/// A parsed order and the warnings found on the way (unknown keys).
#[derive(Debug)]
pub struct Parsed {
    /// The order.
    pub order: Order,
    /// Things worth a log line that do not make the order invalid.
    pub warnings: Vec<String>,
}

/// Parses `bytes`, the content of order file `file` with id `id`.
pub fn parse_order(file: &Path, id: &OrderId, bytes: &[u8]) -> Result<Parsed, OrderError> {
    let cx = Ctx { file };
    let root = load_yaml(&cx, bytes)?;
    let map = match &root {
        Value::Mapping(m) => m,
        other => return Err(cx.err("", Some(other), "an order is a YAML mapping of fields")),
    };
    let mut warnings = Vec::new();
    for key in map.keys() {
        match key.as_str() {
            Some(k) if TOP_LEVEL_KEYS.contains(&k) => {}
            _ => warnings.push(format!(
                "{}: unknown field `{}` ignored",
                file.display(),
                show_value(key)
            )),
        }
    }

    let user = req_string(&cx, map, "user", "user")?;
    let task = opt_string(&cx, map, "task", "task")?;
    let step = req_uint(&cx, map, "step", "step", 1, MAX_STEP)?;
    let pings = req_uint(&cx, map, "pings", "pings", 1, MAX_PINGS)?;
    if step < pings {
        return Err(cx.err(
            "pings",
            map.get("pings"),
            format!("step / pings must be at least 1 (step is {step})"),
        ));
    }
    let probe_name = req_string(&cx, map, "probe", "probe")?;
    let kind = ProbeKind::from_name(&probe_name).ok_or_else(|| {
        cx.err(
            "probe",
            map.get("probe"),
            format!("unknown probe; expected one of {}", ProbeKind::names()),
        )
    })?;
    let name = kind.name();
    let section = match map.get(name) {
        Some(Value::Mapping(m)) => Section::new(cx, name, m),
        Some(other) => {
            return Err(cx.err(
                name,
                Some(other),
                "the probe section is a mapping of options",
            ))
        }
        None => {
            return Err(cx.err(
                name,
                None,
                format!("missing section `{name}:` for `probe: {name}`"),
            ))
        }
    };
    let probe = ProbeSpec::parse(kind, &section, step, pings)?;
    for key in section.unread() {
        warnings.push(format!(
            "{}: unknown field `{name}.{key}` ignored",
            file.display()
        ));
    }
    let rrd = match opt_string(&cx, map, "rrd_template", "rrd_template")?.as_deref() {
        None | Some("smokeping") => RrdTemplate::Smokeping,
        Some("norrd") => RrdTemplate::NoRrd,
        Some(_) => {
            return Err(cx.err(
                "rrd_template",
                map.get("rrd_template"),
                "expected `smokeping` or `norrd`",
            ))
        }
    };
    let telegraf = telegraf_fields(&cx, map)?.map(Box::new);
    Ok(Parsed {
        order: Order {
            id: id.clone(),
            user,
            task,
            step,
            pings,
            probe,
            rrd,
            telegraf,
        },
        warnings,
    })
}

/// Parses an old-interface `telegraf/<id>` sidecar (`measurement_name`, `tags`).
pub fn parse_telegraf_sidecar(file: &Path, bytes: &[u8]) -> Result<TelegrafMeta, OrderError> {
    let cx = Ctx { file };
    let root = load_yaml(&cx, bytes)?;
    match &root {
        Value::Mapping(m) => Ok(telegraf_fields(&cx, m)?.unwrap_or_default()),
        Value::Null => Ok(TelegrafMeta::default()),
        other => Err(cx.err("", Some(other), "a telegraf file is a YAML mapping")),
    }
}

fn load_yaml(cx: &Ctx<'_>, bytes: &[u8]) -> Result<Value, OrderError> {
    if bytes.len() > MAX_ORDER_BYTES {
        return Err(cx.err(
            "",
            None,
            format!(
                "file is {} bytes; orders are at most {MAX_ORDER_BYTES} bytes",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        cx.err(
            "",
            None,
            format!(
                "file is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(cx.err("", None, "file is empty"));
    }
    serde_yaml_ng::from_str::<Value>(text).map_err(|e| {
        let msg = e.to_string();
        let reason = if msg.contains("repetition limit exceeded") {
            format!("YAML aliases expand too much (an alias bomb?): {msg}")
        } else if msg.contains("recursion limit exceeded") {
            format!("YAML nested too deeply: {msg}")
        } else {
            format!("YAML syntax error: {msg}")
        };
        let mut err = cx.err("", None, reason);
        err.line = e.location().map(|l| l.line());
        err
    })
}

fn telegraf_fields(cx: &Ctx<'_>, map: &Mapping) -> Result<Option<TelegrafMeta>, OrderError> {
    let measurement_name = opt_string(cx, map, "measurement_name", "measurement_name")?;
    if let Some(m) = &measurement_name {
        if m.is_empty() {
            return Err(cx.err(
                "measurement_name",
                map.get("measurement_name"),
                "must not be empty",
            ));
        }
    }
    let mut tags = BTreeMap::new();
    match map.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let key = scalar_text(k)
                    .ok_or_else(|| cx.err("tags", Some(k), "tag names are strings or numbers"))?;
                let field = format!("tags.{key}");
                if key.is_empty() || key.chars().any(char::is_control) {
                    return Err(cx.err(
                        &field,
                        Some(k),
                        "tag names are non-empty text without control characters",
                    ));
                }
                let val = scalar_text(v).ok_or_else(|| {
                    cx.err(
                        &field,
                        Some(v),
                        "tag values are strings, numbers or booleans",
                    )
                })?;
                if val.chars().any(char::is_control) {
                    return Err(cx.err(
                        &field,
                        Some(v),
                        "tag values contain no control characters",
                    ));
                }
                tags.insert(key, val);
            }
        }
        Some(other) => {
            return Err(cx.err("tags", Some(other), "tags are a mapping of name: value"))
        }
    }
    if measurement_name.is_none() && tags.is_empty() {
        return Ok(None);
    }
    Ok(Some(TelegrafMeta {
        measurement_name,
        tags,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::fields::parse_host;
    use crate::spec::Host;
    use std::path::PathBuf;

    fn parse(yaml: &str) -> Result<Order, OrderError> {
        let id = OrderId::new("app/t1").unwrap();
        parse_order(&PathBuf::from("orders/app/t1"), &id, yaml.as_bytes()).map(|p| p.order)
    }

    fn err(yaml: &str) -> OrderError {
        parse(yaml).expect_err("order should be invalid")
    }

    const GOOD: &str = "user: tmon\ntask: tun_eth0_4061\nstep: 300\npings: 20\nprobe: fping\nfping:\n    host: 62.179.116.250\n";

    #[test]
    fn parses_the_documented_example() {
        let o = parse(GOOD).unwrap();
        assert_eq!(o.user, "tmon");
        assert_eq!(o.task.as_deref(), Some("tun_eth0_4061"));
        assert_eq!((o.step, o.pings), (300, 20));
        assert_eq!(o.rrd, RrdTemplate::Smokeping);
        assert_eq!(o.telegraf, None);
        let ProbeSpec::Fping(f) = &o.probe else {
            panic!("not fping")
        };
        assert_eq!(f.host, Host::Ip("62.179.116.250".parse().unwrap()));
        assert!(!f.ipv6);
        assert_eq!(f.interval_ms, None);
    }

    #[test]
    fn parses_every_fping_option_and_telegraf_fields() {
        let o = parse(
            "user: u\nstep: 60\npings: 5\nprobe: fping\nrrd_template: norrd\nmeasurement_name: tunnel\n\
             tags:\n  tunnel_id: 12458\n  interface: eth2\n  up: true\n\
             fping:\n  host: '::1'\n  interface: eth0\n  source_ip: '::1'\n  interval: 2000\n  ipv6: true\n",
        )
        .unwrap();
        assert_eq!(o.rrd, RrdTemplate::NoRrd);
        let t = o.telegraf.unwrap();
        assert_eq!(t.measurement_name.as_deref(), Some("tunnel"));
        assert_eq!(t.tags["tunnel_id"], "12458");
        assert_eq!(t.tags["up"], "true");
        let ProbeSpec::Fping(f) = o.probe else {
            panic!()
        };
        assert!(f.ipv6);
        assert_eq!(f.interface.unwrap().as_str(), "eth0");
        assert_eq!(f.interval_ms.map(std::num::NonZeroU32::get), Some(2000));
        assert_eq!(f.source_ip, Some("::1".parse().unwrap()));
    }

    #[test]
    fn fping_packet_options() {
        let f = |yaml: &str| {
            let o = parse(&format!(
                "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {{host: 192.0.2.1{yaml}}}\n"
            ))
            .unwrap();
            let ProbeSpec::Fping(f) = o.probe else {
                panic!()
            };
            f
        };
        let d = f("");
        assert_eq!(
            (d.data_bytes, d.tos, d.ttl, d.dont_fragment, d.timeout_ms),
            (56, 0, None, None, 3000),
            "fping's defaults"
        );
        let c = f(", size: 1400, tos: '184', ttl: 9, dont_fragment: yes, timeout: 750");
        assert_eq!(
            (
                c.data_bytes,
                c.tos,
                c.ttl.map(std::num::NonZeroU8::get),
                c.dont_fragment,
                c.timeout_ms
            ),
            (1400, 184, Some(9), Some(true), 750)
        );
        assert_eq!(f(", size: 16, dont_fragment: false").data_bytes, 16);
    }

    #[test]
    fn ipv6_defaults_from_the_host() {
        let o = parse("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: '2001:db8::1'}\n")
            .unwrap();
        let ProbeSpec::Fping(f) = o.probe else {
            panic!()
        };
        assert!(f.ipv6);
        let o = parse("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: Example.NET}\n")
            .unwrap();
        let ProbeSpec::Fping(f) = o.probe else {
            panic!()
        };
        assert_eq!(f.host, Host::Name("example.net".into()));
        assert!(!f.ipv6);
    }

    #[test]
    fn quoted_numbers_are_accepted() {
        let o =
            parse("user: u\nstep: '60'\npings: \"5\"\nprobe: fping\nfping: {host: 127.0.0.1}\n")
                .unwrap();
        assert_eq!((o.step, o.pings), (60, 5));
    }

    #[test]
    fn other_probe_sections() {
        let o = parse(
            "user: u\nstep: 60\npings: 5\nprobe: httping\nhttping:\n  url: https://example.com/x\n  interval: 2\n  \
             user_agent: pm\n  proxy: http://10.0.0.24:8080\n  http_codes_as_failure: 403,407, 503\n",
        )
        .unwrap();
        let ProbeSpec::Httping(h) = o.probe else {
            panic!()
        };
        assert_eq!(h.http_codes_as_failure, vec![403, 407, 503]);
        assert_eq!(h.interval_s, 2);
        let o = parse("user: u\nstep: 60\npings: 5\nprobe: sping\nsping:\n  host: 1-ff00:0:110,10.0.0.1\n  flags: -x --y\n").unwrap();
        let ProbeSpec::Sping(s) = o.probe else {
            panic!()
        };
        assert_eq!(s.flags, vec!["-x", "--y"]);
        let o = parse(
            "user: u\nstep: 60\npings: 1\nprobe: pping\npping: {host: '1-ff00:0:110,[::1]'}\n",
        )
        .unwrap();
        assert_eq!(o.probe.name(), "pping");
        let o = parse(
            "user: u\nstep: 60\npings: 1\nprobe: ssh\nssh: {host: 10.1.2.3, key_type: ed25519}\n",
        )
        .unwrap();
        let ProbeSpec::Ssh(s) = o.probe else { panic!() };
        assert_eq!(s.key_type.as_deref(), Some("ed25519"));
    }

    #[test]
    fn unknown_keys_warn_but_pass() {
        let id = OrderId::new("x").unwrap();
        let p = parse_order(
            Path::new("orders/x"),
            &id,
            format!("{GOOD}stpe: 5\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("stpe"), "{:?}", p.warnings);
    }

    /// Each rule: (yaml, expected field, fragment of the reason).
    #[test]
    fn every_rule_names_field_and_reason() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("user: [", None, "YAML syntax error"),
            ("- a\n- b\n", None, "YAML mapping"),
            ("", None, "empty"),
            ("step: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("user"), "missing required field"),
            ("user: u\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "missing required field"),
            ("user: u\nstep: 60\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "missing required field"),
            ("user: u\nstep: 60\npings: 5\nfping: {host: 127.0.0.1}\n", Some("probe"), "missing required field"),
            ("user: u\nstep: 0\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "from 1 to 86400"),
            ("user: u\nstep: -5\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "integer"),
            ("user: u\nstep: 1.5\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "integer"),
            ("user: u\nstep: abc\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "integer"),
            ("user: u\nstep: 60\npings: 0\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "from 1"),
            ("user: u\nstep: 10\npings: 20\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "step / pings"),
            ("user: u\nstep: 10\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("pings"), "1000 ms minimum"),
            ("user: u\nstep: 3\npings: 1\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("step"), "must end within the step"),
            ("user: u\nstep: 10\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interval: 2000}\n", Some("fping.interval"), "must end within the step"),
            ("user: u\nstep: 60\npings: 5\nprobe: icmp\n", Some("probe"), "unknown probe"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\n", Some("fping"), "missing section"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: 127.0.0.1\n", Some("fping"), "mapping"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {}\n", Some("fping.host"), "missing required field `host`"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 300.1.1.1}\n", Some("fping.host"), "not an IP address"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 'bad host'}\n", Some("fping.host"), "not an IP address"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, ipv6: true}\n", Some("fping.ipv6"), "address family"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, ipv6: maybe}\n", Some("fping.ipv6"), "true or false"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, source_ip: '::1'}\n", Some("fping.source_ip"), "family"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, source_ip: nowhere}\n", Some("fping.source_ip"), "not an IPv4"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interface: 'eth 0'}\n", Some("fping.interface"), "white space"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interval: 0}\n", Some("fping.interval"), "from 1"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, size: 8}\n", Some("fping.size"), "from 16 to 65507"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, size: 65508}\n", Some("fping.size"), "from 16 to 65507"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, tos: 256}\n", Some("fping.tos"), "from 0 to 255"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, ttl: 0}\n", Some("fping.ttl"), "from 1 to 255"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, dont_fragment: sometimes}\n", Some("fping.dont_fragment"), "true or false"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, timeout: 5}\n", Some("fping.timeout"), "from 10 to 60000"),
            ("user: u\nstep: 10\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1, interval: 1000, timeout: 7000}\n", Some("fping.timeout"), "7000 ms reply timeout"),
            ("user: [a]\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n", Some("user"), "expected text"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nrrd_template: fancy\nfping: {host: 127.0.0.1}\n", Some("rrd_template"), "norrd"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\ntags: [a]\nfping: {host: 127.0.0.1}\n", Some("tags"), "mapping"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\ntags: {a: [1]}\nfping: {host: 127.0.0.1}\n", Some("tags.a"), "tag values"),
            ("user: u\nstep: 60\npings: 5\nprobe: fping\nmeasurement_name: ''\nfping: {host: 127.0.0.1}\n", Some("measurement_name"), "empty"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'ftp://x'}\n", Some("httping.url"), "http://"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://'}\n", Some("httping.url"), "no host"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://h:99999/'}\n", Some("httping.url"), "port is not a number from 1 to 65535"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://h/', proxy: 'http://p:0'}\n", Some("httping.proxy"), "port"),
            ("user: u\nstep: 60\npings: 5\nprobe: httping\nhttping: {url: 'http://x', http_codes_as_failure: '403,abc'}\n", Some("httping.http_codes_as_failure"), "not an HTTP status"),
            ("user: u\nstep: 60\npings: 30\nprobe: httping\nhttping: {url: 'http://x', interval: 3}\n", Some("httping.interval"), "must start within the step"),
            ("user: u\nstep: 60\npings: 5\nprobe: sping\nsping: {host: '-rf'}\n", Some("sping.host"), "SCION address"),
            ("user: u\nstep: 60\npings: 5\nprobe: ssh\nssh: {host: 10.0.0.1, key_type: 'a b'}\n", Some("ssh.key_type"), "key type"),
        ];
        for (yaml, field, reason) in cases {
            let e = err(yaml);
            assert_eq!(e.field.as_deref(), *field, "field for {yaml:?}: {e}");
            assert!(e.reason.contains(reason), "reason for {yaml:?}: {e}");
            assert!(e.to_string().starts_with("orders/app/t1"), "{e}");
        }
    }

    #[test]
    fn errors_show_value_and_line() {
        let e = err("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 300.1.1.1}\n");
        assert_eq!(e.value.as_deref(), Some("300.1.1.1"));
        assert_eq!(
            e.to_string(),
            "orders/app/t1: field `fping.host`: value \"300.1.1.1\": not an IP address or a valid host name"
        );
        let e = err("user: u\nstep: 60\n  pings: 5\n");
        assert_eq!(e.line, Some(3), "{e}");
    }

    #[test]
    fn oversize_and_binary_files() {
        let id = OrderId::new("x").unwrap();
        let big = format!("{GOOD}# {}\n", "x".repeat(MAX_ORDER_BYTES));
        let e = parse_order(Path::new("f"), &id, big.as_bytes()).unwrap_err();
        assert!(e.reason.contains("at most"), "{e}");
        let e = parse_order(Path::new("f"), &id, b"user: \xff\xfe\n").unwrap_err();
        assert!(e.reason.contains("UTF-8"), "{e}");
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                ["b", "c", "d", "e", "f", "g", "h"][i - 1].to_string()
            };
            bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        bomb.push_str("user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 127.0.0.1}\n");
        // The parser's own CPU time, not the wall clock: what the bomb
        // costs, whatever else the machine is doing.
        let cpu_ns = || -> u64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .expect("/proc/thread-self/schedstat")
        };
        let started = cpu_ns();
        let e = err(&bomb);
        let spent = std::time::Duration::from_nanos(cpu_ns() - started);
        assert!(
            spent < std::time::Duration::from_secs(2),
            "alias bomb took {spent:?} of CPU"
        );
        assert!(e.reason.contains("YAML aliases expand too much"), "{e}");
        let deep = format!("user: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let e = err(&deep);
        assert!(e.reason.contains("YAML nested too deeply"), "{e}");
    }

    #[test]
    fn telegraf_sidecar() {
        let t = parse_telegraf_sidecar(
            Path::new("telegraf/x"),
            b"measurement_name: tunnel\ntags:\n    tunnel_id: 12458\n    remote_host: 5292\n",
        )
        .unwrap();
        assert_eq!(t.measurement_name.as_deref(), Some("tunnel"));
        assert_eq!(t.tags.len(), 2);
        assert!(parse_telegraf_sidecar(Path::new("t"), b"- 1\n").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            parse_host("a-b.example.").unwrap(),
            Host::Name("a-b.example".into())
        );
        for bad in ["", "-a.b", "a..b", "1.2.3", "a b", &"x".repeat(64)] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fixture_and_demo_orders_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orders");
        let mut n = 0;
        for dir in ["good", "demo/demo"] {
            for ent in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = ent.unwrap().path();
                let id = OrderId::new(path.file_name().unwrap().to_str().unwrap()).unwrap();
                let p = parse_order(&path, &id, &std::fs::read(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(p.warnings.is_empty(), "{:?}", p.warnings);
                n += 1;
            }
        }
        assert!(n >= 8, "only {n} fixtures");
    }
}
