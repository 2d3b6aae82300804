// pingmachine web page: refresh the status table in the background, drag
// across a graph to zoom, and the order page's interactive graph (drawn
// with the vendored uPlot, loaded by that page only). No build step.
"use strict";

// Status page: fetch the rows again every 30 s and swap them in place, so
// the scroll position stays.
function refreshRows() {
  const rows = document.getElementById("rows");
  if (!rows) return;
  const url = new URL(window.location.href);
  url.searchParams.set("fragment", "rows");
  fetch(url, { headers: { "Accept": "text/html" } })
    .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
    .then((html) => {
      // Orders picked for comparison stay picked.
      const picked = new Set(Array.from(rows.querySelectorAll("input[name=ids]:checked"), (c) => c.value));
      rows.innerHTML = html;
      rows.querySelectorAll("input[name=ids]").forEach((c) => { c.checked = picked.has(c.value); });
      const at = document.getElementById("updated");
      if (at) at.textContent = "updated " + new Date().toLocaleTimeString();
    })
    .catch(() => {});
}

// Order page: load each graph with fetch to learn where its plot area is
// (X-Graph-* headers), then let a drag across it pick a new time range.
function setUpGraph(box) {
  const img = box.querySelector("img.graph");
  const sel = box.querySelector(".zoom-sel");
  if (!img || !sel) return;
  fetch(img.dataset.src || img.src)
    .then((r) => {
      if (!r.ok) return Promise.reject(r.status);
      const h = (k) => Number(r.headers.get("X-Graph-" + k));
      box.dataset.left = h("Left");
      box.dataset.width = h("Width");
      box.dataset.start = h("Start");
      box.dataset.end = h("End");
      box.dataset.imageWidth = h("Image-Width");
      return r.blob();
    })
    .then((blob) => { img.src = URL.createObjectURL(blob); })
    .catch(() => {});
  let x0 = null;
  const scale = () => img.clientWidth / Number(box.dataset.imageWidth || img.naturalWidth || 1);
  const timeAt = (x) => {
    const left = Number(box.dataset.left) * scale();
    const width = Number(box.dataset.width) * scale();
    const start = Number(box.dataset.start);
    const end = Number(box.dataset.end);
    const f = Math.min(1, Math.max(0, (x - left) / width));
    return Math.round(start + f * (end - start));
  };
  const xOf = (ev) => ev.clientX - img.getBoundingClientRect().left;
  box.addEventListener("mousedown", (ev) => {
    if (!box.dataset.width) return;
    ev.preventDefault();
    x0 = xOf(ev);
    sel.style.left = x0 + "px";
    sel.style.width = "0px";
    sel.style.display = "block";
  });
  box.addEventListener("mousemove", (ev) => {
    if (x0 === null) return;
    const x = xOf(ev);
    sel.style.left = Math.min(x0, x) + "px";
    sel.style.width = Math.abs(x - x0) + "px";
  });
  const finish = (ev) => {
    if (x0 === null) return;
    const x = xOf(ev);
    sel.style.display = "none";
    const a = timeAt(Math.min(x0, x));
    const b = timeAt(Math.max(x0, x));
    x0 = null;
    if (b - a < 60) return;
    const url = new URL(window.location.href);
    url.searchParams.set("start", a);
    url.searchParams.set("end", b);
    window.location.href = url.toString();
  };
  box.addEventListener("mouseup", finish);
  box.addEventListener("mouseleave", (ev) => { if (x0 !== null) finish(ev); });
}

