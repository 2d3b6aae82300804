//! Executable `/bin/sh` fixtures.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes `dir/name` as an executable `#!/bin/sh` script with `body` after
/// the first line, and returns its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let text = format!("#!/bin/sh\n{body}\n");
    fs::write(&path, text).unwrap_or_else(|e| panic!("testkit: writing {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("testkit: chmod {}: {e}", path.display()));
    path
}

/// Writes `dir/fping-fixture.sh`, a stand-in for `fping -C`: it records its
/// arguments, one per line, in `dir/argv.txt` (replacing the file), prints
/// `lines` on stdout (with a final newline added if missing), and exits 1 if any value is `-` (a lost ping,
/// as fping does), else 0.
pub fn fping_c_script(dir: &Path, lines: &str) -> PathBuf {
    let argv = dir.join("argv.txt");
    let argv = shell_quote(&argv.to_string_lossy());
    let status = if lines.split_whitespace().any(|t| t == "-") {
        1
    } else {
        0
    };
    let mut delimiter = String::from("TESTKIT_FPING_EOF");
    while lines.lines().any(|l| l == delimiter) {
        delimiter.push('_');
    }
    // The heredoc ends at a line of its own: `lines` must end with one.
    let text = if lines.is_empty() || lines.ends_with('\n') {
        lines.to_string()
    } else {
        format!("{lines}\n")
    };
    let body = format!(
        ": > {argv}\n\
         for arg in \"$@\"; do printf '%s\\n' \"$arg\" >> {argv}; done\n\
         cat <<'{delimiter}'\n{text}{delimiter}\n\
         exit {status}"
    );
    write_script(dir, "fping-fixture.sh", &body)
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
