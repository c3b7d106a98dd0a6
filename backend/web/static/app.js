// The dashboard's behaviour: CSRF on htmx requests, live statuses and build logs (Server-Sent Events), the
// resource ranges of the new-deployment form, and the metrics charts (uPlot). No inline script anywhere (CSP).
(function () {
  "use strict";

  var BUSY = ["pending", "provisioning", "deploying", "deleting"];

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // -- htmx: the CSRF header on every request, and refusals shown rather than swallowed ---------------------
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("htmx-error");
    if (!box) return;
    // Text only: an error answer may come from anywhere on the way (a proxy's page), never markup to insert.
    var xhr = event.detail.xhr;
    var text = "";
    if ((xhr.getResponseHeader("Content-Type") || "").indexOf("text/html") === 0) {
      text = new DOMParser().parseFromString(xhr.responseText, "text/html").body.textContent;
    }
    box.textContent = (text || "").trim().replace(/\s+/g, " ") || ("The request failed (" + xhr.status + ").");
    box.hidden = false;
  });

  // -- statuses, live -----------------------------------------------------------------------------------
  function setBadge(id, status) {
    document.querySelectorAll('[data-status-for="' + id + '"]').forEach(function (badge) {
      badge.textContent = status;
      badge.className = "badge status-" + status;
    });
  }

  function refreshTable(container) {
    var form = document.getElementById("filters");
    var query = form ? new URLSearchParams(new FormData(form)).toString() : "";
    htmx.ajax("GET", container.dataset.refresh + (query ? "?" + query : ""), { target: container, swap: "innerHTML" });
  }

  var refreshSoon = null;

  function watchStatuses(container) {
    var source = new EventSource(container.dataset.statusStream);
    source.addEventListener("status", function (event) {
      var change = JSON.parse(event.data);
      setBadge(change.id, change.status);
      if (container.dataset.refresh) {
        // The counts, and a filtered list, follow too: one refresh for a burst of changes.
        clearTimeout(refreshSoon);
        refreshSoon = setTimeout(function () { refreshTable(container); }, 800);
      }
      var summary = document.getElementById("summary");
      if (summary && summary.dataset.deploymentId === change.id) {
        htmx.trigger(summary, "refresh");
        ["events-list", "runtime-form"].forEach(function (id) {
          var part = document.getElementById(id);
          if (part) htmx.trigger(part, "refresh");
        });
        if (BUSY.indexOf(change.status) >= 0) buildLog.follow();
        var holder = document.getElementById("charts");
        if (holder && change.status === "running" && window.uPlot) loadMetrics(holder);
      }
    });
    source.addEventListener("changed", function () {
      if (container.dataset.refresh) refreshTable(container);
    });
  }

  // -- the build log ------------------------------------------------------------------------------------
  var buildLog = {
    source: null,
    follow: function () {
      var pre = document.getElementById("build-log");
      if (!pre || this.source) return;
      var state = document.getElementById("build-state");
      var label = document.getElementById("build-release");
      var follow = document.getElementById("follow-log");
      var self = this;
      pre.textContent = "";
      state.textContent = "Connecting…";
      var source = new EventSource(pre.dataset.stream);
      this.source = source;
      source.addEventListener("release", function (event) {
        var release = JSON.parse(event.data).release;
        label.textContent = "(release " + release + ")";
        state.textContent = "Following release " + release + "…";
      });
      source.addEventListener("line", function (event) {
        var line = JSON.parse(event.data);
        var row = document.createElement("span");
        row.className = "line line-" + line.stream;
        row.textContent = line.line + "\n";
        pre.appendChild(row);
        if (!follow || follow.checked) pre.scrollTop = pre.scrollHeight;
      });
      source.addEventListener("end", function (event) {
        var end = JSON.parse(event.data);
        state.textContent = end.release === null ? "No release yet." :
          "Release " + end.release + " " + end.status + ".";
        pre.dataset.ended = end.status || "";
        source.close();
        self.source = null;
        var summary = document.getElementById("summary");
        if (summary) htmx.trigger(summary, "refresh");
      });
      source.addEventListener("timeout", function () {
        source.close();
        self.source = null;
        self.follow();
      });
      source.onerror = function () {
        if (source.readyState === EventSource.CONNECTING) state.textContent = "Reconnecting…";
      };
    }
  };

  // -- new deployment: each type's ranges -----------------------------------------------------------------
  function applyRanges(form) {
    var checked = form.querySelector('input[name="deployment_type"]:checked');
    if (!checked) return;
    var kind = checked.value;
    ["cores", "memory", "disk"].forEach(function (key) {
      var input = form.querySelector("#" + key);
      input.min = input.dataset[kind + "Min"];
      input.max = input.dataset[kind + "Max"];
      input.placeholder = input.dataset[kind + "Default"];
    });
  }

  // -- metrics ------------------------------------------------------------------------------------------
  var charts = [];

  function series(points, keys, scale) {
    return [points.map(function (p) { return p.time; })].concat(keys.map(function (key) {
      return points.map(function (p) { return p[key] === null || p[key] === undefined ? null : p[key] / scale; });
    }));
  }

  function drawCharts(holder, data) {
    charts.forEach(function (chart) { chart.destroy(); });
    charts = [];
    var specs = [
      ["chart-cpu", ["cpu"], ["CPU %"], 1],
      ["chart-memory", ["memory"], ["used"], 1048576],
      ["chart-net", ["net_in", "net_out"], ["in", "out"], 1024],
      ["chart-disk", ["disk_read", "disk_write"], ["read", "write"], 1024]
    ];
    var colours = ["#1e88e5", "#e53935"];
    specs.forEach(function (spec) {
      var target = document.getElementById(spec[0]);
      target.textContent = "";
      var options = {
        width: Math.max(240, target.parentNode.clientWidth - 8), height: 180,
        series: [{}].concat(spec[2].map(function (label, i) {
          return { label: label, stroke: colours[i], width: 1.5, spanGaps: false };
        })),
        scales: { y: { range: function (u, min, max) { return [0, Math.max(max || 0, 1) * 1.1]; } } },
        axes: [{}, { size: 60 }],
        legend: { live: true }
      };
      charts.push(new uPlot(options, series(data.points, spec[1], spec[3]), target));
    });
  }

  function loadMetrics(holder) {
    var chosen = document.querySelector('input[name="timeframe"]:checked');
    var state = document.getElementById("metrics-state");
    state.textContent = "Loading…";
    fetch(holder.dataset.source + "?timeframe=" + encodeURIComponent(chosen ? chosen.value : "hour"),
          { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (data.error) { state.textContent = data.error; return; }
        var recorded = data.points.filter(function (p) { return p.cpu !== null && p.cpu !== undefined; });
        state.textContent = recorded.length ? "" :
          "No data yet: Proxmox records a point per interval (a minute over the last hour), once one has passed.";
        drawCharts(holder, data);
      })
      .catch(function () { state.textContent = "The metrics could not be loaded."; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-status-stream]").forEach(watchStatuses);
    buildLog.follow();
    var form = document.getElementById("new-deployment");
    if (form) {
      applyRanges(form);
      form.addEventListener("change", function (event) {
        if (event.target.name === "deployment_type") applyRanges(form);
      });
    }
    var holder = document.getElementById("charts");
    if (holder && window.uPlot) {
      loadMetrics(holder);
      document.querySelectorAll('input[name="timeframe"]').forEach(function (radio) {
        radio.addEventListener("change", function () { loadMetrics(holder); });
      });
    }
  });
})();
