"""The report page's style sheet and script, inlined into every page (it loads nothing).

The script reads the page's JSON data block and does three things: shows a selected design's
idea, analysis, verification, code and diff; sorts tables by a clicked header; switches between
runs. It writes text with ``textContent`` only, so nothing from a run is ever parsed as HTML.
"""

from __future__ import annotations

STYLE = """
:root{--fg:#1d232a;--muted:#66707a;--line:#d9dee3;--bg:#fff;--soft:#f4f6f8;--accent:#1f6feb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
header.top{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--soft)}
header.top h1{margin:0;font-size:20px}
header.top p{margin:2px 0 0;color:var(--muted)}
nav.tabs{display:flex;gap:6px;flex-wrap:wrap;margin-top:10px}
nav.tabs button{border:1px solid var(--line);background:#fff;border-radius:6px;padding:4px 10px;
cursor:pointer;font:inherit}
nav.tabs button.active{border-color:var(--accent);color:var(--accent);font-weight:600}
main{padding:8px 24px 40px;max-width:1500px}
section.block{margin:22px 0}
h2{font-size:17px;margin:0 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:14px;margin:12px 0 6px}
.muted{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:4px 18px}
.kv b{display:inline-block;min-width:118px;color:var(--muted);font-weight:500}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:var(--soft);position:sticky;top:0}
th[data-sort]{cursor:pointer;user-select:none}
th[data-sort]:after{content:" \\2195";color:#aab}
th.asc:after{content:" \\2191"}th.desc:after{content:" \\2193"}
td.l,th.l{text-align:left}
.scroll{overflow:auto;max-height:560px;border:1px solid var(--line);border-radius:6px}
tr[data-design]{cursor:pointer}
tr[data-design]:hover{background:#eef4ff}
tr.selected{background:#dbe8ff!important}
.sig{font-weight:600}
.neg{color:#b42318}.pos{color:#067647}
.lineage{display:grid;grid-template-columns:minmax(320px,1fr) minmax(380px,1.25fr);gap:14px;
align-items:start}
@media (max-width:1000px){.lineage{grid-template-columns:1fr}}
.details{border:1px solid var(--line);border-radius:6px;padding:10px 12px;min-height:200px;
max-height:760px;overflow:auto}
.details h3:first-child{margin-top:0}
pre{background:var(--soft);padding:8px;border-radius:4px;overflow:auto;font-size:12px;
line-height:1.35;max-height:420px;margin:4px 0}
pre .add{background:#e6ffec;display:block}pre .del{background:#ffebe9;display:block}
pre .hunk{color:#8250df;display:block}
dl.tree{margin:2px 0}dl.tree dt{font-weight:600;color:var(--muted)}dl.tree dd{margin:0 0 4px 14px}
ul.plain{margin:2px 0;padding-left:18px}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:var(--soft);
border:1px solid var(--line)}
.badge.ok{background:#e6ffec;border-color:#abefc6}.badge.bad{background:#ffebe9;border-color:#ffcdc7}
svg text{font-size:11px;fill:var(--fg)}
svg .grid{stroke:#eceff2}svg .frame{fill:none;stroke:#b8c0c8}svg .tick{stroke:#b8c0c8}
svg .band{opacity:.18;stroke:none}svg .curve{fill:none;stroke-width:2}
svg .level{stroke:#888;stroke-dasharray:5 4}
svg .dot{fill:#9aa5b1;opacity:.65}svg .front{fill:none;stroke:#d62728;stroke-width:1.5}
svg circle.on-front{stroke:#d62728;stroke-width:2}
svg [data-design]{cursor:pointer}
svg .selected circle,svg circle.selected{stroke:#111;stroke-width:2.5}
svg.tree .edges path{fill:none;stroke:#aeb7c0}
svg.tree .node circle{stroke:#fff;stroke-width:1}
svg.tree .best circle{stroke:#d62728;stroke-width:2.5}
svg.tree .failed circle{opacity:.7}
svg.tree .selected circle{stroke:#111;stroke-width:3}
svg.tree .iter{fill:var(--muted)}
svg.heat text.col{font-size:10px}
svg.heat .selected text{font-weight:700}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin:2px 0 6px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;
vertical-align:-2px}
.scale{font-size:12px;color:var(--muted)}.scale svg{vertical-align:-1px}
.plots{display:flex;flex-wrap:wrap;gap:18px}
.bar{display:inline-block;height:10px;background:#f79009;border-radius:2px;vertical-align:middle}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("alma-data").textContent);

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function value(node, data) {
    // any JSON value as nested lists, text only
    if (data === null || data === undefined) { node.appendChild(el("span", "muted", "-")); return; }
    if (Array.isArray(data)) {
      if (!data.length) { node.appendChild(el("span", "muted", "none")); return; }
      var list = el("ul", "plain");
      data.forEach(function (item) { var li = el("li"); value(li, item); list.appendChild(li); });
      node.appendChild(list);
    } else if (typeof data === "object") {
      var keys = Object.keys(data);
      var flat = keys.length && keys.every(function (k) {
        return data[k] === null || typeof data[k] !== "object";
      });
      if (flat && keys.length > 1) {  // a record of plain values: one line
        node.appendChild(el("span", "", keys.map(function (k) {
          return k.replace(/_/g, " ") + ": " + scalar(data[k]);
        }).join(" · ")));
        return;
      }
      var dl = el("dl", "tree");
      Object.keys(data).forEach(function (key) {
        dl.appendChild(el("dt", "", key.replace(/_/g, " ")));
        var dd = el("dd"); value(dd, data[key]); dl.appendChild(dd);
      });
      node.appendChild(dl);
    } else {
      node.appendChild(el("span", "", scalar(data)));
    }
  }

  function scalar(data) {
    if (typeof data === "number" && !Number.isInteger(data)) return data.toPrecision(4);
    return data === null ? "-" : String(data);
  }

  function diff(text) {
    var pre = el("pre", "diff");
    text.split("\n").forEach(function (line) {
      var cls = line.indexOf("@@") === 0 ? "hunk"
        : (line[0] === "+" && line.indexOf("+++") !== 0) ? "add"
        : (line[0] === "-" && line.indexOf("---") !== 0) ? "del" : "";
      var span = el("span", cls, line + "\n");
      pre.appendChild(span);
    });
    return pre;
  }

  function show(run, id) {
    var section = document.getElementById("run-" + run);
    var design = DATA.runs[run].designs[id];
    if (!section || !design) return;
    section.querySelectorAll(".selected").forEach(function (n) { n.classList.remove("selected"); });
    section.querySelectorAll("[data-design]").forEach(function (n) {
      if (n.getAttribute("data-design") === id) n.classList.add("selected");
    });
    var box = section.querySelector(".details");
    box.textContent = "";
    var title = el("h3", "", design.name + " ");
    title.appendChild(el("span", "muted", design.id));
    box.appendChild(title);
    var facts = el("p");
    facts.appendChild(el("span", "badge", design.origin));
    facts.appendChild(document.createTextNode(" "));
    facts.appendChild(el("span", "badge " + (design.status === "evaluated" ? "ok" : "bad"),
      design.status));
    facts.appendChild(document.createTextNode(" iteration " + design.iteration + " · score " +
      design.score));
    box.appendChild(facts);
    if (design.parent) {
      var parent = el("p", "", "parent: ");
      var link = el("a", "", design.parent_name + " (" + design.parent + ")");
      link.href = "#";
      link.addEventListener("click", function (e) {
        e.preventDefault(); show(run, design.parent);
      });
      parent.appendChild(link);
      box.appendChild(parent);
    }
    box.appendChild(el("h3", "", "Idea"));
    box.appendChild(el("p", "", design.idea || "-"));
    box.appendChild(el("h3", "", "Analysis that led to it"));
    value(box, design.analysis);
    box.appendChild(el("h3", "", "Verification"));
    if (!design.verifications.length) box.appendChild(el("p", "muted", "no verification recorded"));
    design.verifications.forEach(function (v) {
      var head = el("p");
      head.appendChild(el("span", "badge " + (v.passed ? "ok" : "bad"),
        "attempt " + v.attempt + (v.passed ? ": passed" : ": failed")));
      box.appendChild(head);
      value(box, v.report);
    });
    box.appendChild(el("h3", "", "Code"));
    box.appendChild(el("pre", "code", design.code));
    box.appendChild(el("h3", "", "Change from its parent"));
    if (design.diff) box.appendChild(diff(design.diff));
    else box.appendChild(el("p", "muted", design.parent ? "same code as its parent" : "no parent"));
  }

  document.querySelectorAll("section.run").forEach(function (section) {
    var run = section.getAttribute("data-run");
    section.addEventListener("click", function (event) {
      var target = event.target.closest("[data-design]");
      var id = target && target.getAttribute("data-design");
      if (id) show(run, id);
    });
    var first = DATA.runs[run].selected;
    if (first) show(run, first);
  });

  function cell(row, index) {
    var c = row.children[index];
    if (!c) return "";
    var v = c.getAttribute("data-v");
    return v === null ? c.textContent : v;
  }
  document.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var table = th.closest("table"), body = table.tBodies[0];
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = cell(a, index), y = cell(b, index);
        var nx = x === "" ? NaN : Number(x), ny = y === "" ? NaN : Number(y);
        var r;
        if (!isNaN(nx) || !isNaN(ny)) {
          if (isNaN(nx)) return 1;
          if (isNaN(ny)) return -1;
          r = nx - ny;
        } else { r = x.localeCompare(y); }
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });

  var tabs = document.querySelectorAll("nav.tabs button");
  tabs.forEach(function (button) {
    button.addEventListener("click", function () {
      tabs.forEach(function (b) { b.classList.toggle("active", b === button); });
      document.querySelectorAll("section.run").forEach(function (s) {
        s.hidden = s.id !== button.getAttribute("data-tab");
      });
    });
  });
  document.body.setAttribute("data-ready", "1");
})();
"""
