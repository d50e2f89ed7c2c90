// The run page: while the run is in progress, poll /api/runs/{id} every second and update the
// timeline in place (rows change status, bars grow, new steps appear). When the run ends the
// page reloads once, to show its errors and test results as the server renders them.
// Every value goes in as text (textContent), never as HTML.
(function () {
  "use strict";
  var page = document.getElementById("run-page");
  if (!page || page.dataset.status !== "running") return;
  var runId = page.dataset.runId;
  var body = document.querySelector("#timeline tbody");
  var SVG = "http://www.w3.org/2000/svg";
  var CELLS = ["rel", "step", "env", "st", "num rows", "num dur", "chart"];

  function setStatus(span, status) {
    span.textContent = status;
    span.className = "status s-" + status;
  }

  function newRow(e) {
    var tr = document.createElement("tr");
    tr.dataset.eventId = String(e.id);
    CELLS.forEach(function (name) {
      var td = document.createElement("td");
      td.className = name;
      tr.appendChild(td);
    });
    var span = document.createElement("span");
    tr.children[3].appendChild(span);
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "bar");
    svg.setAttribute("viewBox", "0 0 1000 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    var rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("y", "0");
    rect.setAttribute("height", "10");
    svg.appendChild(rect);
    tr.children[6].appendChild(svg);
    return tr;
  }

  function fill(tr, e) {
    tr.className = "ev s-" + e.status;
    tr.children[0].textContent = e.relation;
    tr.children[1].textContent = e.step;
    tr.children[2].textContent = e.environment;
    setStatus(tr.children[3].firstChild, e.status);
    tr.children[4].textContent = e.rows_text;
    tr.children[5].textContent = e.duration;
    tr.children[5].title = "started " + e.offset + " into the run";
    var rect = tr.querySelector("rect");
    rect.setAttribute("class", "b-" + e.status);
    rect.setAttribute("x", String(e.x));
    rect.setAttribute("width", String(e.w));
  }

  function update(data) {
    var rows = {};
    Array.prototype.forEach.call(body.querySelectorAll("tr[data-event-id]"), function (tr) {
      rows[tr.dataset.eventId] = tr;
    });
    var placeholder = body.querySelector("tr.none");
    if (placeholder && data.timeline.length) placeholder.remove();
    data.timeline.forEach(function (e) {
      var tr = rows[String(e.id)];
      if (!tr) {
        tr = newRow(e);
        body.appendChild(tr);
      }
      fill(tr, e);
    });
    var labels = document.querySelectorAll("#axis span");
    data.axis.forEach(function (label, i) { if (labels[i]) labels[i].textContent = label; });
    document.getElementById("run-duration").textContent = data.run.duration;
    setStatus(document.getElementById("run-status"), data.run.status);
    page.dataset.status = data.run.status;
  }

  function poll() {
    fetch("/api/runs/" + encodeURIComponent(runId), { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) {
          update(data);
          if (data.run.status !== "running") {
            window.location.reload();
            return;
          }
        }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 2000); });
  }

  window.setTimeout(poll, 1000);
})();
