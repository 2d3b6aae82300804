//! The web page: read over HTTP and in a real headless Chromium (Debian's
//! `chromium`): the status list and an order page agree with
//! `last_result`, graphs are valid PNGs for every range and for IPv4, IPv6
//! and all-lost orders, a chosen range reaches the graph, a mouse drag
//! across a graph (DevTools protocol input events) zooms to that range,
//! junk and traversal ids get 404, and `pingmachine serve` serves the same
//! pages without probing. Screenshots go to `target/web-screenshots/`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{bin, can_ping, tool, wait_for, Base, Daemon};

/// A GET: status, headers (lower-case names), body bytes.
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn text(addr: SocketAddr, path: &str) -> String {
    let (status, _, body) = get(addr, path);
    assert_eq!(status, 200, "{path}");
    String::from_utf8(body).unwrap()
}

fn is_png(b: &[u8]) -> Option<(u32, u32)> {
    let decoder = png::Decoder::new(std::io::Cursor::new(b));
    let reader = decoder.read_info().ok()?;
    let info = reader.info();
    Some((info.width, info.height))
}

/// Headless Chromium (Debian's `chromium`, or `chromium-browser`
/// elsewhere), or `None` after a skip (a failure under CI).
pub(crate) fn chromium(test: &str) -> Option<PathBuf> {
    testkit::require::find_program("chromium")
        .or_else(|| testkit::require::find_program("chromium-browser"))
        .or_else(|| tool(test, "chromium", "chromium"))
}

/// Runs headless Chromium on `url` with `args`; its standard output.
pub(crate) fn browse(browser: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child: Child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    out
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn last_result(base: &Base, id: &str) -> Option<pingmachine::inspect::LastResult> {
    let t = std::fs::read_to_string(base.output(id).join("last_result")).ok()?;
    pingmachine::inspect::LastResult::parse(&t)
}

#[test]
fn web_pages_graphs_and_the_browser_agree_with_last_result() {
    if !can_ping("web_pages_graphs_and_the_browser_agree_with_last_result") {
        return;
    }
    let base = Base::new();
    let closed = testkit::free_tcp_port();
    base.write_order(
        "lab/v4",
        "user: lab\nstep: 10\npings: 3\nprobe: fping\nmeasurement_name: lat\ntags: {site: zrh}\nfping: {host: 127.0.0.1}\n",
    );
    base.write_order(
        "lab/v6",
        "user: lab\nstep: 10\npings: 3\nprobe: fping\nfping: {host: '::1'}\n",
    );
    base.write_order(
        "ops/lossy",
        &format!(
            "user: ops\nstep: 10\npings: 3\nprobe: tcp\ntcp: {{host: 127.0.0.1, port: {closed}}}\n"
        ),
    );
    base.write_order(
        "ops/norrd",
        "user: ops\nstep: 10\npings: 3\nprobe: fping\nrrd_template: norrd\nfping: {host: 127.0.0.1}\n",
    );
    let ids = ["lab/v4", "lab/v6", "ops/lossy", "ops/norrd"];
    let port = testkit::free_tcp_port();
    let daemon = Daemon::start(&base, &["--listen", &port.to_string()]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(60), || {
        ids.iter()
            .all(|id| last_result(&base, id).is_some())
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no last_result for every order; log:\n{}",
            daemon.log_text()
        )
    });
    // The report is reused for 5 s: wait for one taken after the results.
    std::thread::sleep(Duration::from_secs(6));

    // The status list over HTTP.
    let index = text(addr, "/");
    for id in ids {
        assert!(
            index.contains(&format!("data-id=\"{id}\"")),
            "{id} missing:\n{index}"
        );
    }
    let (status, h, _) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(header(&h, "content-security-policy").is_some_and(|v| v.contains("default-src 'none'")));
    assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"));
    assert!(text(addr, "/?user=ops").contains("ops/lossy"));
    assert!(!text(addr, "/?user=ops").contains("data-id=\"lab/v4\""));
    assert!(!text(addr, "/?q=ops/").contains("data-id=\"lab/v6\""));
    let rows = text(addr, "/?fragment=rows&sort=loss");
    assert!(
        rows.starts_with("<tr data-id=\"ops/lossy\""),
        "highest loss first: {rows}"
    );

    // Graphs: every range, IPv4, IPv6 and all lost; norrd has none.
    for id in ["lab/v4", "lab/v6", "ops/lossy"] {
        for range in [10_800, 108_000, 864_000, 31_104_000] {
            let (status, h, body) = get(addr, &format!("/graph/{id}?range={range}"));
            assert_eq!(status, 200, "{id} {range}");
            assert_eq!(header(&h, "content-type"), Some("image/png"));
            assert_eq!(is_png(&body), Some((800, 260)), "{id} {range}");
            let start: i64 = header(&h, "x-graph-start").unwrap().parse().unwrap();
            let end: i64 = header(&h, "x-graph-end").unwrap().parse().unwrap();
            assert!(
                (end - start - range).abs() <= 60,
                "{id}: {start}..{end} for {range}"
            );
        }
    }
    assert_eq!(get(addr, "/graph/ops/norrd?range=10800").0, 404);
    assert!(text(addr, "/order/ops/norrd").contains("id=\"no-graphs\""));

    // A chosen range reaches the graph.
    let end = pingmachine::clock::unix_s() - 120;
    let start = end - 1800;
    let page = text(addr, &format!("/order/lab/v4?start={start}&end={end}"));
    assert!(
        page.contains(&format!("\"graph/lab/v4?start={start}&amp;end={end}")),
        "{page}"
    );
    let (_, h, body) = get(addr, &format!("/graph/lab/v4?start={start}&end={end}"));
    assert!(is_png(&body).is_some());
    let (gs, ge): (i64, i64) = (
        header(&h, "x-graph-start").unwrap().parse().unwrap(),
        header(&h, "x-graph-end").unwrap().parse().unwrap(),
    );
    assert!(
        (gs - start).abs() <= 60 && (ge - end).abs() <= 60,
        "{gs}..{ge} for {start}..{end}"
    );
    assert_eq!(get(addr, "/order/lab/v4?start=9&end=5").0, 400);

    // Junk and traversal ids: 404, nothing read.
    for junk in [
        "/order/..%2f..%2fetc%2fpasswd",
        "/order/%2e%2e/%2e%2e/etc/passwd",
        "/order/lab%2Fv4",
        "/order//etc/passwd",
        "/order/lab/../lab/v4",
        "/graph/..%2f..%2fetc%2fpasswd",
        "/graph/%2e%2e/%2e%2e/etc/passwd?range=10800",
        "/api/v1/orders/..%2fx",
        "/order/nosuch",
        "/graph/nosuch",
        "/order/.lock",
    ] {
        let (status, _, body) = get(addr, junk);
        assert_eq!(status, 404, "{junk}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{junk}");
    }
    // A symlink that leads out of the base directory is not followed.
    std::os::unix::fs::symlink("/etc", base.output("escape")).unwrap();
    assert_eq!(get(addr, "/graph/escape/passwd").0, 404);

    // The JSON API in the `status --json` schema.
    let api: serde_json::Value = serde_json::from_slice(&get(addr, "/api/v1/orders").2).unwrap();
    assert_eq!(api["orders"].as_array().unwrap().len(), 4);
    let one: serde_json::Value =
        serde_json::from_slice(&get(addr, "/api/v1/orders/lab/v4").2).unwrap();
    assert_eq!(one["id"], "lab/v4");
    assert_eq!(one["probe"], "fping");
    // The daemon keeps each round's jitter and standard deviation (from
    // its RTTs in send order): three answered pings have both; a round
    // that lost every ping has neither.
    assert!(
        one["jitter_ms"].as_f64().is_some_and(|j| j >= 0.0)
            && one["stddev_ms"].as_f64().is_some_and(|s| s >= 0.0),
        "{one}"
    );
    let lossy: serde_json::Value =
        serde_json::from_slice(&get(addr, "/api/v1/orders/ops/lossy").2).unwrap();
    assert!(lossy.get("jitter_ms").is_none(), "{lossy}");
    assert!(
        text(addr, "/order/lab/v4").contains("<p id=\"spread\">Jitter "),
        "{}",
        text(addr, "/order/lab/v4")
    );

    // In a real browser: the DOM after the scripts ran.
    let Some(browser) =
        chromium("web_pages_graphs_and_the_browser_agree_with_last_result (browser part)")
    else {
        return;
    };
    let browser = browser.as_path();
    let dom = browse(browser, &["--dump-dom"], &format!("http://{addr}/"));
    for id in ["lab/v4", "ops/lossy"] {
        let lr = last_result(&base, id).unwrap();
        let row_start = dom
            .find(&format!("<tr data-id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} not in the DOM:\n{dom}"));
        let row = &dom[row_start..dom[row_start..].find("</tr>").unwrap() + row_start];
        // The browser shows the latest result; it may be one round newer
        // than the file read above, so compare with the file read now.
        let lr_now = last_result(&base, id).unwrap();
        let ok = [&lr, &lr_now].iter().any(|r| {
            let median = r
                .median
                .map_or_else(|| "-".to_owned(), |m| format!("{:.3} ms", m * 1000.0));
            row.contains(&median) && row.contains(&format!("{:.0} %", r.loss_pct()))
        });
        assert!(ok, "{id}: row {row} vs last_result {lr:?} / {lr_now:?}");
    }
    let dom = browse(
        browser,
        &["--dump-dom"],
        &format!("http://{addr}/order/lab/v4"),
    );
    assert!(dom.contains("<span id=\"order-id\">lab/v4</span>"), "{dom}");
    let lr = last_result(&base, "lab/v4").unwrap();
    assert!(
        dom.contains(&format!("time: {}", lr.time)) || dom.contains("time: "),
        "{dom}"
    );
    // The script loaded each graph through fetch and kept its plot area.
    assert!(
        dom.contains("data-width=\""),
        "graph geometry missing:\n{dom}"
    );
    assert!(
        dom.contains("src=\"blob:"),
        "graphs not loaded by the script:\n{dom}"
    );

    let shots = screenshot_dir();
    for (name, path, size) in [
        ("status.png", "/", "1200,800"),
        ("order.png", "/order/lab/v4", "1200,1600"),
        ("status-phone.png", "/", "390,844"),
    ] {
        let file = shots.join(name);
        let _ = std::fs::remove_file(&file);
        browse(
            browser,
            &[
                &format!("--screenshot={}", file.display()),
                &format!("--window-size={size}"),
            ],
            &format!("http://{addr}{path}"),
        );
        let bytes = std::fs::read(&file).unwrap_or_else(|_| panic!("no screenshot {name}"));
        assert!(is_png(&bytes).is_some(), "{name}");
        eprintln!("screenshot: {}", file.display());
    }
    drop(daemon);
}

