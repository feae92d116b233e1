/// The dashboard's stylesheet and its one script, served from the binary (no CDN, no npm).
enum DashboardAssets {
    static let css = """
    body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 2em; color: #1d232a; background: #fbfbfa; }
    h1 { font-size: 1.4em; margin: .6em 0 .2em; } h2 { font-size: 1.1em; margin: 1.2em 0 .3em; } h2 small { font-weight: normal; color: #5b6470; }
    a { color: #1f5fa8; } .n { text-align: right; font-variant-numeric: tabular-nums; } .warn { color: #b3261e; font-weight: 600; }
    table { border-collapse: collapse; } th, td { padding: 2px 10px; border-bottom: 1px solid #e3e5e8; } th { text-align: left; background: #f0f1f3; }
    th a { color: inherit; text-decoration: none; } table.gateways { margin: .4em 0 1em; font-size: 13px; }
    .filter { margin: .6em 0; } .shown { color: #5b6470; } svg.spark polyline { fill: none; stroke: #1f5fa8; stroke-width: 1.2; }
    svg.plot { background: #fff; border: 1px solid #e3e5e8; display: block; max-width: 100%; height: auto; }
    svg.plot .frame { fill: none; stroke: #e3e5e8; } svg.plot .axis { font-size: 11px; fill: #5b6470; }
    svg.plot .band { fill: #1f5fa8; fill-opacity: .16; stroke: none; } svg.plot .mean { fill: none; stroke: #1f5fa8; stroke-width: 1.4; }
    svg.plot .gap.no_data { fill: #8a8f98; fill-opacity: .28; } svg.plot .gap.dropped_at_edge { fill: #d9480f; fill-opacity: .30; }
    svg.plot .drop { fill: #d9480f; fill-opacity: .14; stroke: #d9480f; stroke-dasharray: 3 2; stroke-opacity: .6; }
    svg.plot circle.w { stroke: #1f5fa8; stroke-width: 1.2; } svg.plot circle.closed { fill: #1f5fa8; }
    svg.plot circle.open { fill: #fff; stroke-dasharray: 2 1; } svg.plot circle.revised { fill: #f59f00; stroke: #a15c00; }
    svg.plot circle.updated { stroke: #2b8a3e; stroke-width: 2; } svg.plot circle:hover { stroke-width: 3; }
    .legend { color: #5b6470; font-size: 13px; } .key { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -2px; border: 1px solid #1f5fa8; border-radius: 6px; }
    .key.closed { background: #1f5fa8; } .key.open { background: #fff; border-style: dashed; } .key.revised { background: #f59f00; border-color: #a15c00; }
    .key.band { background: rgba(31,95,168,.16); border: none; border-radius: 0; } .key.no_data { background: rgba(138,143,152,.4); border: none; border-radius: 0; }
    .key.dropped_at_edge { background: rgba(217,72,15,.4); border: none; border-radius: 0; } .key.drop { background: rgba(217,72,15,.14); border: 1px dashed #d9480f; border-radius: 0; }
    ul.gaps { font-size: 13px; color: #5b6470; margin: .3em 0; } li.dropped_at_edge, li.drop { color: #a63a0c; }
    .choosers { margin: .5em 0; } .fromto { display: inline; margin-left: 1em; } #live { color: #2b8a3e; }
    """

