// The pipelines page: Pause and Resume post to the dashboard's action endpoints with the token
// typed into the page (as a Bearer token; it is kept nowhere else), then refresh the rows from
// /api/pipelines. A refusal (no token, a wrong one) is shown as the server words it.
// Every value goes in as text (textContent), never as HTML.
(function () {
  "use strict";
  var table = document.getElementById("pipelines");
  var message = document.getElementById("action-message");
  if (!table || !message) return;

  function say(text, failed) {
    message.textContent = text;
    message.className = failed ? "refused" : "done";
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
        say((result.body.status === "paused" ? "Paused " : "Resumed ") + result.body.pipeline + ".", false);
        return refresh();
      })
      .catch(function () { say("The dashboard did not answer.", true); })
      .then(function () { button.disabled = false; });
  });
})();
