(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("carenet-data").textContent);
  var nodes = new vis.DataSet(data.nodes);
  var edges = new vis.DataSet(data.edges);
  var container = document.getElementById("graph");
  var network = new vis.Network(container, { nodes: nodes, edges: edges }, data.options);
  var view = { network: network, nodes: nodes, edges: edges, kind: data.kind,
               stabilized: false, step: null, open: open, show: show };
  window.carenetView = view;

  function stopPhysics() {
    if (view.stabilized) { return; }
    network.setOptions({ physics: false });
    view.stabilized = true;
    document.body.setAttribute("data-stabilized", "true");
  }
  network.once("stabilizationIterationsDone", stopPhysics);
  network.once("stabilized", stopPhysics);
  // a view without physics, or one whose stabilisation event came before this handler
  window.setTimeout(stopPhysics, 8000);

  var details = document.getElementById("details");
  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) { el.className = cls; }
    return el;
  }
  function show(id) {
    var n = nodes.get(id);
    if (!n) { return; }
    while (details.firstChild) { details.removeChild(details.firstChild); }
    details.appendChild(text("h2", n.heading || String(n.id)));
    var dl = document.createElement("dl");
    (n.info || []).forEach(function (pair) {
      dl.appendChild(text("dt", pair[0]));
      dl.appendChild(text("dd", pair[1]));
    });
    details.appendChild(dl);
    if (n.reason) { details.appendChild(text("p", n.reason, "reason")); }
    if (n.url) {
      var a = text("a", n.linkText || "Open its view");
      a.setAttribute("href", n.url);
      var p = document.createElement("p");
      p.appendChild(a);
      details.appendChild(p);
    }
    details.setAttribute("data-node", String(n.id));
  }
  function open(id) {
    var n = nodes.get(id);
    if (n && n.url) { window.location.href = n.url; }
  }
  network.on("hoverNode", function (p) { show(p.node); });
  network.on("click", function (p) {
    if (p.nodes.length) { show(p.nodes[0]); open(p.nodes[0]); }
  });

  if (data.cascade) {
    var slider = document.getElementById("step");
    var play = document.getElementById("play");
    var label = document.getElementById("step-label");
    var curve = data.cascade.curve || [];
    var base = {};
    data.nodes.forEach(function (n) { base[n.id] = n.color; });
    function setStep(s) {
      s = Math.max(0, Math.min(data.cascade.maxStep, s | 0));
      view.step = s;
      slider.value = String(s);
      var shown = 0;
      var updates = data.nodes.filter(function (n) { return !n.aggregate; }).map(function (n) {
        var on = n.step !== null && n.step !== undefined && n.step >= 0 && n.step <= s;
        if (on) { shown += 1; }
        return { id: n.id, color: on ? base[n.id] : data.cascade.faded,
                 font: { color: on ? "#1b1b1b" : "#9a9a9a" } };
      });
      nodes.update(updates);
      var expected = curve.length ? curve[Math.min(s, curve.length - 1)] : null;
      label.textContent = "step " + s + " of " + data.cascade.maxStep + ": " + shown +
        " customers shown are reached by this step (median)" +
        (expected === null ? "" : "; expected reached by this step: " + expected.toFixed(1) +
         " of " + data.cascade.total.toFixed(1));
    }
    var timer = null;
    function stop() {
      if (timer !== null) { window.clearInterval(timer); timer = null; }
      play.textContent = "Play";
      play.setAttribute("aria-pressed", "false");
    }
    play.addEventListener("click", function () {
      if (timer !== null) { stop(); return; }
      var s = view.step >= data.cascade.maxStep ? 0 : view.step;
      setStep(s);
      play.textContent = "Pause";
      play.setAttribute("aria-pressed", "true");
      timer = window.setInterval(function () {
        if (view.step >= data.cascade.maxStep) { stop(); return; }
        setStep(view.step + 1);
      }, data.cascade.interval || 800);
    });
    slider.addEventListener("input", function () { stop(); setStep(parseInt(slider.value, 10)); });
    view.setStep = setStep;
    setStep(data.cascade.maxStep);
  }
})();