    /// Follows the changefeed (SSE) from the cursor the page was rendered at and redraws the
    /// plots of the device's changed windows from their embedded points.
    static let liveJS = """
    (function () {
      "use strict";
      var live = document.getElementById("live");
      if (!live || !window.EventSource) return;
      var device = live.getAttribute("data-device");
      var W = 960, H = 220, L = 56, R = 8, T = 8, B = 22, NS = "http://www.w3.org/2000/svg";
      var plots = {};
      Array.prototype.forEach.call(document.querySelectorAll("svg.plot"), function (svg) {
        var data = document.querySelector('script.plot-data[data-plot="' + svg.id + '"]');
        var map = new Map();
        JSON.parse(data.textContent).forEach(function (p) { map.set(p[0], p); });
        plots[svg.getAttribute("data-metric") + "/" + svg.getAttribute("data-size")] = { svg: svg, map: map };
      });
      function geometry(svg) {
        var from = +svg.getAttribute("data-from"), to = +svg.getAttribute("data-to");
        var low = +svg.getAttribute("data-low"), high = +svg.getAttribute("data-high");
        return {
          x: function (t) { return L + Math.min(Math.max((t - from) / (to - from), 0), 1) * (W - L - R); },
          y: function (v) { return T + (high - v) / (high - low) * (H - T - B); }
        };
      }
      function redraw(p) {
        var svg = p.svg, size = +svg.getAttribute("data-size");
        var pts = Array.from(p.map.values()).sort(function (a, b) { return a[0] - b[0]; });
        var low = +svg.getAttribute("data-low"), high = +svg.getAttribute("data-high");
        pts.forEach(function (q) { if (q[2] < low) low = q[2]; if (q[3] > high) high = q[3]; });
        svg.setAttribute("data-low", low); svg.setAttribute("data-high", high);
        var g = geometry(svg), band = "", mean = "", run = [];
        function xy(q, i) { return g.x(q[0] + size / 2).toFixed(1) + "," + g.y(q[i]).toFixed(1); }
        function flush() {
          if (!run.length) return;
          band += "M" + run.map(function (q) { return xy(q, 3); }).join(" L") + " L" +
            run.slice().reverse().map(function (q) { return xy(q, 2); }).join(" L") + "Z";
          mean += "M" + run.map(function (q) { return xy(q, 1); }).join(" L");
          run = [];
        }
        pts.forEach(function (q) { if (run.length && q[0] !== run[run.length - 1][0] + size) flush(); run.push(q); });
        flush();
        svg.querySelector("path.band").setAttribute("d", band);
        svg.querySelector("path.mean").setAttribute("d", mean);
        Array.prototype.forEach.call(svg.querySelectorAll("circle.w"), function (c) {
          var q = p.map.get(+c.getAttribute("data-start"));
          if (q) c.setAttribute("cy", g.y(q[1]).toFixed(1));
        });
        svg.setAttribute("data-points", pts.length);
      }
      function apply(ch) {
        if (ch.device !== device) return;
        var p = plots[ch.metric + "/" + ch.size_ms];
        if (!p) return;
        var svg = p.svg;
        if (ch.start < +svg.getAttribute("data-from") || ch.start >= +svg.getAttribute("data-to")) return;
        p.map.set(ch.start, [ch.start, ch.mean, ch.min, ch.max, ch.revision]);
        var c = svg.querySelector('circle.w[data-start="' + ch.start + '"]');
        if (!c) {
          c = document.createElementNS(NS, "circle");
          c.setAttribute("data-start", ch.start);
          c.setAttribute("cx", geometry(svg).x(ch.start + ch.size_ms / 2).toFixed(1));
          c.appendChild(document.createElementNS(NS, "title"));
          svg.querySelector("g.markers").appendChild(c);
        }
        c.setAttribute("class", "w " + ch.state + (ch.revision > 0 ? " revised" : "") + " updated");
        c.setAttribute("r", ch.revision > 0 ? 4 : 2.5);
        c.setAttribute("data-mean", ch.mean);
        c.querySelector("title").textContent = new Date(ch.start).toISOString() + " " + ch.state + " (live)\\ncount " + ch.count +
          "\\nmean " + ch.mean + ", min " + ch.min + ", max " + ch.max + (ch.revision > 0 ? "\\nrevised " + ch.revision + "x by late data" : "");
        redraw(p);
      }
      // data-live-limit (from ?live_limit=N): stop after N changes, so a headless browser
      // that dumps the page once nothing is loading can see an update (the browser tests).
      var limit = +(live.getAttribute("data-live-limit") || 0), received = 0;
      var source = new EventSource("/v1/changes?device=" + encodeURIComponent(device) + "&after=" + live.getAttribute("data-cursor") +
        (limit > 0 ? "&limit=" + limit : ""));
      source.onopen = function () { live.textContent = "live: following changes"; };
      source.onerror = function () { live.textContent = "live: reconnecting…"; };
      source.addEventListener("change", function (e) {
        var ch = JSON.parse(e.data);
        apply(ch);
        live.setAttribute("data-cursor", ch.cursor);
        live.textContent = "live: updated " + new Date().toISOString().slice(11, 19) + " UTC";
        received += 1;
        if (limit > 0 && received >= limit) { source.close(); live.textContent += " (stopped after " + limit + ")"; }
      });
    })();
    """
}
