/* Conveyor dashboard: live job updates over the WebSocket (/ws), plus small form helpers. No build step. */
(function () {
  "use strict";
  var meta = function (name) { var m = document.querySelector('meta[name="' + name + '"]'); return m ? m.content : ""; };
  var statusEl = document.getElementById("live-status");
  var FINISHED = ["completed", "failed", "cancelled"];

  function norm(s) { return String(s || "").toLowerCase().replace(/\s+/g, "_"); }
  function say(state, text) { if (statusEl) { statusEl.dataset.state = state; statusEl.textContent = text; } }

  function jobId(d) { return String(d.jobId || d.job_id || d.id || (d.job && (d.job.id || d.job.key)) || ""); }
  // The socket speaks the notifications spec's states; the pages speak the project jobs' statuses.
  var STATES = { waiting: "Queued", delayed: "Queued", active: "Running", completed: "Completed", failed: "Failed" };
  function statusOf(event, d) {
    if (d.cancelled) return "Cancelled";
    if (d.state && STATES[d.state]) return STATES[d.state];
    if (d.status) return d.status;
    if (d.job && d.job.status) return d.job.status;
    return { "job:completed": "Completed", "job:failed": "Failed", "job:progress": "Running",
             "job:cancelled": "Cancelled", "job:started": "Running" }[event] || "";
  }
  function progressOf(event, d) {
    var p = d.progress !== undefined ? d.progress : (d.job && d.job.progress);
    if ((p === undefined || p === null) && event === "job:completed") p = 100;
    return p === undefined || p === null ? null : Math.max(0, Math.min(100, Math.round(Number(p))));
  }
  var CLASS = { queued: "queued", running: "running", completed: "completed", failed: "failed", cancelled: "cancelled", canceled: "cancelled" };

  // The newest frame of every job, for elements added after it arrived (a just-started import).
  var latest = {};
  function replay(id) { if (latest[id]) applyJob(latest[id][0], latest[id][1]); }

  function applyJob(event, d, live) {
    var id = jobId(d); if (!id) return;
    if (live) latest[id] = [event, d];
    var status = statusOf(event, d), pct = progressOf(event, d);
    document.querySelectorAll('[data-job-id="' + CSS.escape(id) + '"]').forEach(function (el) {
      if (pct !== null) el.querySelectorAll('[data-role="progress"]').forEach(function (bar) {
        var current = Number(bar.getAttribute("aria-valuenow") || 0);
        if (pct < current && norm(status) === "running") return; // a late frame must not move the bar back
        bar.setAttribute("aria-valuenow", pct);
        bar.querySelector(".bar").style.width = pct + "%";
        bar.querySelector(".pct").textContent = pct + " %";
      });
      if (status) {
        el.dataset.status = norm(status);
        el.querySelectorAll('[data-role="status"]').forEach(function (b) {
          b.textContent = status; b.className = "badge " + (CLASS[norm(status)] || "queued");
        });
        el.querySelectorAll("[data-show-when]").forEach(function (x) {
          x.hidden = x.dataset.showWhen.split(" ").indexOf(norm(status)) < 0;
        });
      }
      if (FINISHED.indexOf(norm(status)) >= 0 && el.dataset.refresh) refresh(el.dataset.refresh);
    });
    document.dispatchEvent(new CustomEvent("conveyor:job", { detail: { event: event, data: d } }));
  }

  // Re-read a part of this page (a job's result, a project's records) once a job has finished.
  var pending = {};
  function refresh(ids) {
    if (pending[ids]) return;
    pending[ids] = setTimeout(function () {
      delete pending[ids];
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          ids.split(" ").forEach(function (id) {
            var fresh = doc.getElementById(id), old = document.getElementById(id);
            if (fresh && old) old.replaceWith(fresh);
          });
        });
    }, 250);
  }

  var token = meta("ws-token"), socket = null, attempts = 0, lastEventId = meta("ws-last-event") || null;
  function freshToken() {
    return fetch("/dashboard/socket-token", { method: "POST", credentials: "same-origin",
      headers: { "X-CSRFToken": meta("csrf-token"), Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error("signed out"); return r.json(); })
      .then(function (j) { token = j.token; return token; });
  }
  function connect() {
    if (!window.WebSocket || !token) { say("offline", "Live updates unavailable"); return; }
    socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    socket.onopen = function () { 
      var auth = { token: token };
      // The server replays what happened since the page was rendered (or since the last frame seen).
      if (lastEventId) auth.last_event_id = lastEventId;
      socket.send(JSON.stringify({ event: "auth", data: auth })); };
    socket.onmessage = function (m) {
      var msg; try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.event === "ready") { attempts = 0; if (!lastEventId && msg.data) lastEventId = msg.data.lastEventId; say("online", "Live"); document.dispatchEvent(new CustomEvent("conveyor:ready")); return; }
      if (msg.event === "ping") { socket.send(JSON.stringify({ event: "pong" })); return; }
      if (msg.id) lastEventId = msg.id;
      if (/^job:(progress|completed|failed)$/.test(msg.event || "")) applyJob(msg.event, msg.data || {}, true);
      else if (msg.event) document.dispatchEvent(new CustomEvent("conveyor:event", { detail: msg }));
    };
    socket.onclose = function () {
      say("offline", "Live updates: reconnecting…");
      var wait = Math.min(30000, 500 * Math.pow(2, attempts++));
      setTimeout(function () { freshToken().then(connect, function () { say("offline", "Signed out"); }); }, wait);
    };
  }
  connect();

  // Confirm destructive actions; select-all boxes for bulk actions.
  document.addEventListener("submit", function (e) {
    var form = e.target, question = form.dataset.confirm;
    var submitter = e.submitter;
    if (submitter && submitter.dataset.confirm) question = submitter.dataset.confirm;
    if (question && !window.confirm(question)) e.preventDefault();
  });
  document.addEventListener("change", function (e) {
    var box = e.target;
    if (box.dataset && box.dataset.selectAll) {
      document.querySelectorAll('input[type=checkbox][name="' + box.dataset.selectAll + '"]').forEach(function (c) { c.checked = box.checked; });
    }
  });
  window.Conveyor = { applyJob: applyJob, refresh: refresh, replay: replay };
})();
