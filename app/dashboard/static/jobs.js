/* Jobs page: the "all matching" buttons switch the bulk form's scope; note activity of jobs not shown. */
(function () {
  "use strict";
  var scope = document.getElementById("bulk-scope");
  document.querySelectorAll("button[data-scope]").forEach(function (b) {
    b.addEventListener("click", function () { scope.value = b.dataset.scope; });
  });
  document.querySelectorAll("#bulk-form button:not([data-scope])").forEach(function (b) {
    b.addEventListener("click", function () { if (scope) scope.value = "selected"; });
  });
  document.addEventListener("conveyor:job", function (e) {
    var d = e.detail.data || {}, id = String(d.jobId || d.id || "");
    if (id && !document.querySelector('[data-job-id="' + CSS.escape(id) + '"]')) {
      var note = document.getElementById("new-activity");
      if (note) note.hidden = false;
    }
  });
})();
