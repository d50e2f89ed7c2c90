// The lineage page: draws the focused relation's neighbourhood from /api/lineage as SVG (the
// server has placed every node: columns by layer, grouped by schema), refocuses on a click,
// and searches names through /api/relations as one types. Only the neighbourhood is ever
// drawn, however large the project. Every value goes in as text (textContent), never as HTML.
// When a graph is drawn, #graph gets data-focus and window.__lineageDrawnAt (ms since the
// page's navigation began): what the tests and the time-to-interactive measure wait for.
(function () {
  "use strict";
  var page = document.getElementById("lineage-page");
  var svg = document.getElementById("graph");
  if (!page || !svg || !page.dataset.focus) return;
  var SVG = "http://www.w3.org/2000/svg";
  var state = { focus: page.dataset.focus, up: page.dataset.up, down: page.dataset.down };
  var search = document.getElementById("search");
  var results = document.getElementById("results");
  var summary = document.getElementById("lineage-summary");
  var drawn = 0;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, String(attrs[key])); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function query() {
    return "focus=" + encodeURIComponent(state.focus) + "&up=" + state.up + "&down=" + state.down;
  }

  function draw(g) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("width", g.width);
    svg.setAttribute("height", g.height);
    svg.setAttribute("viewBox", "0 0 " + g.width + " " + g.height);
    var at = {};
    g.nodes.forEach(function (n) { at[n.name] = n; });
    var edges = el("g", { class: "edges" }, svg);
    g.edges.forEach(function (e) {
      var a = at[e[0]], b = at[e[1]];
      var x1 = a.x + g.node_w, y1 = a.y + g.node_h / 2, x2 = b.x, y2 = b.y + g.node_h / 2;
      var bend = Math.max(30, (x2 - x1) / 2);
      var near = e[0] === g.focus || e[1] === g.focus;
      el("path", {
        class: near ? "edge near" : "edge",
        d: "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " + (x2 - bend) + "," + y2 + " " + x2 + "," + y2,
      }, edges);
    });
    g.groups.forEach(function (grp) {
      el("text", { class: "group", x: grp.x + 2, y: grp.y }, svg).textContent = grp.schema;
    });
    g.nodes.forEach(function (n) {
      var box = el("g", { class: "node s-" + n.status + (n.name === g.focus ? " focus" : "") }, svg);
      box.dataset.name = n.name;
      el("rect", { x: n.x, y: n.y, width: g.node_w, height: g.node_h }, box);
      el("text", { x: n.x + 8, y: n.y + g.node_h / 2 }, box).textContent = n.label;
      if (n.hidden_up) el("text", { class: "more", x: n.x - 4, y: n.y + g.node_h / 2, "text-anchor": "end" }, box).textContent = "+" + n.hidden_up;
      if (n.hidden_down) el("text", { class: "more", x: n.x + g.node_w + 4, y: n.y + g.node_h / 2 }, box).textContent = "+" + n.hidden_down;
      var tip = n.name + " (" + n.kind + ")";
      if (n.last) tip += "\nnewest event: " + n.last.step + " " + n.last.status + " at " + n.last.at + " in run " + n.last.run_id;
      else tip += "\nno event recorded yet";
      el("title", {}, box).textContent = tip;
    });
    document.getElementById("focus-name").textContent = g.focus;
    document.getElementById("relation-link").setAttribute("href", "/relations/" + encodeURIComponent(g.focus));
    document.title = "Lineage of " + g.focus + document.title.slice(document.title.indexOf(" · "));
    summary.textContent = g.upstream + " upstream and " + g.downstream + " downstream shown (" +
      g.up + " and " + g.down + " steps)" + (g.capped ? ", the nearest only: narrow the depth or refocus" : "") +
      " · " + g.relations.toLocaleString("en") + " relations in the project";
    var focusNode = svg.querySelector("g.node.focus rect");
    if (focusNode && focusNode.scrollIntoView && drawn > 0) focusNode.scrollIntoView({ block: "nearest", inline: "center" });
    drawn += 1;
    svg.dataset.focus = g.focus;
    svg.dataset.drawn = String(drawn);
    window.__lineageDrawnAt = performance.now();
  }

  var shown = 0;
  function show(push) {
    var mine = ++shown;
    return fetch("/api/lineage?" + query(), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json().then(function (body) { return { ok: response.ok, body: body }; }); })
      .then(function (result) {
        if (mine !== shown) return; // a later focus's answer wins, whatever order they arrive in
        if (!result.ok) {
          summary.textContent = result.body.error || "This relation cannot be shown.";
          return;
        }
        draw(result.body);
        if (push) history.pushState(state, "", "/lineage?" + query());
      });
  }

  function focusOn(name) {
    state.focus = name;
    search.value = name;
    results.hidden = true;
    show(true);
  }

  svg.addEventListener("click", function (event) {
    var node = event.target.closest("g.node");
    if (node && node.dataset.name !== state.focus) focusOn(node.dataset.name);
  });

  ["up", "down"].forEach(function (key) {
    document.getElementById(key).addEventListener("change", function (event) {
      state[key] = event.target.value;
      show(true);
    });
  });

  var pending = null;
  var asked = 0;
  function find() {
    var q = search.value.trim();
    var mine = ++asked;
    fetch("/api/relations?limit=50&q=" + encodeURIComponent(q), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (mine !== asked) return; // a later keystroke's answer wins
        while (results.firstChild) results.removeChild(results.firstChild);
        data.relations.forEach(function (r) {
          var li = document.createElement("li");
          var button = document.createElement("button");
          button.type = "button";
          button.dataset.name = r.name;
          button.textContent = r.name;
          li.appendChild(button);
          results.appendChild(li);
        });
        var note = document.createElement("li");
        note.className = "more";
        note.textContent = data.total > data.relations.length
          ? data.relations.length + " of " + data.total.toLocaleString("en") + " matches: type more to narrow"
          : (data.total ? data.total + (data.total === 1 ? " match" : " matches") : "No relation matches.");
        results.appendChild(note);
        results.hidden = false;
      });
  }
  search.addEventListener("input", function () {
    window.clearTimeout(pending);
    pending = window.setTimeout(find, 120);
  });
  results.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-name]");
    if (button) focusOn(button.dataset.name);
  });
  document.getElementById("lineage-controls").addEventListener("submit", function (event) {
    // Enter in the search box: the first match, or the name as typed
    event.preventDefault();
    var first = results.hidden ? null : results.querySelector("button[data-name]");
    focusOn(first ? first.dataset.name : search.value.trim());
  });
  window.addEventListener("popstate", function (event) {
    if (!event.state) return;
    state = event.state;
    search.value = state.focus;
    show(false);
  });
  history.replaceState(state, "", window.location.href);
  show(false);
})();
