// Draws the sequence diagram from the run's data (the JSON block above) as SVG, and
// shows a step's details when it is clicked or named in the address (#step-N). Every
// text from the run goes into text nodes, never into markup.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("run-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var LANE_W = 140, ROW_H = 20, LEFT = 80, TOP = 56;
  var laneX = function (i) { return LEFT + i * LANE_W + LANE_W / 2; };
  var rowY = function (i) { return TOP + i * ROW_H + ROW_H / 2; };
  var width = LEFT + data.lanes.length * LANE_W + 20;
  var height = TOP + data.rows.length * ROW_H + 20;

  function el(name, attrs, parent, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function cls(text) { return text.replace(/ /g, "-"); }

  var svg = el("svg", { id: "sequence", width: width, height: height,
    viewBox: "0 0 " + width + " " + height });

  // Groups and lanes.
  data.groups.forEach(function (g, gi) {
    var lanes = [];
    data.lanes.forEach(function (l, i) { if (l.group === gi) { lanes.push(i); } });
    var x0 = LEFT + lanes[0] * LANE_W + 3, x1 = LEFT + (lanes[lanes.length - 1] + 1) * LANE_W - 3;
    var box = el("g", { "class": "group", "data-kind": g.kind }, svg);
    el("rect", { "class": "group-box " + cls(g.kind), x: x0, y: 2, width: x1 - x0,
      height: height - 4, rx: 4 }, box);
    el("text", { "class": "group-name", x: x0 + 6, y: 18 },
      box, g.name ? g.kind + " " + g.name : g.kind);
  });
  data.lanes.forEach(function (l, i) {
    var x = laneX(i);
    el("line", { "class": "lifeline" + (l.volume ? " volume" : ""), x1: x, x2: x,
      y1: TOP - 10, y2: height - 10 }, svg);
    var attrs = { "class": "lane-name" + (l.volume ? " volume" : ""), "data-lane": i,
      x: x, y: 40, "text-anchor": "middle" };
    // A long name is squeezed into its lane rather than over its neighbours'.
    if (l.name.length > 22) { attrs.textLength = LANE_W - 8; attrs.lengthAdjust = "spacingAndGlyphs"; }
    var t = el("text", attrs, svg, l.name);
    el("title", {}, t, l.name);
  });

  // Windows under the rows.
  data.windows.forEach(function (w) {
    var y0 = rowY(w.from_row) - ROW_H / 2, y1 = rowY(w.to_row) + ROW_H / 2;
    var r = el("rect", { "class": "window " + w.kind + (w.open ? " open" : ""),
      "data-lane": w.lane, x: laneX(w.lane) - 10, y: y0, width: 20, height: y1 - y0 }, svg);
    el("title", {}, r, w.kind + " window on " + data.lanes[w.lane].name +
      (w.open ? " (never closed)" : ""));
  });

  // Rows: a hit area each, then the arrow or the event.
  var hits = [];
  data.rows.forEach(function (row, i) {
    var y = rowY(i);
    var hit = el("rect", { "class": "row-hit", "data-row": i, x: 0, y: y - ROW_H / 2,
      width: width, height: ROW_H }, svg);
    hit.addEventListener("click", function () { select(i, false); });
    hits.push(hit);
    el("text", { "class": "time", x: 4, y: y + 4 }, svg, (row.time_us / 1e6).toFixed(3) + " s");
    var fail = row.failure !== null;
    var label = row.event + (fail ? " " + row.failure : "");
    var x = laneX(row.lane);
    if (row.from !== null) {
      var g = el("g", { "class": "arrow" + (fail ? " fail" : ""), "data-step": row.first }, svg);
      var xf = laneX(row.from), dir = x > xf ? 1 : -1;
      el("line", { x1: xf, y1: y, x2: x - dir * 6, y2: y }, g);
      el("polygon", { "class": "head", points: (x) + "," + y + " " + (x - dir * 7) + "," +
        (y - 4) + " " + (x - dir * 7) + "," + (y + 4) }, g);
      el("text", { x: (x + xf) / 2, y: y - 3, "text-anchor": "middle" }, g, label);
      g.addEventListener("click", function () { select(i, false); });
    } else {
      var folded = row.last !== row.first;
      var e = el("g", { "class": "event" + (folded ? " folded" : "") + (fail ? " fail" : ""),
        "data-step": row.first }, svg);
      el("circle", { cx: x, cy: y, r: folded ? 2.5 : 4 }, e);
      el("text", { x: x + 8, y: y + 4 }, e, label);
      e.addEventListener("click", function () { select(i, false); });
    }
    if (fail) {
      var f = el("g", { "class": "failure", "data-code": row.failure, "data-step": row.first }, svg);
      el("circle", { cx: x, cy: y, r: 5 }, f);
      el("title", {}, f, "failure " + row.failure + " at step " + row.first);
    }
  });

  // Checkpoints and snapshots on their volume.
  data.marks.forEach(function (m) {
    var x = laneX(m.lane), y = rowY(m.row);
    var g = el("g", { "class": "mark " + cls(m.kind), "data-lane": m.lane }, svg);
    el("rect", { x: x - 5, y: y - 5, width: 10, height: 10,
      transform: "rotate(45 " + x + " " + y + ")" }, g);
    el("text", { x: x + 9, y: y + 12 }, g, m.kind);
    el("title", {}, g, m.kind + ": " + m.label);
  });

  document.getElementById("diagram").appendChild(svg);

  // The details panel.
  var panel = document.getElementById("details");
  var selected = null;
  function item(dl, name, value, id) {
    var dt = document.createElement("dt"); dt.textContent = name; dl.appendChild(dt);
    var dd = document.createElement("dd"); dd.textContent = value;
    if (id) { dd.id = id; }
    dl.appendChild(dd);
  }
  function select(i, scroll) {
    var row = data.rows[i];
    if (selected !== null) { hits[selected].setAttribute("class", "row-hit"); }
    selected = i;
    hits[i].setAttribute("class", "row-hit selected");
    panel.textContent = "";
    var h = document.createElement("h2");
    h.textContent = row.first === row.last ? "Step " + row.first
      : "Steps " + row.first + "\u2013" + row.last;
    panel.appendChild(h);
    var dl = document.createElement("dl");
    dl.id = "step-details";
    dl.setAttribute("data-step", row.first);
    item(dl, "virtual time", (row.time_us / 1e6).toFixed(6) + " s");
    if (row.sender) { item(dl, "from", row.sender); }
    item(dl, row.sender ? "to" : "actor", data.lanes[row.lane].name);
    item(dl, "event", row.event);
    if (row.failure !== null) { item(dl, "failure", row.failure, "failure-code"); }
    item(dl, "details", JSON.stringify(row.details, null, 1));
    item(dl, "world digest after", row.digest, "world-digest");
    panel.appendChild(dl);
    if (scroll) { hits[i].scrollIntoView({ block: "center" }); }
  }
  function fromHash() {
    var m = /^#step-(\d+)$/.exec(location.hash);
    if (!m) { return; }
    var n = Number(m[1]);
    for (var i = 0; i < data.rows.length; i++) {
      if (data.rows[i].first <= n && n <= data.rows[i].last) { select(i, true); return; }
    }
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.setAttribute("data-drawn", data.rows.length);
})();
