/* Project page: upload the import file with a progress bar, then follow the import job live (no reload). */
(function () {
  "use strict";
  var form = document.getElementById("import-form"), box = document.getElementById("import-progress");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  var bar = box.querySelector('[data-role="progress"]'), phase = box.querySelector('[data-role="phase"]');
  var outcome = box.querySelector('[data-role="outcome"]'), badge = box.querySelector('[data-role="status"]');

  function show(pct) {
    bar.setAttribute("aria-valuenow", pct);
    bar.querySelector(".bar").style.width = pct + "%";
    bar.querySelector(".pct").textContent = pct + " %";
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var xhr = new XMLHttpRequest();
    box.hidden = false; outcome.textContent = ""; phase.textContent = "Uploading…"; show(0);
    xhr.upload.onprogress = function (ev) { if (ev.lengthComputable) show(Math.round(100 * ev.loaded / ev.total)); };
    xhr.onload = function () {
      var body = {}; try { body = JSON.parse(xhr.responseText); } catch (err) { /* an HTML error page */ }
      if (xhr.status !== 202) {
        phase.textContent = "Upload refused";
        var fields = body.error && body.error.details && body.error.details.field_errors;
        outcome.textContent = (fields && Object.values(fields)[0]) || (body.error && body.error.message) || ("Error " + xhr.status);
        outcome.className = "flash error";
        return;
      }
      form.reset();
      phase.innerHTML = 'Importing: <a href="' + body.url + '">job ' + body.jobId.slice(0, 8) + "</a>";
      show(0);
      box.dataset.jobId = body.jobId;
      box.dataset.refresh = "project-stats project-records project-recent";
      window.Conveyor.applyJob("job:progress", { jobId: body.jobId, state: "waiting", progress: 0 });
      window.Conveyor.replay(body.jobId);
    };
    xhr.onerror = function () { phase.textContent = "Upload failed: the connection was lost"; };
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.send(new FormData(form));
  });

  document.addEventListener("conveyor:job", function (e) {
    var d = e.detail.data || {};
    if (String(d.jobId) !== box.dataset.jobId) return;
    if (e.detail.event === "job:completed" && d.result) {
      var r = d.result;
      outcome.className = "flash success";
      outcome.textContent = "Imported " + r.recordsProcessed + " rows: " + r.recordsCreated + " created, " +
        r.recordsUpdated + " updated, " + r.recordsUnchanged + " unchanged, " + r.errors + " with errors.";
    } else if (e.detail.event === "job:failed") {
      outcome.className = "flash error";
      outcome.textContent = d.cancelled ? "The import was cancelled." : "The import failed: " + (d.error || "unknown error");
    }
  });
})();
