//! The crate's layers, as ARCHITECTURE.md draws them, checked against the
//! `crate::` paths of every source file (tests left out): a module uses
//! only modules of lower layers, so no import goes upwards and none goes
//! round in a circle. A new module gets its line in [`LAYERS`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of `src/`, lowest layer first.
const LAYERS: &[&[&str]] = &[
    // Leaves: know nothing of the rest.
    &[
        "basedir",
        "clock",
        "logging",
        "priority",
        "privilege",
        "proctitle",
        "result",
        "schedule",
        "shard",
        "supervise",
        "telemetry",
        "watch",
    ],
    // What an order holds; the daemon's counters; host names' addresses.
    &["spec", "counters", "names"],
    // Probes: one module per type.
    &["probe"],
    // Orders: files to validated orders.
    &["order"],
    // Where results go: the store, the sinks; walks of the base directory.
    &["store", "sink", "tree"],
    // Invalid orders set aside; graphs of main.rrd.
    &["rejected", "graph"],
    // A read-only view of a base directory.
    &["inspect"],
    // Every order's state; jobs; .stats.json.
    &["report", "job", "stats"],
    // The daemon's telemetry; the registry.
    &["health", "registry"],
    // The HTTP side.
    &["web"],
    // The command line.
    &["cli"],
    // The subcommands.
    &["cmd"],
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Unit tests in files of their own.
            if !name.ends_with("tests.rs") {
                out.push(p);
            }
        }
    }
}

/// The top-level modules named by `crate::…` in `text`, unit tests and
/// comments left out.
fn uses(text: &str) -> BTreeSet<String> {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first name of each part
            // at the top level of the braces.
            let mut depth = 0;
            let mut part_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => part_start = true,
                    c if part_start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident(&group[j..]));
                        part_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

#[test]
fn no_module_uses_one_of_its_own_or_a_higher_layer() {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, ms)| ms.iter().map(move |m| (*m, i)))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        seen.insert(module.clone());
        let Some(&mine) = layer_of.get(module.as_str()) else {
            problems.push(format!("{}: module {module} is in no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for used in uses(&text) {
            if used == module {
                continue;
            }
            match layer_of.get(used.as_str()) {
                None => problems.push(format!(
                    "{}: uses crate::{used}, which is in no layer",
                    rel.display()
                )),
                Some(&theirs) if theirs >= mine => problems.push(format!(
                    "{}: {module} (layer {mine}) uses {used} (layer {theirs})",
                    rel.display()
                )),
                Some(_) => {}
            }
        }
    }
    for m in layer_of.keys() {
        if !seen.contains(*m) {
            problems.push(format!("{m} is listed but has no file under src/"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_use_reader_sees_groups_and_paths() {
    let text = "use crate::{a::B, c, d::{e, f}};\nlet x = crate::g::h();\n// crate::comment\n\
                #[cfg(test)]\nmod tests { use crate::t; }";
    let got: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g"]);
}