/// Starts `pingmachine serve` on `base` and waits until it listens.
fn serve(base: &Base) -> (Child, SocketAddr) {
    let port = testkit::free_tcp_port();
    let child = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .args(["serve", "--listen", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for(Duration::from_secs(10), || {
        TcpStream::connect(addr).ok().map(|_| ())
    })
    .expect("serve did not listen");
    (child, addr)
}

#[test]
fn serve_shows_the_pages_without_probing() {
    let base = Base::new();
    base.write_order(
        "app/t",
        "user: u\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\n",
    );
    std::fs::create_dir_all(base.output("app/t")).unwrap();
    std::fs::write(
        base.output("app/t").join("last_result"),
        "time: 1700000000\nupdated: 1700000010\nstep: 60\npings: 5\nloss: 1\nmin: 1.000000e-03\nmedian: 2.000000e-03\nmax: 3.000000e-03\n",
    )
    .unwrap();
    let (mut child, addr) = serve(&base);
    let page = text(addr, "/");
    assert!(page.contains("data-id=\"app/t\""));
    assert!(page.contains("2.000 ms") && page.contains("20 %"), "{page}");
    assert!(text(addr, "/order/app/t").contains("median: 2.000000e-03"));
    assert_eq!(get(addr, "/metrics").0, 404, "no daemon, no metrics");
    assert_eq!(get(addr, "/-/ready").0, 200);
    // Read-only: nothing was written, no output directories were made.
    assert!(!base.path().join(".lock").exists());
    assert!(!base.path().join("rejected").join("app").exists());
    let _ = nix_kill(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");

    // A base directory without orders/ is a clear error.
    let out = Command::new(bin())
        .args(["--basedir", "/nonexistent/pm", "serve", "--listen", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no orders/ directory"));
}

fn nix_kill(child: &Child) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

/// A page in headless Chromium driven over the DevTools protocol.
struct DevTools {
    child: Child,
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl DevTools {
    fn open(browser: &Path, url: &str) -> DevTools {
        use std::io::BufRead;
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1200,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read standard error to its end in a thread (Chromium blocks on a
        // full pipe), passing on the DevTools port.
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let line = line.unwrap_or_default();
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    let _ = tx.send(rest.split('/').next().and_then(|p| p.parse::<u16>().ok()));
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("chromium printed no DevTools address");
        // A new page target for `url`.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "PUT /json/new?{url} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        // The DevTools server keeps the connection open: read the headers,
        // then Content-Length bytes.
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = std::io::BufReader::new(s);
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let target: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let ws_url = target["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (ws, _) = tungstenite::client::client(ws_url.as_str(), stream).unwrap();
        DevTools {
            child,
            ws,
            next: 0,
            _profile: profile,
        }
    }

    /// Sends a command and waits for its answer.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next += 1;
        let id = self.next;
        let msg = serde_json::json!({"id": id, "method": method, "params": params});
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        for _ in 0..10_000 {
            let m = self.ws.read().unwrap();
            if let tungstenite::Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["id"] == id {
                    return v["result"].clone();
                }
            }
        }
        panic!("no answer to {method}");
    }

    /// Evaluates `expr` in the page; its value.
    fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            serde_json::json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
        );
    }
}

impl Drop for DevTools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A drag across a graph in a real browser leads to the page of that
/// range, and its graph spans it.
#[test]
fn dragging_across_a_graph_zooms_to_that_range() {
    let Some(browser) = chromium("dragging_across_a_graph_zooms_to_that_range") else {
        return;
    };
    let browser = browser.as_path();
    let base = Base::new();
    base.write_order(
        "lab/t",
        "user: lab\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\n",
    );
    // An RRD written by the real writer code path's librrd calls.
    let out = base.output("lab/t");
    std::fs::create_dir_all(&out).unwrap();
    let now = pingmachine::clock::unix_s();
    pingmachine::store::rrd::create_rrd(&out.join("main.rrd"), 60, 5, now - 4 * 3600).unwrap();
    let (mut serve, addr) = serve(&base);

    let mut dt = DevTools::open(browser, &format!("http://{addr}/order/lab/t"));
    // The script has fetched the first graph and kept its plot area.
    let geometry = wait_for(Duration::from_secs(20), || {
        let v = dt.eval(
            "(() => { const b = document.querySelector('.graph-box'); const i = b && b.querySelector('img');
               if (!b || !b.dataset.width || !i.complete || !i.naturalWidth) return null;
               const r = i.getBoundingClientRect();
               return [r.left, r.top, r.width, Number(b.dataset.left), Number(b.dataset.width),
                       Number(b.dataset.start), Number(b.dataset.end), Number(b.dataset.imageWidth)]; })()",
        );
        v.as_array().cloned()
    })
    .expect("the graph's plot area never arrived");
    let g: Vec<f64> = geometry.iter().map(|v| v.as_f64().unwrap()).collect();
    let (left, top, shown_w, plot_left, plot_w, start, end, image_w) =
        (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
    let scale = shown_w / image_w;
    // Drag from 25 % to 75 % of the plot area.
    let x_at = |f: f64| left + (plot_left + f * plot_w) * scale;
    let y = top + 60.0;
    dt.mouse("mousePressed", x_at(0.25), y);
    dt.mouse("mouseMoved", x_at(0.5), y);
    dt.mouse("mouseMoved", x_at(0.75), y);
    dt.mouse("mouseReleased", x_at(0.75), y);
    let href = wait_for(Duration::from_secs(10), || {
        let h = dt.eval("location.href");
        h.as_str()
            .filter(|h| h.contains("start="))
            .map(str::to_owned)
    })
    .expect("the drag did not navigate");
    let param = |k: &str| -> f64 {
        href.split(['?', '&'])
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let (zs, ze) = (param("start"), param("end"));
    // One pixel of the plot is (end - start) / width seconds.
    let px = (end - start) / (plot_w * scale);
    let want = (start + 0.25 * (end - start), start + 0.75 * (end - start));
    assert!(
        (zs - want.0).abs() <= 2.0 * px && (ze - want.1).abs() <= 2.0 * px,
        "zoomed to {zs}..{ze}, expected about {want:?} (1 px = {px:.0} s): {href}"
    );
    // The zoomed page's first graph spans the chosen range.
    let (status, h, body) = get(addr, &format!("/graph/lab/t?start={zs}&end={ze}"));
    assert_eq!(status, 200);
    assert!(is_png(&body).is_some());
    let gs: f64 = header(&h, "x-graph-start").unwrap().parse().unwrap();
    let ge: f64 = header(&h, "x-graph-end").unwrap().parse().unwrap();
    assert!(
        (gs - zs).abs() <= 60.0 && (ge - ze).abs() <= 60.0,
        "{gs}..{ge}"
    );
    let dom = dt.eval("document.querySelector('figure.zoomed img').getAttribute('data-src')");
    assert_eq!(
        dom.as_str().unwrap_or(""),
        format!("graph/lab/t?start={zs}&end={ze}"),
        "the zoomed graph comes first"
    );
    drop(dt);
    let _ = serve.kill();
    let _ = serve.wait();
}

/// `GET path` with basic auth (`None`: without); status, headers, body.
fn get_as(
    addr: SocketAddr,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut req = agent.get(format!("http://{addr}{path}"));
    if let Some((u, p)) = auth {
        let raw = format!("{u}:{p}");
        req = req.header("Authorization", &format!("Basic {}", b64(raw.as_bytes())));
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (status, headers, body)
}

fn b64(raw: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in raw.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        for _ in c.len()..3 {
            s.push('=');
        }
    }
    s
}

/// Behind `--web-route-prefix` and a `--web-config-file` with a bcrypt
/// user, every page and endpoint answers 401 without credentials and 200
/// with them, only under the prefix; links, graphs and the series
/// endpoint work there, in headless Chromium too; `healthcheck` knows.
#[test]
fn behind_a_prefix_and_basic_auth_the_pages_answer_401_then_200() {
    let test = "behind_a_prefix_and_basic_auth_the_pages_answer_401_then_200";
    if !can_ping(test) {
        return;
    }
    let base = Base::new();
    base.write_order(
        "lab/v4",
        "user: lab\nstep: 10\npings: 4\nprobe: fping\nfping: {host: 127.0.0.1}\n",
    );
    let hash = bcrypt::hash("s3cret pw", 6).unwrap();
    let cfg = base.path().join("web.yml");
    std::fs::write(&cfg, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
    let port = testkit::free_tcp_port();
    let d = Daemon::start(
        &base,
        &[
            "--listen",
            &port.to_string(),
            "--web-route-prefix",
            "/smokeping/",
            "--web-config-file",
            cfg.to_str().unwrap(),
        ],
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let alice = Some(("alice", "s3cret pw"));
    // Two rounds, for a series with rows.
    let first = wait_for(Duration::from_secs(60), || base.last_result("lab/v4"))
        .unwrap_or_else(|| panic!("no round; log:\n{}", d.log_text()))
        .int("time");
    let last = wait_for(Duration::from_secs(60), || {
        base.last_result("lab/v4").filter(|r| r.int("time") > first)
    })
    .unwrap();
    for path in [
        "/smokeping/",
        "/smokeping",
        "/smokeping/order/lab/v4",
        "/smokeping/metrics",
        "/smokeping/api/v1/orders",
        "/smokeping/-/healthy",
        "/smokeping/assets/style.css",
    ] {
        let (status, headers, _) = get_as(addr, path, None);
        assert_eq!(status, 401, "{path} without credentials");
        assert!(
            header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Basic ")),
            "{path}: {headers:?}"
        );
        assert_eq!(
            get_as(addr, path, Some(("alice", "wrong"))).0,
            401,
            "{path}"
        );
        assert_eq!(
            get_as(addr, path, Some(("bob", "s3cret pw"))).0,
            401,
            "{path}"
        );
        let (status, _, body) = get_as(addr, path, alice);
        assert_eq!(status, 200, "{path} with credentials: {body}");
    }
    // Only under the prefix.
    for path in ["/", "/metrics", "/order/lab/v4", "/smokepingx/", "/smoke"] {
        assert_eq!(get_as(addr, path, alice).0, 404, "{path}");
    }
    // Traversal stays 404 under the prefix.
    assert_eq!(
        get_as(addr, "/smokeping/order/..%2f..%2fetc%2fpasswd", alice).0,
        404
    );
    let (_, _, page) = get_as(addr, "/smokeping/", alice);
    assert!(page.contains("<base href=\"/smokeping/\">"), "{page}");
    assert!(page.contains("href=\"order/lab/v4\""), "{page}");
    // The series: the rows of main.rrd, the latest round's median and
    // pings as last_result has them, unknown as null, never NaN.
    let (status, _, body) = get_as(
        addr,
        &format!(
            "/smokeping/api/v1/orders/lab/v4/series?start={}&end={}",
            first - 60,
            last.int("time") + 20
        ),
        alice,
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("NaN"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], "lab/v4");
    assert_eq!(v["pings"], 4);
    assert_eq!(v["resolution"], 10);
    let rows = v["rows"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|r| r["time"] == last.int("time"))
        .unwrap_or_else(|| panic!("no row at {}: {body}", last.int("time")));
    let want = last.rtt("median").unwrap();
    let got = row["median"].as_f64().unwrap();
    assert!((got - want).abs() <= want * 1e-5, "{got} vs {want}");
    assert_eq!(row["loss"], 0.0);
    let pings: Vec<f64> = row["pings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert_eq!(pings.len(), 4);
    assert!(pings.windows(2).all(|w| w[0] <= w[1]), "{pings:?}");
    assert!(
        rows.iter()
            .any(|r| r["median"].is_null() && r["loss"].is_null()),
        "rows before the first round are null: {body}"
    );
    assert_eq!(
        get_as(addr, "/smokeping/api/v1/orders/nope/series", alice).0,
        404
    );
    // The order page's last rounds, and the same as CSV.
    let (_, _, order_page) = get_as(addr, "/smokeping/order/lab/v4", alice);
    assert!(order_page.contains("<table id=\"rounds\">"), "{order_page}");
    assert!(
        order_page.contains(&format!("<tr data-time=\"{}\">", last.int("time"))),
        "{order_page}"
    );
    let (status, headers, csv) = get_as(
        addr,
        &format!(
            "/smokeping/api/v1/orders/lab/v4/series?start={}&end={}&format=csv",
            first - 60,
            last.int("time") + 20
        ),
        alice,
    );
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|t| t.starts_with("text/csv")));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time,lost,loss,median_ms,ping1_ms,ping2_ms,ping3_ms,ping4_ms")
    );
    let line = lines
        .find(|l| l.starts_with(&format!("{},", last.int("time"))))
        .unwrap_or_else(|| panic!("no row at {} in {csv}", last.int("time")));
    let cells: Vec<&str> = line.split(',').collect();
    assert_eq!(cells.len(), 8, "{line}");
    let median_ms: f64 = cells[3].parse().unwrap();
    assert!(
        (median_ms - want * 1000.0).abs() <= want * 1000.0 * 1e-5,
        "{line}"
    );
    assert!(!csv.contains("NaN"), "{csv}");
    // healthcheck reads the prefix and takes 401 for an answer.
    let out = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .arg("healthcheck")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/smokeping/-/healthy answered 401"), "{text}");
    // In a real browser, with the credentials: the rows and the links
    // resolve under the prefix.
    let Some(browser) = chromium(&format!("{test} (browser part)")) else {
        return;
    };
    let mut dt = DevTools::open(
        &browser,
        &format!("http://alice:s3cret%20pw@127.0.0.1:{port}/smokeping/"),
    );
    let href = wait_for(Duration::from_secs(20), || {
        dt.eval("(() => { const a = document.querySelector('#rows a'); return a ? new URL(a.href).pathname : null; })()")
            .as_str()
            .map(str::to_owned)
    })
    .expect("the list in the browser");
    assert_eq!(href, "/smokeping/order/lab/v4");
    // The rows are in the HTML, so they can be there before the
    // stylesheet: ask once the document has loaded.
    let css = wait_for(Duration::from_secs(20), || {
        dt.eval("document.readyState === 'complete' ? getComputedStyle(document.body).getPropertyValue('margin-top') : null")
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(
        css.as_deref(),
        Some("0px"),
        "the stylesheet loaded under the prefix"
    );
    drop(d);
}

/// Writes `hours` of rounds into `id`'s main.rrd (step 60, 5 pings) with
/// the writer's librrd calls: `lost` pings lost, the others answered
/// around `median_ms(t)`.
fn history(base: &Base, id: &str, hours: i64, lost: usize, median_ms: impl Fn(i64) -> f64) {
    history_s(base, id, hours * 3600, lost, median_ms);
}

/// [`history`] over the last `seconds`.
fn history_s(base: &Base, id: &str, seconds: i64, lost: usize, median_ms: impl Fn(i64) -> f64) {
    use pingmachine::result::{RoundOutcome, Summary};
    let out = base.output(id);
    std::fs::create_dir_all(&out).unwrap();
    let rrd = out.join("main.rrd");
    let now = pingmachine::clock::unix_s();
    let end = now - now % 60;
    let start = end - seconds;
    pingmachine::store::rrd::create_rrd(&rrd, 60, 5, start - 60).unwrap();
    for t in (start..=end).step_by(60) {
        let m = median_ms(t);
        let mut rtts: Vec<Option<Duration>> = [0.9, 0.95, 1.0, 1.05, 1.1]
            .iter()
            .map(|k| Some(Duration::from_secs_f64(m * k / 1000.0)))
            .collect();
        for r in rtts.iter_mut().take(lost) {
            *r = None;
        }
        let s = Summary::of(&RoundOutcome { rtts });
        pingmachine::store::rrd::update_rrd(&rrd, t, &pingmachine::store::rrd::update_values(&s))
            .unwrap();
    }
}

/// `/charts` ranks orders from their main.rrd: the lossy one first by
/// loss, the one whose median rose first by rise; in headless Chromium.
#[test]
fn charts_rank_the_orders_by_loss_median_jitter_and_rise() {
    let base = Base::new();
    let order = "user: ops\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\n";
    for id in ["ops/lossy", "ops/clean", "ops/rising"] {
        base.write_order(id, order);
    }
    let now = pingmachine::clock::unix_s();
    history(&base, "ops/lossy", 31, 2, |_| 20.0);
    history(&base, "ops/clean", 31, 0, |t| {
        5.0 + f64::from((t / 60 % 2) as u8)
    });
    history(&base, "ops/rising", 31, 0, |t| {
        if t > now - 4 * 3600 {
            50.0
        } else {
            10.0
        }
    });
    let (serve, addr) = serve(&base);
    let serve = KillOnDrop(serve);
    let page = text(addr, "/charts");
    assert!(!page.to_lowercase().contains("nan"), "{page}");
    let first = |page: &str, chart: &str| -> Option<String> {
        let at = page.find(&format!("data-chart=\"{chart}\""))?;
        let rest = &page[at..];
        let row = rest.find("<tr data-id=\"")? + 13;
        Some(rest[row..row + rest[row..].find('"')?].to_owned())
    };
    assert_eq!(first(&page, "loss").as_deref(), Some("ops/lossy"), "{page}");
    assert_eq!(
        first(&page, "median").as_deref(),
        Some("ops/rising"),
        "{page}"
    );
    assert_eq!(
        first(&page, "rise").as_deref(),
        Some("ops/rising"),
        "{page}"
    );
    assert_eq!(
        first(&page, "jitter").as_deref(),
        Some("ops/clean"),
        "{page}"
    );
    // Only the lossy order lost anything; only the rising one rose.
    let table = |chart: &str| -> String {
        let at = page.find(&format!("data-chart=\"{chart}\"")).unwrap();
        page[at..at + page[at..].find("</table>").unwrap_or(0)].to_owned()
    };
    assert!(!table("loss").contains("ops/clean"), "{}", table("loss"));
    assert!(table("loss").contains("40.0 %"), "{}", table("loss"));
    assert!(!table("rise").contains("ops/lossy"), "{}", table("rise"));
    assert!(table("rise").contains("+40.00 ms"), "{}", table("rise"));
    assert_eq!(get(addr, "/charts?range=5").0, 400);
    assert!(text(addr, "/").contains("<a href=\"charts\">charts</a>"));
    // 30 hours: the rise is smaller (the period holds 26 hours of 10 ms).
    let long = text(addr, "/charts?range=108000");
    assert_eq!(first(&long, "loss").as_deref(), Some("ops/lossy"), "{long}");
    let Some(browser) =
        chromium("charts_rank_the_orders_by_loss_median_jitter_and_rise (browser part)")
    else {
        return;
    };
    let dom = browse(&browser, &["--dump-dom"], &format!("http://{addr}/charts"));
    assert_eq!(first(&dom, "loss").as_deref(), Some("ops/lossy"), "{dom}");
    let _ = browse(
        &browser,
        &[
            "--window-size=1100,900",
            &format!(
                "--screenshot={}",
                screenshot_dir().join("charts.png").display()
            ),
        ],
        &format!("http://{addr}/charts"),
    );
    drop(serve);
}

/// A child process killed when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/compare` draws several orders on one graph, picked in the list's
/// check boxes or named in the URL; junk ids are 404.
#[test]
fn compare_draws_the_picked_orders_on_one_graph() {
    let base = Base::new();
    let order = "user: ops\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\n";
    for id in ["ops/a", "ops/b", "ops/none"] {
        base.write_order(id, order);
    }
    history(&base, "ops/a", 4, 0, |_| 10.0);
    history(&base, "ops/b", 4, 1, |_| 30.0);
    let (serve, addr) = serve(&base);
    let serve = KillOnDrop(serve);
    let page = text(addr, "/compare?ids=ops/a,ops/b,ops/none");
    let short: String = page.chars().take(600).collect();
    assert!(!page.to_lowercase().contains("nan"), "{short}");
    for id in ["ops/a", "ops/b"] {
        assert_eq!(
            page.matches(&format!("class=\"median\" data-site=\"{id}\""))
                .count(),
            1,
            "one line for {id}: {short}"
        );
        assert!(
            page.contains(&format!("class=\"smoke\" data-site=\"{id}\"")),
            "{short}"
        );
        assert!(
            page.contains(&format!("<tr data-id=\"{id}\">")),
            "legend {id}"
        );
    }
    // A round's value under the mouse: 10 ms, and 31.5 ms with the
    // fastest of five pings lost (the median of 28.5, 30, 31.5, 33 ms as
    // the store keeps it).
    assert!(page.contains("median 10.0 ms, loss 0 %"), "{short}");
    assert!(page.contains("median 31.5 ms, loss 20 %"), "{short}");
    assert!(
        page.contains("<tr class=\"muted\" data-id=\"ops/none\">"),
        "{short}"
    );
    assert!(text(addr, "/compare").contains("id=\"nodata\""));
    for junk in [
        "/compare?ids=..%2F..%2Fetc%2Fpasswd",
        "/compare?ids=/etc/passwd",
        "/compare?ids=a%00b",
    ] {
        assert_eq!(get(addr, junk).0, 404, "{junk}");
    }
    let many: Vec<String> = (0..11).map(|i| format!("x{i}")).collect();
    assert_eq!(
        get(addr, &format!("/compare?ids={}", many.join(","))).0,
        400
    );
    // In a real browser: pick two orders in the list, press the button.
    let Some(browser) = chromium("compare_draws_the_picked_orders_on_one_graph (browser part)")
    else {
        return;
    };
    let mut dt = DevTools::open(&browser, &format!("http://{addr}/"));
    wait_for(Duration::from_secs(20), || {
        dt.eval("document.querySelectorAll('input[name=ids]').length")
            .as_u64()
            .filter(|n| *n == 3)
    })
    .expect("three check boxes");
    dt.eval(
        "(() => { for (const id of ['ops/a', 'ops/b']) document.querySelector(`input[value=\"${id}\"]`).click();
                  document.querySelector('#compare button').click(); return true; })()",
    );
    let lines = wait_for(Duration::from_secs(20), || {
        let v = dt.eval(
            "location.pathname.endsWith('/compare') ? Array.from(document.querySelectorAll('polyline.median'), (l) => l.dataset.site).join(' ') : null",
        );
        // While the new page loads, its lines are not there yet.
        v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
    })
    .expect("the compare page in the browser");
    assert_eq!(lines, "ops/a ops/b");
    let search = dt.eval("location.search");
    assert_eq!(search.as_str(), Some("?ids=ops%2Fa&ids=ops%2Fb"));
    drop(dt);
    let _ = browse(
        &browser,
        &[
            "--window-size=1100,820",
            &format!(
                "--screenshot={}",
                screenshot_dir().join("compare.png").display()
            ),
        ],
        &format!("http://{addr}/compare?ids=ops/a,ops/b"),
    );
    drop(serve);
}

/// `/archive` lists the orders that ended, searchable, each with its
/// graphs up to the time it ended; nothing outside `archive/` is read.
#[test]
fn archived_orders_are_listed_searched_and_graphed() {
    let base = Base::new();
    let order = "user: ops\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\n";
    base.write_order("ops/live", order);
    // An order that ran for 5 hours and ended: its output moved to
    // archive/ as the daemon moves it.
    history(&base, "old/gone", 5, 1, |_| 12.0);
    let archived = base.path().join("archive/old/gone");
    std::fs::create_dir_all(archived.parent().unwrap()).unwrap();
    std::fs::rename(base.output("old/gone"), &archived).unwrap();
    let now = pingmachine::clock::unix_s();
    let ended = now - now % 60;
    std::fs::write(
        archived.join("last_result"),
        format!("time: {ended}\nupdated: {}\nstep: 60\npings: 5\nloss: 1\nmin: 1.140000e-02\nmedian: 1.260000e-02\nmax: 1.320000e-02\n", ended + 5),
    )
    .unwrap();
    history(&base, "ops/live", 1, 0, |_| 5.0);
    let (serve, addr) = serve(&base);
    let serve = KillOnDrop(serve);
    let list = text(addr, "/archive");
    assert!(list.contains("<tr data-id=\"old/gone\">"), "{list}");
    assert!(list.contains("href=\"archive/order/old/gone\""), "{list}");
    assert!(
        list.contains("12.600 ms") && list.contains("20 %"),
        "{list}"
    );
    assert!(!list.contains("ops/live"), "active orders are not ended");
    assert!(text(addr, "/archive?q=gone").contains("old/gone"));
    assert!(text(addr, "/archive?q=zzz").contains("no ended orders"));
    let page = text(addr, "/archive/order/old/gone");
    assert!(!page.to_lowercase().contains("nan"), "{page}");
    assert!(page.contains("id=\"ended\">Ended "), "{page}");
    let srcs: Vec<String> = page
        .match_indices("src=\"archive/graph/old/gone?")
        .map(|(i, _)| {
            let s = &page[i + 5..];
            s[..s.find('"').unwrap()].replace("&amp;", "&")
        })
        .collect();
    assert_eq!(srcs.len(), 4, "{page}");
    for s in &srcs {
        assert!(
            s.ends_with(&format!("&end={ended}")),
            "graphs end when it ended: {s}"
        );
        let (status, _, body) = get(addr, &format!("/{s}"));
        assert_eq!(status, 200, "{s}");
        assert!(is_png(&body).is_some(), "{s}");
    }
    for junk in [
        "/archive/order/nope",
        "/archive/order/ops/live",
        "/archive/order/..%2f..%2fetc%2fpasswd",
        "/archive/graph/..%2foutput%2fops%2flive?range=3600",
        "/archive/graph/ops/live?range=3600",
    ] {
        assert_eq!(get(addr, junk).0, 404, "{junk}");
    }
    assert!(text(addr, "/").contains("<a href=\"archive\">archive</a>"));
    let Some(browser) = chromium("archived_orders_are_listed_searched_and_graphed (browser part)")
    else {
        return;
    };
    let mut dt = DevTools::open(&browser, &format!("http://{addr}/archive/order/old/gone"));
    let loaded = wait_for(Duration::from_secs(20), || {
        dt.eval(
            "(() => { const i = Array.from(document.querySelectorAll('img.graph'));
               return i.length === 4 && i.every((x) => x.complete && x.naturalWidth > 0) ? i.length : null; })()",
        )
        .as_u64()
    });
    assert_eq!(loaded, Some(4), "the four graphs drawn in the browser");
    drop(dt);
    drop(serve);
}

/// A client for `https://127.0.0.1` that trusts `ca` (and shows the
/// client certificate `client`, if given).
fn https_client(ca: &Path, client: Option<(&Path, &Path)>) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `GET url` with `client`: the status and body, or why it failed (the
/// whole chain of errors).
fn https_get(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    auth: Option<(&str, &str)>,
) -> Result<(u16, String), String> {
    rt.block_on(async {
        let mut req = client.get(url);
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                Ok((status, resp.text().await.unwrap_or_default()))
            }
            Err(e) => {
                let mut why = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    src = s.source();
                }
                Err(why)
            }
        }
    })
}

