// The operator console: countdowns tick locally at the product clock's speed; the activation panel
// and its chart are fetched again every few seconds. Our own code, no library, nothing from a CDN.
(function () {
  "use strict";
  const root = document.getElementById("console");
  if (!root) return;
  const speed = parseFloat(root.dataset.speed) || 1;
  const refreshMs = parseInt(root.dataset.refreshMs, 10) || 3000;
  const SVG = "http://www.w3.org/2000/svg";
  let loadedAt = Date.now();

  function tick() {
    const elapsed = (Date.now() - loadedAt) / 1000 * speed;
    document.querySelectorAll(".tick-down, .tick-up").forEach(function (el) {
      const base = parseFloat(el.dataset.s);
      const s = el.classList.contains("tick-up") ? base + elapsed : Math.max(0, base - elapsed);
      el.textContent = Math.round(s) + " s";
    });
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function draw(svg, data) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const W = 640, H = 300, L = 56, R = 12, T = 12, B = 36;
    const t = data.at.map(function (s) { return Date.parse(s); });
    const fig = svg.parentNode.querySelector(".points");
    if (fig) fig.textContent = data.sessions + " sessions, " + t.length + " points";
    if (t.length < 2) return;
    const values = data.power_kw.concat(data.min_8a_kw, data.target_kw === null ? [] : [data.target_kw]);
    const ymax = Math.max(1, Math.max.apply(null, values)) * 1.1;
    const t0 = t[0], t1 = Math.max(t[t.length - 1], Date.parse(data.ends_at));
    const x = function (v) { return L + (v - t0) / (t1 - t0) * (W - L - R); };
    const y = function (v) { return T + (1 - v / ymax) * (H - T - B); };
    for (let i = 0; i <= 4; i++) {
      const v = ymax / 1.1 * i / 4;
      svg.appendChild(el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid"}));
      svg.appendChild(el("text", {x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end"}, v.toFixed(0)));
    }
    svg.appendChild(el("text", {x: 4, y: T + 10, class: "axis"}, "kW"));
    [["relayed_at", "relay", "start"], ["ends_at", "end", "end"]].forEach(function (m) {
      const xm = x(Date.parse(data[m[0]]));
      svg.appendChild(el("line", {x1: xm, x2: xm, y1: T, y2: H - B, class: "marker"}));
      svg.appendChild(el("text", {x: m[2] === "end" ? xm - 3 : xm + 3, y: H - B + 14, class: "axis",
                                  "text-anchor": m[2]}, m[1]));
    });
    const first = new Date(t0), last = new Date(t1);
    svg.appendChild(el("text", {x: L, y: H - 4, class: "axis"}, first.toISOString().slice(11, 19) + " UTC"));
    svg.appendChild(el("text", {x: W - R, y: H - 4, class: "axis", "text-anchor": "end"},
                       last.toISOString().slice(11, 19) + " UTC"));
    function line(series, cls) {
      const pts = series.map(function (v, i) { return x(t[i]).toFixed(1) + "," + y(v).toFixed(1); });
      svg.appendChild(el("polyline", {points: pts.join(" "), class: cls}));
    }
    line(data.min_8a_kw, "min8");
    line(data.power_kw, "power");
    if (data.target_kw !== null) {
      const xr = x(Date.parse(data.relayed_at)), xe = x(Date.parse(data.ends_at));
      svg.appendChild(el("line", {x1: xr, x2: xe, y1: y(data.target_kw), y2: y(data.target_kw), class: "target"}));
    }
  }

  let last = {url: null, data: null};  // redrawn at once when the panel is replaced, so the chart never blinks

  function show(data) {
    const svg = document.getElementById("power-chart");
    if (!svg || !data) return;
    draw(svg, data);
    svg.dataset.points = data.at.length;
    svg.dataset.last = data.at[data.at.length - 1];
  }

  function loadChart() {
    const box = document.querySelector(".activation");
    if (!box) return;
    const url = box.dataset.chartUrl;
    if (last.url === url) show(last.data);
    fetch(url, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { last = {url: url, data: data}; show(data); } });
  }

  function typing() {
    return Array.prototype.some.call(document.querySelectorAll("form.veto input[name=reason]"), function (i) {
      return i.value !== "" || i === document.activeElement;
    });
  }

  function refresh() {
    fetch(root.dataset.panelUrl, {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        document.getElementById("activation-panel").innerHTML = html;
        loadedAt = Date.now();
        document.querySelectorAll(".console-pending .tick-down, .console-pending .tick-up").forEach(function (e) {
          e.dataset.s = e.textContent.replace(" s", "");
        });
        const now = document.getElementById("pending-now").dataset.ids;
        if (now !== root.dataset.pendingIds && !typing()) window.location.reload();  // a signal came or went
        loadChart();
      });
  }

  setInterval(tick, 1000);
  setInterval(refresh, refreshMs);
  loadChart();
})();
