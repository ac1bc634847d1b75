// Feature browser: plain JavaScript, no dependencies, works from file:// (data files are <script>s).
// State lives in the URL fragment: #q=TEXT&sort=KEY&dir=asc|desc&dead=1 (index) or #f=ID (feature page).
(function () {
  "use strict";
  var IDX = window.BROWSER_INDEX;
  var app = document.getElementById("app");
  var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  var CLASS = IDX ? IDX.classes : [];
  var chunks = {}, pending = {};
  var N = IDX ? IDX.density.length : 0;
  var LIMIT = 300;  // rows rendered before "show all"

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "class") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function fmt(x, d) {
    if (x === null || x === undefined) return "–";
    if (x === 0) return "0";
    var a = Math.abs(x);
    if (a >= 1e4 || a < 1e-3) return x.toExponential(d === undefined ? 2 : d - 1);
    return x.toPrecision(d === undefined ? 3 : d).replace(/\.?0+$/, "");
  }
  // the dictionary's recipe: the paper's L1 coefficient, or another architecture with its sparsity knob
  function recipe() {
    if (!IDX.architecture || IDX.architecture === "standard") return "L1 coefficient " + IDX.l1;
    return IDX.architecture + " SAE, " + IDX.knob + " " + IDX[IDX.knob];
  }
  function pct(x) { return x === 0 ? "0%" : (x * 100 < 0.01 ? (x * 100).toExponential(1) : fmt(x * 100, 3)) + "%"; }
  function show(text) { return text.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/\r/g, "\u240d"); }
  function tokLabel(id) { return id >= 0 && id < IDX.vocab.length ? IDX.vocab[id] : "?"; }
  function chip(id) { return el("span", {"class": "tokchip", text: show(tokLabel(id))}); }
  function unpack(s, w) {
    var out = [];
    for (var j = 0; j < s.length; j += w) {
      var n = 0;
      for (var k = 0; k < w; k++) n = n * 64 + B64.indexOf(s.charAt(j + k));
      out.push(n);
    }
    return out;
  }
  function params() {
    var h = location.hash.replace(/^#/, ""), p = {};
    h.split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("=");
      p[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? "" : decodeURIComponent(kv.slice(i + 1));
    });
    return p;
  }
  function hashOf(p) {
    return "#" + Object.keys(p).filter(function (k) { return p[k] !== "" && p[k] != null; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(p[k]); }).join("&");
  }

  // ------------------------------------------------------------------ data chunks (script tags)
  window.BROWSER_CHUNK = function (id, data) {
    chunks[id] = data;
    (pending[id] || []).forEach(function (cb) { cb(data); });
    delete pending[id];
  };
  function loadChunk(id, cb, onerr) {
    if (chunks[id]) return cb(chunks[id]);
    if (pending[id]) { pending[id].push(cb); return; }
    pending[id] = [cb];
    var s = document.createElement("script");
    s.src = IDX.chunk_files[id];
    s.onerror = function () { delete pending[id]; onerr(IDX.chunk_files[id]); };
    document.head.appendChild(s);
  }

  // ------------------------------------------------------------------ search text per feature
  var searchText = [];
  function buildSearch() {
    for (var i = 0; i < N; i++) {
      var parts = [];
      IDX.act_tokens[i].forEach(function (t) { parts.push(tokLabel(t)); });
      IDX.logit_tokens[i].forEach(function (t) { parts.push(tokLabel(t)); });
      if (IDX.proxy[i] >= 0) parts.push(IDX.proxies[IDX.proxy[i]]);
      parts.push(IDX.subsets[IDX.subset[i]] || "");
      parts.push(CLASS[IDX.cls[i]]);
      searchText.push(parts.join("\u0001").toLowerCase());
    }
  }
  function matches(q) {
    q = q.trim();
    var all = [];
    for (var i = 0; i < N; i++) all.push(i);
    if (!q) return all;
    var m = /^#?(\d+)$/.exec(q);
    if (m) {  // a feature id: exact match first, then ids starting with those digits
      var exact = +m[1], out = exact < N ? [exact] : [];
      all.forEach(function (i) { if (i !== exact && String(i).indexOf(m[1]) === 0) out.push(i); });
      return out;
    }
    var ql = q.toLowerCase();
    return all.filter(function (i) { return searchText[i].indexOf(ql) >= 0; });
  }
  var SORTS = {
    id: function (i) { return i; },
    density: function (i) { return IDX.density[i]; },
    max: function (i) { return IDX.max[i]; },
    proxy: function (i) { return IDX.proxy_r[i] || 0; },
    purity: function (i) { return IDX.subset_share[i]; },
    uni: function (i) { return IDX.uni_r[i] === null ? -2 : IDX.uni_r[i]; }
  };

  // ------------------------------------------------------------------ index view
  function renderIndex(p) {
    app.innerHTML = "";
    var sort = SORTS[p.sort] ? p.sort : "id";
    var dir = p.dir || (sort === "id" ? "asc" : "desc");
    var input = el("input", {id: "search", type: "search", placeholder: "Search: feature id or token text (e.g. 42, the, ال)", value: p.q || ""});
    var hideDead = el("input", {type: "checkbox", id: "hide-dead"});
    hideDead.checked = p.dead === "0";
    var count = el("span", {id: "count"});
    var classes = [0, 0, 0, 0];
    IDX.cls.forEach(function (c) { classes[c]++; });
    app.appendChild(el("h1", {text: "Features of " + IDX.run}));
    app.appendChild(el("p", {"class": "stat"}, [
      IDX.n_features + " features of model " + IDX.model + " (" + recipe() + "), measured on " +
      IDX.n_points.toLocaleString() + " validation tokens: " + classes[1] + " dead, " + classes[2] +
      " ultralow (density < " + IDX.ultralow_density + "), " + classes[3] + " dense (> " + IDX.dense_density + ")."]));
    app.appendChild(el("div", {"class": "controls"}, [input, el("label", {}, [hideDead, " hide dead"]), count]));
    var cols = [["id", "Feature"], ["density", "Density"], ["max", "Max act."], ["proxy", "Best proxy (r)"],
                ["purity", "Top subset (share)"], ["uni", (IDX.compare_run || "Model B") + " match (corr)"],
                [null, "Top activating tokens"], [null, "Top logit tokens"]];
    var thead = el("tr", {}, cols.map(function (c) {
      var th = el("th", {text: c[1]});
      if (c[0]) {
        th.setAttribute("data-sort", c[0]);
        if (c[0] === sort) th.className = "sorted" + (dir === "asc" ? " asc" : "");
        th.addEventListener("click", function () {
          var q = params(), cur = SORTS[q.sort] ? q.sort : "id";
          var curDir = q.dir || (cur === "id" ? "asc" : "desc");
          q.dir = cur === c[0] ? (curDir === "asc" ? "desc" : "asc") : (c[0] === "id" ? "asc" : "desc");
          q.sort = c[0];
          location.hash = hashOf(q);
        });
      }
      return th;
    }));
    var tbody = el("tbody", {id: "rows"});
    app.appendChild(el("table", {"class": "features"}, [el("thead", {}, [thead]), tbody]));
    var more = el("p", {});
    app.appendChild(more);

    function fill(showAll) {
      var ids = matches(input.value);
      if (hideDead.checked) ids = ids.filter(function (i) { return IDX.cls[i] !== 1; });
      var key = SORTS[sort], sgn = dir === "asc" ? 1 : -1;
      if (!/^#?\d+$/.test(input.value.trim()) || sort !== "id")
        ids.sort(function (a, b) { return sgn * (key(a) - key(b)) || a - b; });
      count.textContent = ids.length + " of " + N + " features";
      tbody.innerHTML = "";
      var shown = showAll ? ids : ids.slice(0, LIMIT);
      var frag = document.createDocumentFragment();
      shown.forEach(function (i) {
        var c = IDX.cls[i];
        var link = el("a", {href: "#f=" + i, "class": "feature-link", text: "#" + i});
        var badge = c ? el("span", {"class": "badge " + CLASS[c], text: CLASS[c]}) : null;
        var prox = IDX.proxy[i] >= 0 && c !== 1 ? IDX.proxies[IDX.proxy[i]] + " (" + fmt(IDX.proxy_r[i], 2) + ")" : "–";
        var sub = c !== 1 ? (IDX.subsets[IDX.subset[i]] + " (" + Math.round(IDX.subset_share[i] * 100) + "%)") : "–";
        var uni = IDX.uni_id[i] >= 0 ? "#" + IDX.uni_id[i] + " (" + fmt(IDX.uni_r[i], 2) + ")" : "–";
        frag.appendChild(el("tr", {"class": c === 1 ? "dead" : "", "data-feature": String(i)}, [
          el("td", {}, [link, badge]), el("td", {"class": "num", text: pct(IDX.density[i])}),
          el("td", {"class": "num", text: fmt(IDX.max[i])}), el("td", {text: prox, "class": IDX.proxy_r[i] < 0.1 ? "weak" : ""}), el("td", {text: sub}),
          el("td", {text: uni}), el("td", {}, IDX.act_tokens[i].map(chip)), el("td", {}, IDX.logit_tokens[i].map(chip))]));
      });
      tbody.appendChild(frag);
      more.innerHTML = "";
      if (shown.length < ids.length) {
        var b = el("button", {id: "show-all", text: "Show all " + ids.length});
        b.addEventListener("click", function () { fill(true); });
        more.appendChild(b);
      }
    }
    input.addEventListener("input", function () {
      var q = params(); q.q = input.value; delete q.f;
      history.replaceState(null, "", hashOf(q) || "#");
      fill(false);
    });
    hideDead.addEventListener("change", function () {
      var q = params(); q.dead = hideDead.checked ? "0" : ""; history.replaceState(null, "", hashOf(q) || "#");
      fill(false);
    });
    fill(false);
    input.focus();
  }

  // ------------------------------------------------------------------ small SVG charts
  var SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function histogram(counts, lo, hi, opts) {
    opts = opts || {};
    var W = 300, H = 90, pad = 14, n = counts.length;
    var s = svg("svg", {"class": "hist", viewBox: "-2 0 " + (W + 4) + " " + (H + pad)});
    var mx = Math.max.apply(null, counts.concat([1]));
    counts.forEach(function (c, j) {
      var h = opts.log ? (c > 0 ? (H - 2) * Math.log(1 + c) / Math.log(1 + mx) : 0) : (H - 2) * c / mx;
      var x0 = lo + (hi - lo) * j / n;
      var r = svg("rect", {"class": "b" + (opts.signed && x0 + (hi - lo) / n / 2 < 0 ? " neg" : ""),
        x: (W * j / n).toFixed(1), y: (H - h).toFixed(1), width: Math.max(W / n - 1, 1).toFixed(1), height: h.toFixed(1)});
      var t = svg("title", {}); t.textContent = fmt(x0) + " – " + fmt(x0 + (hi - lo) / n) + ": " + c;
      r.appendChild(t); s.appendChild(r);
    });
    if (opts.mark !== undefined && opts.mark !== null) {
      var x = W * (opts.mark - lo) / (hi - lo);
      s.appendChild(svg("rect", {"class": "mark", x: Math.min(Math.max(x - 1, 0), W - 2).toFixed(1), y: 0, width: 2, height: H}));
    }
    var a = svg("text", {x: 0, y: H + pad - 2}); a.textContent = opts.loLabel || fmt(lo);
    var b = svg("text", {x: W, y: H + pad - 2, "text-anchor": "end"}); b.textContent = opts.hiLabel || fmt(hi);
    s.appendChild(a); s.appendChild(b);
    return s;
  }
  function bars(names, values, digits) {
    var mx = Math.max.apply(null, values.map(Math.abs).concat([1e-12]));
    return el("div", {"class": "bars"}, names.map(function (nm, j) {
      var v = values[j] || 0;
      return el("div", {"class": "row"}, [el("span", {"class": "name", text: nm}),
        el("span", {"class": "bar", style: "width:" + Math.max(0, 150 * v / mx).toFixed(1) + "px"}),
        el("span", {"class": "val", text: digits === "%" ? Math.round(v * 100) + "%" : fmt(v, 2)})]);
    }));
  }

  // ------------------------------------------------------------------ feature view
  function renderContext(ctx, amax) {
    var ids = unpack(ctx[0], IDX.vocab_width), acts = ctx[1], center = ctx[2], ov = ctx[5] || {};
    var div = el("div", {"class": "context", dir: "ltr"});
    div.appendChild(el("span", {"class": "meta", text: "act " + fmt(ctx[3]) + " · " + (IDX.subsets[ctx[4]] || "")}));
    ids.forEach(function (id, j) {
      var q = B64.indexOf(acts.charAt(j));
      var text = ov[String(j)] !== undefined ? ov[String(j)] : tokLabel(id);
      var span = el("span", {"class": "tok" + (j === center ? " center" : "") + (id === 0 ? " special" : ""), text: show(text)});
      if (q > 0) span.style.backgroundColor = "rgba(234, 88, 12, " + (0.12 + 0.88 * q / 63).toFixed(3) + ")";
      span.title = JSON.stringify(tokLabel(id)) + "  activation ≈ " + fmt(q * amax / 63);
      div.appendChild(span);
    });
    return div;
  }

  function renderFeature(i) {
    app.innerHTML = "";
    if (!(i >= 0 && i < N)) { app.appendChild(el("p", {"class": "error", text: "No feature " + i + " (0–" + (N - 1) + ")."})); return; }
    var chunk = Math.floor(i / IDX.chunk_features);
    app.appendChild(el("p", {id: "loading", text: "Loading feature " + i + "…"}));
    loadChunk(chunk, function (data) {
      if (params().f !== String(i)) return;  // navigated away meanwhile
      drawFeature(i, data[String(i)]);
    }, function (file) {
      app.innerHTML = "";
      app.appendChild(el("p", {"class": "error", text: "Could not load " + file + " (is the data folder next to index.html?)."}));
    });
  }

  function drawFeature(i, F) {
    app.innerHTML = "";
    var c = IDX.cls[i];
    var nav = el("div", {"class": "nav"}, [el("a", {href: "#", id: "back", text: "← all features"}),
      i > 0 ? el("a", {href: "#f=" + (i - 1), text: "‹ #" + (i - 1)}) : null,
      i < N - 1 ? el("a", {href: "#f=" + (i + 1), text: "#" + (i + 1) + " ›"}) : null]);
    app.appendChild(nav);
    app.appendChild(el("h1", {id: "feature-title"}, [IDX.run + " / feature " + i,
      c ? el("span", {"class": "badge " + CLASS[c], text: CLASS[c]}) : null]));
    var nfire = Math.round(IDX.density[i] * IDX.n_points);
    app.appendChild(el("p", {"class": "stat", id: "feature-stats"}, [
      "density ", el("b", {text: pct(IDX.density[i])}), " (fires on " + nfire.toLocaleString() + " of " +
      IDX.n_points.toLocaleString() + " validation tokens) · max activation ", el("b", {text: fmt(IDX.max[i])}),
      IDX.proxy[i] >= 0 && c !== 1 && IDX.proxy_r[i] >= 0.1 ? " · best proxy " : "",
      IDX.proxy[i] >= 0 && c !== 1 && IDX.proxy_r[i] >= 0.1 ? el("b", {text: IDX.proxies[IDX.proxy[i]] + " (r = " + fmt(IDX.proxy_r[i], 2) + ")"}) : null]));

    var dh = IDX.log_density_hist, dlo = dh.lo, dhi = dh.lo + dh.width * dh.counts.length;
    var grid = el("div", {"class": "grid"}, [
      el("div", {"class": "panel"}, [el("h3", {text: "Activation histogram (nonzero activations)"}),
        c === 1 ? el("p", {"class": "empty", text: "dead: never fires on the validation tokens"}) : histogram(F.h, 0, IDX.max[i], {log: false})]),
      el("div", {"class": "panel"}, [el("h3", {text: "Density among all features (log10); this one marked"}),
        histogram(dh.counts, dlo, dhi, {mark: IDX.density[i] > 0 ? Math.max(Math.log10(IDX.density[i]), dlo) : null,
          loLabel: "1e" + dlo, hiLabel: "1"})]),
      el("div", {"class": "panel"}, [el("h3", {text: "Logit weights (all tokens)"}),
        histogram(F.lh, F.lr[0], F.lr[1], {log: true, signed: true})]),
      el("div", {"class": "panel"}, [el("h3", {text: "Share of activation mass per subset"}),
        c === 1 ? el("p", {"class": "empty", text: "–"}) : bars(IDX.subsets, F.ss, "%"),
        IDX.proxies.length ? el("h3", {text: "Pearson r with each proxy"}) : null,
        IDX.proxies.length ? bars(IDX.proxies, F.px) : null])]);
    app.appendChild(grid);

    function logitList(id, rows) {
      return el("ul", {"class": "logits", id: id}, rows.map(function (r) {
        return el("li", {}, [chip(r[0]), el("span", {"class": "w", text: fmt(r[1])})]);
      }));
    }
    var sim = [];
    IDX.split_runs.forEach(function (run) {
      sim.push(el("h3", {text: run + " (decoder cosine)"}));
      sim.push(el("ul", {"class": "logits"}, (F.sim[run] || []).map(function (r) {
        return el("li", {}, [el("span", {text: "#" + r[0]}), el("span", {"class": "w", text: fmt(r[1], 3)})]);
      })));
    });
    if (!IDX.split_runs.length) sim.push(el("p", {"class": "empty", text: "no other dictionary sizes of this model"}));
    var uni = IDX.compare_run ? [el("h3", {text: IDX.compare_run + " (activation correlation)"}),
      F.uni.length ? el("ul", {"class": "logits", id: "universality"}, F.uni.map(function (r) {
        return el("li", {}, [el("span", {text: "#" + r[0]}), el("span", {"class": "w", text: fmt(r[1], 3)})]);
      })) : el("p", {"class": "empty", text: "no correlated feature (dead)"})]
      : [el("p", {"class": "empty", text: "no model-B dictionary of this size"})];
    app.appendChild(el("div", {"class": "grid"}, [
      el("div", {"class": "panel"}, [el("h3", {text: "Top logit-weight tokens"}), logitList("logits-top", F.lt)]),
      el("div", {"class": "panel"}, [el("h3", {text: "Bottom logit-weight tokens"}), logitList("logits-bottom", F.lb)]),
      el("div", {"class": "panel"}, [el("h3", {text: "Feature splitting: most similar features"})].concat(sim)),
      el("div", {"class": "panel"}, [el("h3", {text: "Universality: best-matching features"})].concat(uni))]));

    var au = automataSection(i, F);
    if (au) app.appendChild(au);

    var sec = el("section", {id: "contexts"});
    sec.appendChild(el("h2", {text: "Contexts (each token shaded by this feature's activation; the example token outlined)"}));
    if (!F.ex.length) sec.appendChild(el("p", {"class": "empty", text: "No examples: the feature never fires on the validation tokens."}));
    F.ex.forEach(function (g) {
      var group = el("div", {"class": "group"});
      group.appendChild(el("h3", {text: g[0]}));
      g[1].forEach(function (ctx) { group.appendChild(renderContext(ctx, F.amax)); });
      sec.appendChild(group);
    });
    app.appendChild(sec);
    window.scrollTo(0, 0);
  }

  // ------------------------------------------------------------------ feature automata (paper Fig. 11)
  function rate(x) { return x === null || x === undefined ? "–" : pct(x); }
  function stateLink(s, i) {
    return el("a", {href: "#f=" + s, "class": "automaton-state" + (s === i ? " current" : ""), text: "#" + s});
  }
  function automataSection(i, F) {
    var ids = F.au || [], all = IDX.automata || [];
    if (!ids.length || !all.length) return null;
    var sec = el("section", {id: "automata"});
    sec.appendChild(el("h2", {text: "Automata"}));
    sec.appendChild(el("p", {"class": "stat", text: "Edge i → j: j fires on the next token after i, far above " +
      "chance (lift), i's logit weights promote the tokens j fires on (logit support), and the causal check: " +
      "at validation positions where i fires, how likely j is to fire on the next token (expected over the " +
      "model's next-token distribution; sampled in older runs) with i pinned at its peak vs ablated (and left " +
      "alone)."}));
    ids.forEach(function (k) {
      var a = all[k];
      if (!a) return;
      var div = el("div", {"class": "automaton"});
      var head = [el("b", {text: a.states.length === 1 ? "Self-loop: " : a.states.length + "-state cycle: "})];
      a.states.forEach(function (s, m) {
        if (m) head.push(" ⇄ ");
        head.push(stateLink(s, i));
        (a.tokens[m] || []).forEach(function (t) { head.push(el("span", {"class": "tokchip", text: show(t)})); });
      });
      div.appendChild(el("p", {}, head));
      var rows = a.edges.map(function (e) {
        return el("tr", {}, [el("td", {}, [stateLink(e.from, i), " → ", stateLink(e.to, i)]),
          el("td", {"class": "num", text: fmt(e.lift)}), el("td", {"class": "num", text: fmt(e.support)}),
          el("td", {"class": "num", text: rate(e.pinned)}), el("td", {"class": "num", text: rate(e.ablated)}),
          el("td", {"class": "num", text: rate(e.natural)}),
          el("td", {"class": e.causal ? "causal yes" : "causal", text: e.causal === null || e.causal === undefined ? "–" : (e.causal ? "yes" : "no")})]);
      });
      div.appendChild(el("table", {"class": "features automaton-edges"}, [el("thead", {}, [el("tr", {},
        ["Edge", "Lift", "Logit support", "j fires: pinned", "ablated", "natural", "Causal"].map(function (h) {
          return el("th", {text: h}); }))]), el("tbody", {}, rows)]));
      if (a.example) div.appendChild(el("p", {"class": "automaton-example"}, ["Example path: ",
        el("span", {"class": "tokchip", text: show(a.example)})]));
      sec.appendChild(div);
    });
    return sec;
  }

  // ------------------------------------------------------------------ routing
  function route() {
    var p = params();
    if (p.f !== undefined) { document.title = IDX.run + " feature " + p.f; renderFeature(parseInt(p.f, 10)); }
    else { document.title = "Features of " + IDX.run; renderIndex(p); }
  }
  if (!IDX) { app.textContent = "data/index.js is missing or failed to load."; return; }
  document.getElementById("run-title").textContent = IDX.run + " · " + IDX.n_features + " features · model " + IDX.model;
  buildSearch();
  window.addEventListener("hashchange", route);
  route();
})();