/// `tls_server_config` in the `--web-config-file`: the daemon speaks
/// HTTPS only, with the certificate from the file (basic auth on top);
/// a client that does not trust its CA is refused; a renewed certificate
/// is served without a restart; `healthcheck` follows; `serve` can
/// require client certificates; a key that does not match its
/// certificate is a start-up error naming both files.
#[test]
fn https_from_the_web_config_file() {
    let test = "https_from_the_web_config_file";
    if !can_ping(test) {
        return;
    }
    let base = Base::new();
    base.write_order(
        "lab/v4",
        "user: lab\nstep: 10\npings: 2\nprobe: fping\nfping: {host: 127.0.0.1}\n",
    );
    let certs_dir = base.path().join("tls");
    std::fs::create_dir(&certs_dir).unwrap();
    let pem = testkit::write_pem_files(&certs_dir);
    let hash = bcrypt::hash("pw", 4).unwrap();
    let cfg = certs_dir.join("web.yml");
    // Paths relative to the file.
    std::fs::write(
        &cfg,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  min_version: TLS12\n\
             basic_auth_users:\n  alice: '{hash}'\n"
        ),
    )
    .unwrap();
    let port = testkit::free_tcp_port();
    let d = Daemon::start(
        &base,
        &[
            "--listen",
            &port.to_string(),
            "--web-config-file",
            cfg.to_str().unwrap(),
        ],
    );
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = https_client(&pem.ca, None);
    let alice = Some(("alice", "pw"));
    wait_for(Duration::from_secs(30), || {
        https_get(&rt, &client, &url("/-/healthy"), alice).ok()
    })
    .unwrap_or_else(|| panic!("no HTTPS answer; log:\n{}", d.log_text()));
    wait_for(Duration::from_secs(60), || base.last_result("lab/v4"))
        .unwrap_or_else(|| panic!("no round; log:\n{}", d.log_text()));
    for path in ["/", "/metrics", "/order/lab/v4", "/api/v1/orders"] {
        let (status, body) = https_get(&rt, &client, &url(path), alice).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let (status, _) = https_get(&rt, &client, &url(path), None).unwrap();
        assert_eq!(status, 401, "{path} without credentials");
    }
    let (_, metrics) = https_get(&rt, &client, &url("/metrics"), alice).unwrap();
    assert!(metrics.contains("smokeping_requests_total{"), "{metrics}");
    // Plain HTTP on the same port gets no HTTP answer.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 "),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // A client that does not trust the CA is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = testkit::write_pem_files(other_dir.path());
    let stranger = https_client(&other.ca, None);
    let e = https_get(&rt, &stranger, &url("/-/healthy"), alice).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // healthcheck speaks HTTPS to it.
    let out = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .arg("healthcheck")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("https://127.0.0.1:{port}/-/healthy answered 401")),
        "{text}"
    );
    // Renewed: the other CA's pair is copied over the files; the daemon
    // serves it from the next handshake after it sees the change.
    std::fs::copy(&other.cert, &pem.cert).unwrap();
    std::fs::copy(&other.key, &pem.key).unwrap();
    let renewed = wait_for(Duration::from_secs(20), || {
        https_get(&rt, &stranger, &url("/-/healthy"), alice)
            .ok()
            .filter(|(s, _)| *s == 200)
    });
    assert!(
        renewed.is_some(),
        "the renewed certificate is not served; log:\n{}",
        d.log_text()
    );
    // (A new client each time: a pooled connection would skip the
    // handshake.)
    let fresh = https_client(&pem.ca, None);
    assert!(https_get(&rt, &fresh, &url("/-/healthy"), alice).is_err());
    // A broken pair written over it: logged, and the last good one stays.
    std::fs::write(&pem.key, "not a key\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let fresh = https_client(&other.ca, None);
    let (status, _) = https_get(&rt, &fresh, &url("/-/healthy"), alice).unwrap();
    assert_eq!(status, 200);
    assert!(
        wait_for(Duration::from_secs(10), || d
            .log_text()
            .contains("serving the previous one")
            .then_some(()))
        .is_some(),
        "{}",
        d.log_text()
    );
    drop(d);

    // serve, wanting client certificates signed by the CA.
    let cfg2 = certs_dir.join("mtls.yml");
    std::fs::write(
        &cfg2,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            other.cert.display(),
            other.key.display(),
            other.ca.display()
        ),
    )
    .unwrap();
    let port2 = testkit::free_tcp_port();
    let serve = KillOnDrop(
        Command::new(bin())
            .arg("--basedir")
            .arg(base.path())
            .args(["serve", "--listen", &port2.to_string(), "--web-config-file"])
            .arg(&cfg2)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url2 = format!("https://127.0.0.1:{port2}/api/v1/orders");
    let with_cert = https_client(&other.ca, Some((&other.client_cert, &other.client_key)));
    let ok = wait_for(Duration::from_secs(20), || {
        https_get(&rt, &with_cert, &url2, None).ok()
    })
    .expect("serve with client certificates answers");
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert!(ok.1.contains("lab/v4"), "{}", ok.1);
    let e = https_get(&rt, &https_client(&other.ca, None), &url2, None).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    drop(serve);

    // A key that is not the certificate's: serve does not start, and says
    // which files.
    std::fs::write(
        &cfg2,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            pem.ca.display(),
            other.client_key.display()
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("--basedir")
        .arg(base.path())
        .args([
            "serve",
            "--listen",
            &testkit::free_tcp_port().to_string(),
            "--web-config-file",
        ])
        .arg(&cfg2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("ca.pem") && err.contains("client.key"),
        "{err}"
    );
}

/// The order page's interactive graph (uPlot, vendored) in headless
/// Chromium: drawn from the series endpoint; the mouse over a known round
/// shows that round's median and loss; a drag zooms to the dragged range
/// (kept in the URL) and "back" returns; a range without rounds says "no
/// data"; a young order's graph starts at its first round.
#[test]
fn the_order_page_graph_shows_values_under_the_mouse_and_zooms() {
    let Some(browser) = chromium("the_order_page_graph_shows_values_under_the_mouse_and_zooms")
    else {
        return;
    };
    let base = Base::new();
    let order = "user: ops\nstep: 60\npings: 5\nprobe: fping\nfping: {host: 192.0.2.1}\n";
    base.write_order("ops/a", order);
    base.write_order("ops/young", order);
    history(&base, "ops/a", 4, 1, |t| {
        10.0 + f64::from((t / 60 % 10) as u8)
    });
    history_s(&base, "ops/young", 20 * 60, 0, |_| 7.0);
    let (serve, addr) = serve(&base);
    let _serve = KillOnDrop(serve);
    let mut dt = DevTools::open(&browser, &format!("http://{addr}/order/ops/a"));
    let drawn = |dt: &mut DevTools, want: &str| {
        wait_for(Duration::from_secs(20), || {
            (dt.eval("document.getElementById('live').dataset.drawn")
                .as_str()
                == Some(want))
            .then_some(())
        })
    };
    drawn(&mut dt, "chart").expect("the interactive graph was not drawn");
    let shot = screenshot_dir().join("order-live.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,760",
        ],
        &format!("http://{addr}/order/ops/a"),
    );
    eprintln!("screenshot: {}", shot.display());
    let range = |dt: &mut DevTools| -> (i64, i64) {
        let v = dt.eval("[Number(document.getElementById('live').dataset.start), Number(document.getElementById('live').dataset.end)]");
        (v[0].as_i64().unwrap(), v[1].as_i64().unwrap())
    };
    let (start, end) = range(&mut dt);
    assert!((end - start - 3 * 3600).abs() <= 1, "{start}..{end}");
    // A known round an hour ago: its values from the series endpoint.
    let t = end - end % 60 - 3600;
    let (status, _, body) = get(
        addr,
        &format!("/api/v1/orders/ops/a/series?start={start}&end={end}&width=800"),
    );
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let row = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["time"] == t)
        .unwrap_or_else(|| panic!("no row at {t}"))
        .clone();
    let median_ms = row["median"].as_f64().unwrap() * 1000.0;
    assert!((row["loss"].as_f64().unwrap() - 0.2).abs() < 1e-9, "{row}");
    let at = |dt: &mut DevTools, time: i64| -> (f64, f64) {
        let v = dt.eval(&format!(
            "(() => {{ const u = document.getElementById('live').uplot; const r = u.over.getBoundingClientRect();
               return [r.left + u.valToPos({time}, 'x'), r.top + r.height / 2]; }})()"
        ));
        (v[0].as_f64().unwrap(), v[1].as_f64().unwrap())
    };
    let (x, y) = at(&mut dt, t);
    dt.mouse("mouseMoved", x, y);
    let readout = wait_for(Duration::from_secs(10), || {
        let v = dt.eval("document.getElementById('live').dataset.hover === String(TIME) ? document.querySelector('#live .live-readout').textContent : null".replace("TIME", &t.to_string()).as_str());
        v.as_str().map(str::to_owned)
    })
    .expect("the round under the mouse");
    assert!(
        readout.contains(&format!("median {median_ms:.3} ms")) && readout.contains("loss 20 %"),
        "{readout} (want median {median_ms:.3} ms, loss 20 %)"
    );
    assert!(!readout.to_lowercase().contains("nan"), "{readout}");
    // Drag from 25 % to 75 % of the plot.
    let (x0, _) = at(&mut dt, start + (end - start) / 4);
    let (x1, _) = at(&mut dt, start + 3 * (end - start) / 4);
    dt.mouse("mousePressed", x0, y);
    dt.mouse("mouseMoved", (x0 + x1) / 2.0, y);
    dt.mouse("mouseMoved", x1, y);
    dt.mouse("mouseReleased", x1, y);
    let zoomed = wait_for(Duration::from_secs(10), || {
        let r = range(&mut dt);
        (r.0 != start).then_some(r)
    })
    .expect("the drag did not zoom");
    drawn(&mut dt, "chart").expect("the zoomed graph was not drawn");
    let px = (end - start) as f64
        / dt.eval("document.getElementById('live').uplot.over.clientWidth")
            .as_f64()
            .unwrap();
    let want = (start + (end - start) / 4, start + 3 * (end - start) / 4);
    assert!(
        ((zoomed.0 - want.0) as f64).abs() <= 2.0 * px + 1.0
            && ((zoomed.1 - want.1) as f64).abs() <= 2.0 * px + 1.0,
        "zoomed to {zoomed:?}, expected about {want:?} (1 px = {px:.0} s)"
    );
    let search = dt.eval("location.search");
    assert_eq!(
        search.as_str(),
        Some(format!("?start={}&end={}", zoomed.0, zoomed.1).as_str())
    );
    assert_eq!(
        dt.eval("document.querySelector('#live .live-back').hidden"),
        serde_json::Value::Bool(false)
    );
    dt.eval("document.querySelector('#live .live-back').click()");
    let back = wait_for(Duration::from_secs(10), || {
        let r = range(&mut dt);
        (r == (start, end)).then_some(r)
    });
    assert!(back.is_some(), "back did not return to {start}..{end}");
    drawn(&mut dt, "chart").expect("the graph after back");
    assert_eq!(
        dt.eval("document.querySelector('#live .live-back').hidden"),
        serde_json::Value::Bool(true)
    );

    // A range before the order: "no data", no chart. (Navigated from
    // the page: the DevTools "new tab" URL cannot carry a second query
    // parameter.)
    dt.eval(&format!(
        "location.href = 'order/ops/a?start={}&end={}'",
        start - 20 * 86400,
        start - 19 * 86400
    ));
    if wait_for(Duration::from_secs(20), || {
        (dt.eval("location.search.startsWith('?start=') && document.getElementById('live').dataset.drawn").as_str() == Some("empty")).then_some(())
    })
    .is_none()
    {
        let why = dt.eval("location.href + ' ' + document.body.outerHTML.slice(0, 3000)");
        panic!("the empty range was not drawn as such: {why}");
    }
    let text = dt.eval("document.querySelector('#live .live-chart').textContent");
    assert!(
        text.as_str().unwrap_or("").starts_with("no data from"),
        "{text}"
    );
    drop(dt);

    // A young order: the graph starts at its first round.
    let mut dt = DevTools::open(&browser, &format!("http://{addr}/order/ops/young"));
    drawn(&mut dt, "chart").expect("the young order's graph");
    let min = dt
        .eval("document.getElementById('live').uplot.scales.x.min")
        .as_f64()
        .unwrap();
    let (ystart, yend) = range(&mut dt);
    assert!(
        min > (yend - 25 * 60) as f64 && min > ystart as f64,
        "x starts at {min}, range {ystart}..{yend}"
    );
    let caption = dt.eval("document.querySelector('#live .live-range').textContent");
    assert!(
        caption
            .as_str()
            .unwrap_or("")
            .contains("since the order's first round"),
        "{caption}"
    );
}

