// The status page's plots: one uPlot chart per strain gauge, stacked per site
// and session, from /api/series (min/max/mean buckets, at most a few thousand
// per gauge, downsampled by the server); and the Level-2 section: one chart
// per gauge and regional strain of the chosen site, raw and corrected, from
// /api/level2 (bucketed the same way). Times are UTC. Each chart records
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

  const state = { range: "", yscale: "own", unit: "counts", l2site: "", l2matrix: "", l2show: "both" };
  const rawColor = "#1f77b4", corrColor = "#ff7f0e"; // Level-2 raw, corrected

  // yRanges gives each panel its y range under the chosen scale option:
  // own (each panel fills its height), span (the same height in units for
  // all panels of a group, each centred on its data: compares amplitudes;
  // the gauges sit ~1e6 counts apart), same (one range for the group).
  // Groups: the gauges, and the regional strains.
  function yRanges(specs, unit) {
    const ext = specs.map((p) => {
      let lo = Infinity, hi = -Infinity;
      for (const l of p.lines) {
        for (let i = 0; i < l.min.length; i++) {
          if (l.min[i] != null) lo = Math.min(lo, l.min[i]);
          if (l.max[i] != null) hi = Math.max(hi, l.max[i]);
        }
      }
      return lo <= hi ? [lo, hi] : null;
    });
    const minSpan = unit === "counts" ? 4 : 1e-3;
    const padded = (lo, hi) => {
      let span = Math.max(hi - lo, minSpan);
      const mid = (lo + hi) / 2;
      span *= 1.08;
      return [mid - span / 2, mid + span / 2];
    };
    const out = ext.map((e) => (e ? padded(e[0], e[1]) : null));
    for (const group of new Set(specs.map((p) => p.group))) {
      const idx = specs.map((p, i) => (p.group === group && ext[i] ? i : -1)).filter((i) => i >= 0);
      if (!idx.length) continue;
      if (state.yscale === "same") {
        const r = padded(Math.min(...idx.map((i) => ext[i][0])), Math.max(...idx.map((i) => ext[i][1])));
        idx.forEach((i) => { out[i] = r; });
      } else if (state.yscale === "span") {
        const span = Math.max(...idx.map((i) => ext[i][1] - ext[i][0]));
        idx.forEach((i) => { const m = (ext[i][0] + ext[i][1]) / 2; out[i] = padded(m - span / 2, m + span / 2); });
      }
    }
    return out;
  }

  // maskStr names the corrections of a bit mask (bit i: names[i]).
  const maskStr = (m, names) => names.filter((_, i) => m & (1 << i));

  // corrSummary says which corrections the corrected series of a Level-2
  // panel had, over the range: applied to every row, to some (the others
  // have no corrected value: never counted as zero), or to none.
  function corrSummary(s, names) {
    if (!s.Rows) return "";
    const all = [], some = [], none = [];
    names.forEach((c, i) => {
      const n = s.CorrN[i];
      if (n === s.Rows) all.push(c);
      else if (n === 0) none.push(c);
      else some.push(`${c} in ${n} of ${s.Rows} rows`);
    });
    const parts = [];
    if (all.length) parts.push("− " + all.join(" − "));
    if (some.length) parts.push("− " + some.join(", ") + " (NULL in the others: no corrected value there)");
    if (none.length) parts.push(none.join(", ") + " NULL: not applied");
    if (!all.length && !some.length) parts.unshift("no correction applied");
    return parts.join("; ");
  }

  // bucketStr says which corrections were applied in one bucket.
  function bucketStr(s, idx, names) {
    const all = maskStr(s.All[idx], names), some = maskStr(s.Some[idx] & ~s.All[idx], names);
    const none = names.filter((c) => !all.includes(c) && !some.includes(c));
    const parts = [];
    if (all.length) parts.push("− " + all.join(" − "));
    if (some.length) parts.push("− " + some.join(" − ") + " in part of the bucket");
    if (none.length) parts.push(none.join(", ") + " not applied");
    return parts.join("; ");
  }

  // panelSpecs describes a section's charts: a title for the value axis, a
  // group (for the y scale options), and lines (each a mean with a min..max
  // band) with their colours and legend labels.
  function panelSpecs(sec) {
    const data = sec.data;
    if (sec.kind === "series") {
      return data.Gauges.map((g, gi) => ({
        name: g.Channel, group: "gauge", yLabel: `${g.Channel} (${data.Unit})`,
        lines: [{ label: g.Channel, color: colors[gi], min: g.Min, max: g.Max, mean: g.Mean }],
        empty: data.Unit === "µε" && !g.Reference
          ? `${g.Channel}: no site_reference row for gauge ${gi + 1}, so no µε (see docs/sql.md)`
          : `${g.Channel}: no values in this range`,
      }));
    }
    const names = data.Corrections;
    const specs = data.Series.map((s) => {
      const lines = [];
      if (state.l2show !== "corr") lines.push({ label: `${s.Name} raw`, color: rawColor, min: s.Raw.Min, max: s.Raw.Max, mean: s.Raw.Mean });
      if (state.l2show !== "raw") {
        lines.push({
          label: `${s.Name} corrected`, meanLabel: `${s.Name} corrected mean (${corrSummary(s, names)})`,
          color: corrColor, min: s.Corr.Min, max: s.Corr.Max, mean: s.Corr.Mean,
          note: (idx) => bucketStr(s, idx, names),
        });
      }
      return {
        name: s.Name, group: s.Kind, yLabel: `${s.Name} (µε)`, lines,
        empty: `${s.Name}: no Level-2 µε in this range` +
          (s.Kind === "gauge" ? " (microstrain is NULL without the station's metadata: gtsm metadata load)" : ""),
      };
    });
    if (!data.Matrix) {
      specs.push({ name: "regional", group: "regional", yLabel: "", lines: [],
        empty: `${data.Site}: no calibration matrix (no station metadata), so no regional strain` });
    }
    return specs;
  }

  function render(sec) {
    const data = sec.data;
    sec.charts.forEach((c) => c.destroy());
    sec.charts = [];
    const panels = sec.el.querySelector(".panels");
    panels.textContent = "";
    const width = Math.max(400, panels.clientWidth || sec.el.clientWidth);
    const specs = panelSpecs(sec);
    const ranges = yRanges(specs, data.Unit);
    const info = { source: data.Source || "level2", stepS: data.StepS, unit: data.Unit, from: data.From, to: data.To, n: data.T.length, panels: [] };
    if (sec.kind === "level2") info.matrix = data.Matrix;
    sec.info = info;
    specs.forEach((p, pi) => {
      const div = document.createElement("div");
      div.className = "panel";
      panels.appendChild(div);
      const nonNull = p.lines.map((l) => l.mean.filter((v) => v != null).length);
      const pinfo = { channel: p.name, nonNull: Math.max(0, ...nonNull), lines: nonNull, yRange: ranges[pi], xLabel: "time (UTC)", yLabel: p.yLabel, xTicks: [], yTicks: [] };
      info.panels.push(pinfo);
      if (!pinfo.nonNull || !ranges[pi]) {
        const el = document.createElement("p");
        el.className = "empty";
        el.textContent = p.empty;
        div.appendChild(el);
        return;
      }
      let xLabels = [], yLabels = [];
      const series = [{ label: "time (UTC)", value: (u, v) => (v == null ? "" : fullStr(v)) }];
      const bands = [];
      const cols = [data.T];
      p.lines.forEach((l) => {
        const k = series.length;
        series.push(
          { label: `${l.label} max`, stroke: l.color + "55", width: 1 },
          { label: `${l.label} min`, stroke: l.color + "55", width: 1 },
          {
            label: l.meanLabel || `${l.label} mean`, stroke: l.color, width: 1.5,
            value: l.note ? (u, v, si, idx) => (v == null ? "" : `${v.toFixed(4)} (${l.note(idx)})`) : undefined,
          },
        );
        bands.push({ series: [k, k + 1], fill: l.color + "33" });
        cols.push(l.max, l.min, l.mean);
      });
      const opts = {
        width, height: 240,
        // Room right of the plot for the half of the last time label.
        padding: [8, 40, 0, 0],
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        scales: {
          x: { time: true, range: () => [data.From, data.To] },
          y: { range: () => ranges[pi] },
        },
        series,
        bands,
        axes: [
          {
            font, labelFont: font, space: 90, label: pinfo.xLabel, labelSize: 18,
            grid: { stroke: "#0000001a" }, ticks: { stroke: "#00000040" },
            values: (u, splits, ai, space, incr) => { xLabels = [splits, xValues(u, splits, ai, space, incr)]; return xLabels[1]; },
          },
          {
            font, labelFont: font, space: 30, label: p.yLabel, labelSize: 18,
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
      sec.charts.push(new uPlot(opts, cols, div));
    });
    publishAll();
    const zoomed = sec.zoom ? " · zoomed: double-click a plot to return" : "";
    let bucket;
    if (sec.kind === "level2") {
      bucket = data.StepS === 300 ? "every 300 s output" : `buckets of ${stepStr(data.StepS)} of the 300 s outputs`;
      if (data.Matrix) bucket += ` · regional strain with matrix ${data.Matrix}`;
      if (data.Truncated) bucket += " · cut to the last 250,000 outputs (~2.4 y), the bound of /api/level2: choose a shorter range";
      if (data.MissingMatrix && data.MissingMatrix.length) bucket += ` · no matrix in station_metadata for version ${data.MissingMatrix.join(", ")}: those rows not corrected`;
      sec.el.querySelector(".l2title").textContent = data.Site;
      const sel = document.getElementById("l2matrix");
      if (sel) {
        const want = state.l2matrix;
        sel.textContent = "";
        for (const m of data.Matrices || []) sel.add(new Option(m, m));
        if (!sel.options.length) sel.add(new Option("none (no station metadata)", ""));
        sel.value = data.Matrix || "";
        if (want && want !== data.Matrix) sel.value = want;
      }
    } else {
      bucket = data.Source === "samples" && data.StepS === data.IntervalS
        ? "every sample"
        : `buckets of ${stepStr(data.StepS)} from ${data.Source}`;
    }
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
    let q, path;
    if (sec.kind === "level2") {
      path = "/api/level2";
      q = new URLSearchParams({ site: sec.site, points: "2000" });
      if (state.l2matrix) q.set("matrix", state.l2matrix);
    } else {
      path = "/api/series";
      q = new URLSearchParams({ site: sec.site, session: sec.session, unit: state.unit, points: "2000" });
    }
    if (sec.zoom) {
      q.set("from", sec.zoom[0]);
      q.set("to", sec.zoom[1]);
    } else if (state.range) {
      q.set("span", state.range);
    }
    const seq = ++sec.seq;
    try {
      const resp = await fetch(path + "?" + q, { cache: "no-store" });
      const body = resp.ok ? await resp.json() : await resp.text();
      if (seq !== sec.seq) return; // a newer request was made meanwhile
      if (!resp.ok) throw new Error(body.trim());
      sec.data = body;
      render(sec);
      sec.el.dataset.loaded = String(seq);
    } catch (e) {
      sec.el.querySelector(".range").textContent = `cannot load ${path}: ${e.message}`;
      sec.el.dataset.error = e.message;
    }
  }

  const sections = [...document.querySelectorAll("section.plot, section.level2")].map((el, i) => ({
    el, kind: el.classList.contains("level2") ? "level2" : "series",
    site: el.dataset.site, session: el.dataset.session, key: "gtsm-" + i, charts: [], zoom: null, seq: 0, data: null,
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

  // The controls start from the page's URL (?range=&yscale=&unit=, the
  // Level-2 section's l2site=&l2matrix=&l2show=, and from=&to= in UNIX ms to
  // open zoomed), and write their state back into it, so a view can be
  // bookmarked or shared.
  const params = new URLSearchParams(location.search);
  function saveURL() {
    const p = new URLSearchParams();
    for (const k of ["range", "yscale", "unit", "l2site", "l2matrix", "l2show"]) {
      const el = document.getElementById(k);
      if (el && state[k] && !(el.options.length && k !== "l2matrix" && state[k] === el.options[0].value)) p.set(k, state[k]);
    }
    history.replaceState(null, "", p.toString() ? "?" + p : location.pathname);
  }
  // What a control changes: which sections it concerns, and whether they
  // are drawn again from the data they have or fetched again.
  const effects = {
    range: { kinds: ["series", "level2"], fetch: true },
    yscale: { kinds: ["series", "level2"], fetch: false },
    unit: { kinds: ["series"], fetch: true },
    l2site: { kinds: ["level2"], fetch: true },
    l2matrix: { kinds: ["level2"], fetch: true },
    l2show: { kinds: ["level2"], fetch: false },
  };
  function bind(key) {
    const el = document.getElementById(key);
    if (!el) return;
    // l2matrix's options come with the data: its state is read from the URL.
    if (key === "l2matrix") state[key] = params.get(key) || "";
    else {
      if (params.has(key)) el.value = params.get(key);
      state[key] = el.value;
    }
    el.addEventListener("change", () => {
      state[key] = el.value;
      if (key === "l2site") state.l2matrix = ""; // matrices are per station
      saveURL();
      const fx = effects[key];
      sections.forEach((s) => {
        if (!fx.kinds.includes(s.kind)) return;
        if (key === "range" || key === "l2site") s.zoom = null;
        if (key === "l2site") s.site = el.value;
        if (!fx.fetch && s.data) render(s);
        else load(s);
      });
    });
  }
  Object.keys(effects).forEach(bind);
  for (const s of sections) if (s.kind === "level2" && state.l2site) s.site = state.l2site;

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
