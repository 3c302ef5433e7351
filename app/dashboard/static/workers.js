/* Workers page: throughput chart (inline SVG) and live engine events over server-sent events. */
(function () {
  "use strict";
  var root = document.getElementById("workers-live"), svg = document.getElementById("throughput-chart");
  if (!root || !svg) return;
  var data = JSON.parse(document.getElementById("throughput-data").textContent);
  var NS = "http://www.w3.org/2000/svg", W = 620, H = 180, LEFT = 30, BOTTOM = 20;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function draw() {
    var title = svg.querySelector("title");
    while (svg.lastChild !== title) svg.removeChild(svg.lastChild);
    var n = data.minutes, top = Math.max(1, Math.max.apply(null, data.completed.concat(data.failed)));
    var slot = (W - LEFT) / n, plot = H - BOTTOM - 10;
    svg.appendChild(el("line", { x1: LEFT, y1: H - BOTTOM, x2: W, y2: H - BOTTOM, stroke: "#9aa5b1" }));
    svg.appendChild(el("text", { x: 0, y: 14 }, String(top)));
    svg.appendChild(el("text", { x: 0, y: H - BOTTOM }, "0"));
    svg.appendChild(el("text", { x: LEFT, y: H - 4 }, "-" + n + " min"));
    svg.appendChild(el("text", { x: W - 30, y: H - 4 }, "now"));
    for (var i = 0; i < n; i++) {
      var c = data.completed[i], f = data.failed[i], x = LEFT + i * slot + 1, w = Math.max(1, slot / 2 - 1);
      var hc = plot * c / top, hf = plot * f / top;
      svg.appendChild(el("rect", { x: x, y: H - BOTTOM - hc, width: w, height: hc, fill: "#16a34a" }));
      svg.appendChild(el("rect", { x: x + w, y: H - BOTTOM - hf, width: w, height: hf, fill: "#dc2626" }));
    }
    var done = data.completed.reduce(function (a, b) { return a + b; }, 0);
    var failed = data.failed.reduce(function (a, b) { return a + b; }, 0);
    title.textContent = "Last " + n + " minutes: " + done + " completed, " + failed + " failed; this minute " +
      data.completed[n - 1] + " completed, " + data.failed[n - 1] + " failed";
    svg.dataset.completed = done; svg.dataset.failed = failed;
  }
  function roll() { // move the window on when a new minute starts
    var now = Math.floor(Date.now() / 60000) * 60000;
    while (data.end < now) {
      data.completed.shift(); data.completed.push(0); data.failed.shift(); data.failed.push(0);
      data.end += 60000;
    }
  }

  // An engine event is a wake-up: the page re-reads its tables and the chart's counts from the server
  // (the database is the truth; a Redis channel may also carry other deployments' events).
  var SECTIONS = ["workers-types", "workers-incidents", "workers-processes", "workers-recent", "workers-instances"];
  var timer = null, seen = 0;
  function refreshSoon() {
    if (timer) return;
    timer = setTimeout(function () {
      timer = null;
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          SECTIONS.forEach(function (id) {
            var fresh = doc.getElementById(id), old = document.getElementById(id);
            if (fresh && old) old.replaceWith(fresh);
          });
          var fresh = doc.getElementById("throughput-data");
          if (fresh) { data = JSON.parse(fresh.textContent); roll(); draw(); }
          root.dataset.refreshes = String(++seen);
        });
    }, 700);
  }

  if (window.EventSource) {
    var source = new EventSource(root.dataset.events);
    source.onopen = function () { root.dataset.live = "on"; };
    source.onerror = function () { root.dataset.live = "off"; };
    source.addEventListener("engine", refreshSoon);
    window.addEventListener("pagehide", function () { source.close(); });
  }
  setInterval(function () { roll(); draw(); }, 10000);
  roll(); draw();
})();
