// Capstan dashboard: theme, sortable/filterable/paged tables, confirmations,
// copy buttons and live service counts over server-sent events. No inline
// scripts: the page's Content-Security-Policy allows only this file.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("capstan-theme"); } catch (e) { saved = null; }
  if (saved) { root.setAttribute("data-theme", saved); }

  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!(t instanceof Element)) { return; }
    var toggle = t.closest("[data-theme-toggle]");
    if (toggle) {
      var next = root.getAttribute("data-theme") === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("capstan-theme", next); } catch (e) { /* private mode */ }
    }
    var copy = t.closest("[data-copy]");
    if (copy) {
      var src = document.getElementById(copy.getAttribute("data-copy"));
      if (src && navigator.clipboard) { navigator.clipboard.writeText(src.textContent).catch(function () {}); }
      copy.textContent = "Copied";
    }
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  });

  function cellValue(row, i) {
    var c = row.children[i];
    if (!c) { return ""; }
    return c.getAttribute("data-sort") || c.textContent.trim();
  }

  function setupTable(table) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var pageSize = parseInt(table.getAttribute("data-page-size") || "25", 10);
    var page = 0;
    var filter = "";
    var pager = document.createElement("div");
    pager.className = "pager";
    table.parentNode.insertBefore(pager, table.nextSibling);

    function render() {
      var rows = Array.prototype.slice.call(body.rows);
      var shown = rows.filter(function (r) {
        return !filter || r.textContent.toLowerCase().indexOf(filter) >= 0;
      });
      var pages = Math.max(1, Math.ceil(shown.length / pageSize));
      if (page >= pages) { page = pages - 1; }
      rows.forEach(function (r) { r.hidden = true; });
      shown.slice(page * pageSize, (page + 1) * pageSize).forEach(function (r) { r.hidden = false; });
      pager.textContent = "";
      if (pages > 1) {
        var prev = document.createElement("button");
        prev.className = "secondary"; prev.type = "button"; prev.textContent = "Previous";
        prev.disabled = page === 0;
        prev.onclick = function () { page -= 1; render(); };
        var next = document.createElement("button");
        next.className = "secondary"; next.type = "button"; next.textContent = "Next";
        next.disabled = page >= pages - 1;
        next.onclick = function () { page += 1; render(); };
        var label = document.createElement("span");
        label.textContent = "Page " + (page + 1) + " of " + pages;
        pager.appendChild(prev); pager.appendChild(label); pager.appendChild(next);
      }
    }

    Array.prototype.forEach.call(table.tHead ? table.tHead.rows[0].cells : [], function (th, i) {
      th.tabIndex = 0;
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(th.parentNode.cells, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, i), y = cellValue(b, i);
          var nx = parseFloat(x), ny = parseFloat(y);
          var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return asc ? cmp : -cmp;
        });
        rows.forEach(function (r) { body.appendChild(r); });
        render();
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });

    var input = document.querySelector("input[data-filter='" + table.id + "']");
    if (input) {
      input.addEventListener("input", function () { filter = input.value.toLowerCase(); page = 0; render(); });
    }
    render();
  }

  Array.prototype.forEach.call(document.querySelectorAll("table[data-table]"), setupTable);

  // Logs load after the page, so a slow node never holds it.
  Array.prototype.forEach.call(document.querySelectorAll("pre[data-logs]"), function (box) {
    fetch(box.getAttribute("data-logs"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (answer.error) {
          box.className = "error";
          box.textContent = answer.error;
        } else {
          box.textContent = answer.text || "(no output)";
        }
        box.setAttribute("data-loaded", "true");
      })
      .catch(function () { box.textContent = "The logs could not be loaded."; });
  });

  var live = document.querySelector("[data-live]");
  if (live && window.EventSource) {
    var source = new EventSource(live.getAttribute("data-live"));
    source.addEventListener("services", function (ev) {
      var list = [];
      try { list = JSON.parse(ev.data); } catch (e) { return; }
      list.forEach(function (s) {
        var cell = document.querySelector("[data-service='" + s.id + "'] [data-replicas]");
        if (cell) {
          cell.textContent = s.running + " / " + s.desired;
          cell.setAttribute("data-running", String(s.running));
        }
      });
    });
  }
})();