// Order page: the interactive graph. Rows come from the series endpoint
// (seconds, null for unknown); they are drawn as SmokePing draws them:
// grey bands between the i-th fastest and i-th slowest ping (darker
// towards the middle, where they overlap), the median in the colour of
// its round's loss. The values of the round under the mouse are written
// below; a drag zooms (rows read again at the finer resolution), "back"
// returns. The range is kept in the URL (?start=&end=).
function setUpLive(fig) {
  if (typeof uPlot !== "function") return;
  const chartBox = fig.querySelector(".live-chart");
  const readout = fig.querySelector(".live-readout");
  const rangeText = fig.querySelector(".live-range");
  const back = fig.querySelector(".live-back");
  const colours = JSON.parse(fig.dataset.lossColours || "[]");
  fig.querySelectorAll(".swatch").forEach((s) => { s.style.color = s.dataset.colour; });
  const history = [];
  let plot = null;
  let rows = [];
  let current = null;
  const utc = (t) => new Date(t * 1000).toISOString().replace("T", " ").replace(".000Z", " UTC");
  const ms = (v) => (v === null || v === undefined ? null : v * 1000);
  const fmt = (v) => (v === null ? "-" : v.toFixed(3) + " ms");
  const classOf = (loss) => {
    for (let k = 0; k < colours.length; k++) if (loss <= colours[k][0]) return k;
    return colours.length - 1;
  };
  const show = (idx) => {
    const r = idx === null || idx === undefined ? null : rows[idx];
    if (!r) { readout.textContent = "\u00a0"; fig.dataset.hover = ""; return; }
    fig.dataset.hover = String(r.time);
    if (r.median === null && r.loss === null) {
      readout.textContent = utc(r.time) + "  no data";
      return;
    }
    const known = r.pings.filter((p) => p !== null);
    const loss = r.loss === null ? "-" : (r.loss * 100).toFixed(0) + " %";
    readout.textContent = utc(r.time) + "  median " + fmt(ms(r.median)) + "  loss " + loss +
      "  pings " + (known.length ? fmt(ms(known[0])) + " … " + fmt(ms(known[known.length - 1])) : "-");
  };
  const draw = (doc, start, end, zoomed) => {
    rows = doc.rows;
    if (plot) { plot.destroy(); plot = null; }
    chartBox.textContent = "";
    const n = doc.pings;
    const xs = rows.map((r) => r.time);
    const first = rows.find((r) => r.median !== null || r.loss !== null);
    if (!first) {
      const empty = document.createElement("div");
      empty.className = "live-empty";
      empty.textContent = "no data from " + utc(start) + " to " + utc(end);
      chartBox.appendChild(empty);
      rangeText.textContent = "";
      fig.dataset.drawn = "empty";
      return;
    }
    // A young order: its rounds, not hours of nothing before them.
    let from = start;
    if (!zoomed && first.time - start > 4 * doc.resolution) from = first.time - doc.resolution;
    const data = [xs];
    const series = [{}];
    for (let i = 0; i < n; i++) {
      data.push(rows.map((r) => ms(r.pings[i])));
      series.push({ label: "ping" + (i + 1), stroke: "transparent", width: 0, points: { show: false } });
    }
    colours.forEach(([, hex, label], k) => {
      data.push(rows.map((r) => (r.median !== null && r.loss !== null && classOf(r.loss) === k ? ms(r.median) : null)));
      series.push({ label: "median, loss " + label, stroke: hex, width: 2, points: { show: false } });
    });
    const bands = [];
    for (let i = 0; i < Math.floor(n / 2); i++) {
      bands.push({ series: [n - i, i + 1], fill: "rgba(128, 128, 128, 0.3)" });
    }
    const ink = getComputedStyle(document.body).color;
    const opts = {
      width: Math.max(300, chartBox.clientWidth || 800),
      height: 300,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      select: { show: true },
      scales: { x: { time: true, min: from, max: end }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
      axes: [
        {
          stroke: ink, grid: { stroke: "rgba(128,128,128,.2)" }, ticks: { stroke: "rgba(128,128,128,.4)" },
          // 24-hour UTC times; the date too over more than two days.
          values: (u, splits) => splits.map((t) => {
            const d = new Date(t * 1000).toISOString();
            return u.scales.x.max - u.scales.x.min > 2 * 86400 ? d.slice(5, 10) + " " + d.slice(11, 16) : d.slice(11, 16);
          }),
        },
        { stroke: ink, label: "ms", size: 60, grid: { stroke: "rgba(128,128,128,.2)" }, ticks: { stroke: "rgba(128,128,128,.4)" } },
      ],
      series,
      bands,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      hooks: {
        setCursor: [(u) => show(u.cursor.idx)],
        setSelect: [(u) => {
          if (u.select.width < 4) return;
          const a = Math.round(u.posToVal(u.select.left, "x"));
          const b = Math.round(u.posToVal(u.select.left + u.select.width, "x"));
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          if (b - a < 60) return;
          history.push(current);
          load(a, b, true);
        }],
      },
    };
    plot = new uPlot(opts, data, chartBox);
    fig.uplot = plot;
    rangeText.textContent = utc(from) + " – " + utc(end) + (from > start ? " (since the order's first round)" : "");
    back.hidden = history.length === 0;
    fig.dataset.drawn = "chart";
  };
  const load = (start, end, zoomed) => {
    current = { start, end, zoomed };
    fig.dataset.start = String(start);
    fig.dataset.end = String(end);
    const url = new URL(fig.dataset.series, document.baseURI);
    url.searchParams.set("start", start);
    url.searchParams.set("end", end);
    url.searchParams.set("width", Math.max(300, chartBox.clientWidth || 800));
    fig.dataset.drawn = "";
    return fetch(url, { headers: { "Accept": "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((doc) => {
        draw(doc, start, end, zoomed);
        const page = new URL(window.location.href);
        if (zoomed) {
          page.searchParams.set("start", start);
          page.searchParams.set("end", end);
        } else {
          page.searchParams.delete("start");
          page.searchParams.delete("end");
        }
        window.history.replaceState(null, "", page);
      })
      .catch((e) => { readout.textContent = "cannot read the series (" + e + ")"; });
  };
  back.addEventListener("click", () => {
    const prev = history.pop();
    if (prev) load(prev.start, prev.end, prev.zoomed);
  });
  chartBox.addEventListener("mouseleave", () => show(null));
  window.addEventListener("resize", () => {
    if (plot) plot.setSize({ width: Math.max(300, chartBox.clientWidth), height: 300 });
  });
  const now = Math.floor(Date.now() / 1000);
  const s = Number(fig.dataset.start);
  const e = Number(fig.dataset.end);
  if (fig.dataset.start && fig.dataset.end && e > s) load(s, e, true);
  else load(now - 3 * 3600, now, false);
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("rows")) setInterval(refreshRows, 30000);
  document.querySelectorAll(".graph-box").forEach(setUpGraph);
  const live = document.getElementById("live");
  if (live) setUpLive(live);
});
