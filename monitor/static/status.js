// The status page's plots: one uPlot chart per strain gauge, stacked per site
// and session, from /api/series (min/max/mean buckets, at most a few thousand
// per gauge, downsampled by the server). Times are UTC. Each chart records
// what it drew (tick labels and their pixel extents, the plotting area,
// points) in its section's data-info attribute: the browser test reads it.
"use strict";

(function () {
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
  const font = "12px sans-serif";
  const fontPx = 12;
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = font;
  const textWidth = (s) => Math.max(0, ...String(s).split("\n").map((l) => measure.measureText(l).width));

  const pad2 = (n) => String(n).padStart(2, "0");
  const utc = (s) => new Date(s * 1000);
  const dateStr = (d) => `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  function timeStr(d, incr) {
    let s = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    if (incr < 60) s += `:${pad2(d.getUTCSeconds())}`;
    if (incr < 1) {
      const dec = incr < 0.1 ? 2 : 1;
      s += "." + String(d.getUTCMilliseconds()).padStart(3, "0").slice(0, dec);
    }
    return s;
  }
  // fullStr writes a time in full, with milliseconds only when it has some.
  function fullStr(s) {
    const d = utc(s);
    return `${dateStr(d)} ${timeStr(d, d.getUTCMilliseconds() ? 0.01 : 1)}`;
  }

  // Time tick labels: the time of day at uPlot's round steps, and the UTC
  // date under the first tick and wherever the date changes.
  function xValues(u, splits, axisIdx, space, incr) {
    let prevDate = "";
    return splits.map((s) => {
      const d = utc(s);
      const date = dateStr(d);
      if (incr >= 86400) return date;
      const t = timeStr(d, incr);
      const label = date !== prevDate ? `${t}\n${date}` : t;
      prevDate = date;
      return label;
    });
  }

  function yFormatter(incr) {
    let dec = 0;
    while (dec < 6 && Math.abs(incr * 10 ** dec - Math.round(incr * 10 ** dec)) > 1e-9) dec++;
    const f = new Intl.NumberFormat("en-US", { minimumFractionDigits: dec, maximumFractionDigits: dec });
    return (v) => f.format(v);
  }

  const state = { range: "", yscale: "own", unit: "counts" };

  // yRanges gives each gauge its y range under the chosen scale option:
  // own (each gauge fills its panel), span (the same height in units for all,
  // each centred on its data: compares amplitudes; the gauges sit ~1e6 counts
  // apart), same (one range for all four).
  function yRanges(data) {
    const ext = data.Gauges.map((g) => {
      let lo = Infinity, hi = -Infinity;
      for (let i = 0; i < g.Min.length; i++) {
        if (g.Min[i] != null) lo = Math.min(lo, g.Min[i]);
        if (g.Max[i] != null) hi = Math.max(hi, g.Max[i]);
      }
      return lo <= hi ? [lo, hi] : null;
    });
    const minSpan = data.Unit === "counts" ? 4 : 1e-3;
    const padded = (lo, hi) => {
      let span = Math.max(hi - lo, minSpan);
      const mid = (lo + hi) / 2;
      span *= 1.08;
      return [mid - span / 2, mid + span / 2];
    };
    const known = ext.filter((e) => e);
    if (state.yscale === "same" && known.length) {
      const r = padded(Math.min(...known.map((e) => e[0])), Math.max(...known.map((e) => e[1])));
      return ext.map(() => r);
    }
    if (state.yscale === "span" && known.length) {
      const span = Math.max(...known.map((e) => e[1] - e[0]));
      return ext.map((e) => (e ? padded((e[0] + e[1]) / 2 - span / 2, (e[0] + e[1]) / 2 + span / 2) : null));
    }
    return ext.map((e) => (e ? padded(e[0], e[1]) : null));
  }

  function render(sec) {
    const data = sec.data;
    sec.charts.forEach((c) => c.destroy());
    sec.charts = [];
    const panels = sec.el.querySelector(".panels");
    panels.textContent = "";
    const width = Math.max(400, panels.clientWidth || sec.el.clientWidth);
    const ranges = yRanges(data);
    const info = { source: data.Source, stepS: data.StepS, unit: data.Unit, from: data.From, to: data.To, n: data.T.length, panels: [] };
    sec.info = info;
    data.Gauges.forEach((g, gi) => {
      const div = document.createElement("div");
      div.className = "panel";
      panels.appendChild(div);
      const nonNull = g.Mean.filter((v) => v != null).length;
      const pinfo = { channel: g.Channel, nonNull, yRange: ranges[gi], xTicks: [], yTicks: [] };
      info.panels.push(pinfo);
      if (!nonNull || !ranges[gi]) {
        const p = document.createElement("p");
        p.className = "empty";
        p.textContent = data.Unit === "µε" && !g.Reference
          ? `${g.Channel}: no site_reference row for gauge ${gi + 1}, so no µε (see docs/sql.md)`
          : `${g.Channel}: no values in this range`;
        div.appendChild(p);
        return;
      }
      let xLabels = [], yLabels = [];
      const opts = {
        width, height: 240,
        // Room right of the plot for the half of the last time label.
        padding: [8, 40, 0, 0],
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        scales: {
          x: { time: true, range: () => [data.From, data.To] },
          y: { range: () => ranges[gi] },
        },
        series: [
          { label: "time (UTC)", value: (u, v) => (v == null ? "" : fullStr(v)) },
          { label: `${g.Channel} max`, stroke: colors[gi] + "55", width: 1 },
          { label: `${g.Channel} min`, stroke: colors[gi] + "55", width: 1 },
          { label: `${g.Channel} mean`, stroke: colors[gi], width: 1.5 },
        ],
        bands: [{ series: [1, 2], fill: colors[gi] + "33" }],
        axes: [
          {
            font, labelFont: font, space: 90, label: "time (UTC)", labelSize: 18,
            grid: { stroke: "#0000001a" }, ticks: { stroke: "#00000040" },
            values: (u, splits, ai, space, incr) => { xLabels = [splits, xValues(u, splits, ai, space, incr)]; return xLabels[1]; },
          },
          {
            font, labelFont: font, space: 30, label: `${g.Channel} (${data.Unit})`, labelSize: 18,
            grid: { stroke: "#0000001a" }, ticks: { stroke: "#00000040" },
            values: (u, splits, ai, space, incr) => { const f = yFormatter(incr); yLabels = [splits, splits.map(f)]; return yLabels[1]; },
            size: (u, values) => (values ? Math.ceil(Math.max(...values.map(textWidth))) + 22 : 60), // tick 10 + gap 5 + text + margin
          },
        ],
        cursor: {
          sync: { key: sec.key },
          drag: { x: true, y: false, setScale: false },
          bind: {
            dblclick: () => () => { if (sec.zoom) { sec.zoom = null; load(sec); } return null; },
          },
        },
        hooks: {
          setSelect: [(u) => {
            if (u.select.width < 4) return;
            const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
            sec.zoom = [Math.floor(a * 1000), Math.ceil(b * 1000)];
            load(sec);
          }],
          draw: [(u) => { u.gtsmLabels = { x: xLabels, y: yLabels, pinfo }; publishAll(); }],
        },
      };
      sec.charts.push(new uPlot(opts, [data.T, g.Max, g.Min, g.Mean], div));
    });
    publishAll();
    const zoomed = sec.zoom ? " · zoomed: double-click a plot to return" : "";
    const bucket = data.Source === "samples" && data.StepS === data.IntervalS
      ? "every sample"
      : `buckets of ${stepStr(data.StepS)} from ${data.Source}`;
    sec.el.querySelector(".range").textContent =
      `${fullStr(data.From)} – ${fullStr(data.To)} UTC · ${bucket} · ${data.T.length} points · ${data.Unit}${zoomed}`;
  }

  // publishAll records, for every chart on the page, where its plotting area
  // and tick labels are in page pixels (section.dataset.info). Recomputed
  // after any chart draws, as a section that loads later moves the ones below.
  function publishAll() {
    for (const sec of sections) {
      if (!sec.info) continue;
      for (const u of sec.charts) {
        const l = u.gtsmLabels;
        if (!l) continue;
        const over = u.over.getBoundingClientRect(), root = u.root.getBoundingClientRect();
        const ox = over.left + window.scrollX, oy = over.top + window.scrollY;
        l.pinfo.over = { x: ox, y: oy, w: over.width, h: over.height };
        l.pinfo.chart = { x: root.left + window.scrollX, y: root.top + window.scrollY, w: root.width, h: root.height };
        l.pinfo.xTicks = l.x[1].map((t, i) => {
          const x = ox + u.valToPos(l.x[0][i], "x");
          const w = textWidth(t);
          return { text: t, left: x - w / 2, right: x + w / 2 };
        });
        l.pinfo.yTicks = l.y[1].map((t, i) => {
          const y = oy + u.valToPos(l.y[0][i], "y");
          return { text: t, top: y - fontPx / 2, bottom: y + fontPx / 2, left: ox - 15 - textWidth(t) }; // right-aligned after the 10 px tick and 5 px gap
        });
      }
      sec.el.dataset.info = JSON.stringify(sec.info);
    }
  }

  function stepStr(s) {
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${s / 60} min`;
    if (s < 86400) return `${s / 3600} h`;
    return `${s / 86400} d`;
  }

  async function load(sec) {
    const q = new URLSearchParams({ site: sec.site, session: sec.session, unit: state.unit, points: "2000" });
    if (sec.zoom) {
      q.set("from", sec.zoom[0]);
      q.set("to", sec.zoom[1]);
    } else if (state.range) {
      q.set("span", state.range);
    }
    const seq = ++sec.seq;
    try {
      const resp = await fetch("/api/series?" + q, { cache: "no-store" });
      const body = resp.ok ? await resp.json() : await resp.text();
      if (seq !== sec.seq) return; // a newer request was made meanwhile
      if (!resp.ok) throw new Error(body.trim());
      sec.data = body;
      render(sec);
      sec.el.dataset.loaded = String(seq);
    } catch (e) {
      sec.el.querySelector(".range").textContent = `cannot load /api/series: ${e.message}`;
      sec.el.dataset.error = e.message;
    }
  }

  const sections = [...document.querySelectorAll("section.plot")].map((el, i) => ({
    el, site: el.dataset.site, session: el.dataset.session, key: "gtsm-" + i, charts: [], zoom: null, seq: 0, data: null,
  }));

  async function refreshTables() {
    try {
      const resp = await fetch("/", { cache: "no-store" });
      if (!resp.ok) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const fresh = doc.getElementById("tables");
      const tables = document.getElementById("tables");
      if (fresh) {
        tables.innerHTML = fresh.innerHTML;
        tables.dataset.refreshed = String(Number(tables.dataset.refreshed || 0) + 1);
      }
    } catch (e) {
      // The processor may be restarting: keep the last page, try again later.
    }
  }

  // The controls start from the page's URL (?range=&yscale=&unit=, and
  // from=&to= in UNIX ms to open zoomed), and write their state back into
  // it, so a view can be bookmarked or shared.
  const params = new URLSearchParams(location.search);
  function saveURL() {
    const p = new URLSearchParams();
    for (const k of ["range", "yscale", "unit"]) if (state[k] && state[k] !== document.getElementById(k).options[0].value) p.set(k, state[k]);
    history.replaceState(null, "", p.toString() ? "?" + p : location.pathname);
  }
  function bind(id, key) {
    const el = document.getElementById(id);
    if (!el) return;
    if (params.has(key)) el.value = params.get(key);
    el.addEventListener("change", () => {
      state[key] = el.value;
      saveURL();
      sections.forEach((s) => {
        if (key === "range") s.zoom = null;
        if (key === "yscale" && s.data) render(s);
        else load(s);
      });
    });
    state[key] = el.value;
  }
  bind("range", "range");
  bind("yscale", "yscale");
  bind("unit", "unit");

  if (params.has("from") && params.has("to")) {
    sections.forEach((s) => { s.zoom = [Number(params.get("from")), Number(params.get("to"))]; });
  }
  sections.forEach(load);
  setInterval(() => {
    const box = document.getElementById("refresh");
    if (box && !box.checked) return;
    refreshTables();
    // A zoomed plot keeps its range; the others follow the data's end.
    sections.forEach((s) => { if (!s.zoom) load(s); });
  }, 30000);
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => sections.forEach((s) => s.data && render(s)), 200);
  });
})();