/// The status list: a sparkline of the last 3 hours per order from its
/// main.rrd, coloured by loss; median, loss and jitter over the last hour
/// or day, sorted by; the task under the id; in headless Chromium.
#[test]
fn the_list_shows_sparklines_and_sorts_over_a_period() {
    let base = Base::new();
    let order = |task: &str| {
        format!("user: ops\nstep: 60\npings: 5\ntask: {task}\nprobe: fping\nfping: {{host: 192.0.2.1}}\n")
    };
    base.write_order("ops/t2", &order("the lossy one"));
    base.write_order("ops/t10", &order("the slow one"));
    base.write_order("ops/t1", &order("the jittery one"));
    // Two of five pings lost in every round (40 %), 20 ms.
    history(&base, "ops/t2", 5, 2, |_| 20.0);
    history(&base, "ops/t10", 5, 0, |_| 80.0);
    history(&base, "ops/t1", 5, 0, |t| {
        if t / 60 % 2 == 0 {
            5.0
        } else {
            25.0
        }
    });
    let (serve, addr) = serve(&base);
    let _serve = KillOnDrop(serve);
    let order_of = |page: &str| -> Vec<String> {
        page.split("<tr data-id=\"")
            .skip(1)
            .filter_map(|r| r.split('"').next().map(str::to_owned))
            .collect()
    };
    // Natural order of ids without a period and sort.
    let page = text(addr, "/?sort=id");
    assert_eq!(order_of(&page), ["ops/t1", "ops/t2", "ops/t10"]);
    // Over the last hour, from main.rrd (there is no last_result).
    for (sort, want) in [
        ("loss", ["ops/t2", "ops/t1", "ops/t10"]),
        ("median", ["ops/t10", "ops/t2", "ops/t1"]),
        ("jitter", ["ops/t1", "ops/t10", "ops/t2"]),
    ] {
        let page = text(addr, &format!("/?sort={sort}&period=3600"));
        let got = order_of(&page);
        assert_eq!(got[0], want[0], "{sort}: {got:?}");
        if sort != "jitter" {
            assert_eq!(got, want, "{sort}");
        }
    }
    let page = text(addr, "/?sort=loss&period=86400");
    assert_eq!(order_of(&page)[0], "ops/t2");
    assert!(page.contains("40.0 %"), "{page}");
    assert!(page.contains("80.000 ms"), "{page}");
    assert!(page.contains("<option value=\"86400\" selected>"), "{page}");
    // The column links keep the period.
    assert!(
        page.contains("href=\"./?sort=median&amp;period=86400\""),
        "{page}"
    );
    // Sparklines: one per order, the lossy one in the colour of 40 %.
    assert_eq!(page.matches("<svg class=\"spark\"").count(), 3, "{page}");
    let row = |page: &str, id: &str| -> String {
        let at = page.find(&format!("<tr data-id=\"{id}\"")).unwrap();
        page[at..].split("</tr>").next().unwrap().to_owned()
    };
    assert!(
        row(&page, "ops/t2").contains("stroke=\"#DD00FF\""),
        "{}",
        row(&page, "ops/t2")
    );
    assert!(row(&page, "ops/t10").contains("stroke=\"#26C400\""));
    assert!(row(&page, "ops/t2").contains("the lossy one"));
    assert!(!page.to_lowercase().contains("nan"));
    let Some(browser) =
        chromium("the_list_shows_sparklines_and_sorts_over_a_period (browser part)")
    else {
        return;
    };
    let mut dt = DevTools::open(&browser, &format!("http://{addr}/"));
    let drawn = wait_for(Duration::from_secs(20), || {
        let v = dt.eval(
            "(() => { const s = Array.from(document.querySelectorAll('#rows svg.spark'));
               return s.length === 3 ? s.map((e) => { const p = e.querySelector('polyline'); const b = p.getBBox();
                 return [e.closest('tr').dataset.id, b.width, p.getAttribute('stroke')]; }) : null; })()",
        );
        v.as_array().cloned()
    })
    .expect("three sparklines in the browser");
    for d in &drawn {
        assert!(d[1].as_f64().unwrap() > 100.0, "a sparkline across: {d}");
    }
    // Choosing the period and the sort in the page.
    dt.eval("location.href = './?sort=loss&period=3600'");
    let first = wait_for(Duration::from_secs(20), || {
        dt.eval("location.search === '?sort=loss&period=3600' && document.querySelector('#rows tr[data-id]') ? document.querySelector('#rows tr[data-id]').dataset.id : null")
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(first.as_deref(), Some("ops/t2"));
    let shot = screenshot_dir().join("status-sparklines.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,400",
        ],
        &format!("http://{addr}/"),
    );
    eprintln!("screenshot: {}", shot.display());
}
