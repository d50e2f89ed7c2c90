// The pipelines page: Run now, Pause and Resume post to the dashboard's action endpoints with the token
// typed into the page (as a Bearer token; it is kept nowhere else), then refresh the rows from
// /api/pipelines. A refusal (no token, a wrong one) is shown as the server words it.
// Every value goes in as text (textContent), never as HTML.
(function () {
  "use strict";
  var table = document.getElementById("pipelines");
  var message = document.getElementById("action-message");
  if (!table || !message) return;

  function say(text, failed, runId) {
    message.textContent = text;
    message.className = failed ? "refused" : "done";
    if (runId) {
      var link = document.createElement("a");
      link.href = "/runs/" + encodeURIComponent(runId);
      link.id = "started-run";
      link.textContent = runId;
      message.appendChild(document.createTextNode(" "));
      message.appendChild(link);
    }
  }

  function refresh() {
    return fetch("/api/pipelines", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        data.pipelines.forEach(function (p) {
          var tr = Array.prototype.find.call(table.querySelectorAll("tr[data-pipeline]"), function (row) {
            return row.dataset.pipeline === p.name;
          });
          if (!tr) return;
          var status = tr.querySelector("td.st .status");
          status.textContent = p.status;
          status.className = "status s-" + p.status.replace(/ /g, "-");
          var next = tr.querySelector("td.next");
          next.textContent = p.next;
          next.title = p.next_run || "";
          tr.querySelector("button.pause").hidden = !p.can_pause;
          tr.querySelector("button.resume").hidden = !p.can_resume;
          var last = tr.querySelector("td.last");
          while (last.firstChild) last.removeChild(last.firstChild);
          p.runs.forEach(function (r) {
            var a = document.createElement("a");
            a.className = "status s-" + r.status;
            a.href = "/runs/" + encodeURIComponent(r.run_id);
            a.title = r.run_id + ": " + r.status + ", " + r.started + (r.duration ? ", " + r.duration : "");
            a.textContent = r.started.slice(5, 16);
            last.appendChild(a);
            last.appendChild(document.createTextNode(" "));
          });
        });
      });
  }

  table.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) return;
    var token = document.getElementById("token").value.trim();
    var headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    button.disabled = true;
    var name = button.closest("tr[data-pipeline]").dataset.pipeline;
    var url = "/api/pipelines/" + encodeURIComponent(name) + "/" + button.dataset.action;
    fetch(url, { method: "POST", headers: headers, cache: "no-store" })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (!result.ok) {
          say(result.body.error || "Refused.", true);
          return null;
        }
        if (result.body.run_id) {
          say("Started " + result.body.pipeline + ": run", false, result.body.run_id);
          return refresh();
        }
        say((result.body.status === "paused" ? "Paused " : "Resumed ") + result.body.pipeline + ".", false);
        return refresh();
      })
      .catch(function () { say("The dashboard did not answer.", true); })
      .then(function () { button.disabled = false; });
  });
})();
