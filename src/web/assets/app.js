// pingmachine web page: refresh the status table in the background, and
// drag across a graph to zoom. No dependencies, no build step.
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

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("rows")) setInterval(refreshRows, 30000);
  document.querySelectorAll(".graph-box").forEach(setUpGraph);
});
