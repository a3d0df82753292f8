// gradc report: the links between the panes (inlined by compiler/report.py).
// Every link is a data attribute written by the page: a graph node knows its kernel and
// its model-file line, a kernel card its lines, a model-file line its nodes and kernels.
(function () {
  "use strict";

  function all(selector) { return Array.prototype.slice.call(document.querySelectorAll(selector)); }
  function one(selector) { return document.querySelector(selector); }
  function words(text) { return text ? text.split(" ").filter(Boolean) : []; }
  function attr(name, value) { return "[" + name + '="' + value + '"]'; }

  function mark(selector, cls) {
    var found = all(selector);
    found.forEach(function (el) { el.classList.add(cls); });
    return found;
  }

  function clear() {
    all(".hl, .sel").forEach(function (el) { el.classList.remove("hl", "sel"); });
    document.body.classList.add("selecting");
  }

  // Scroll the pane that holds `el` (not the page) so that `el` is in view.
  function reveal(el) {
    if (!el) { return; }
    var box = el.closest(".scroll");
    if (!box) { return; }
    var r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    if (r.top < b.top || r.bottom > b.bottom) {
      box.scrollTop += r.top - b.top - (b.height - r.height) / 2;
    }
    if (r.left < b.left || r.right > b.right) {
      box.scrollLeft += r.left - b.left - (b.width - r.width) / 2;
    }
  }

  function showCode(kernel) {
    all(".kcode").forEach(function (el) { el.hidden = el.dataset.kernel !== kernel; });
  }

  function status(text) { one("#status").textContent = text; }

  function markKernels(kernels, cls) {
    kernels.forEach(function (k) {
      mark(".kcard" + attr("data-kernel", k) + ", .gkernel" + attr("data-kernel", k), cls);
    });
    if (kernels.length) {
      showCode(kernels[0]);
      reveal(one(".kcard" + attr("data-kernel", kernels[0])));
    }
  }

  function selectNode(id) {
    var node = one(".gnode" + attr("data-node", id));
    clear();
    if (!node) { return; }
    var kernel = node.dataset.kernel;
    var kernels = kernel ? [kernel] : words(node.dataset.reads);
    if (kernel) { mark(".gnode" + attr("data-kernel", kernel), "hl"); }
    mark(".edges path" + attr("data-from", id) + ", .edges path" + attr("data-to", id), "hl");
    mark(".gnode" + attr("data-node", id) + ", .prov" + attr("data-node", id) +
         ", .knode" + attr("data-node", id), "sel");
    markKernels(kernels, "hl");
    if (node.dataset.line) {
      reveal(mark(".src-line" + attr("data-line", node.dataset.line), "sel")[0]);
    }
    reveal(node);
    status(node.querySelector("title").textContent);
  }

  function selectKernel(kernel) {
    clear();
    var card = one(".kcard" + attr("data-kernel", kernel));
    mark(".kcard" + attr("data-kernel", kernel) + ", .gkernel" + attr("data-kernel", kernel), "sel");
    var nodes = mark(".gnode" + attr("data-kernel", kernel), "hl");
    mark(".edges path" + attr("data-kfrom", kernel) + ", .edges path" + attr("data-kto", kernel), "hl");
    var lines = card ? words(card.dataset.lines) : [];
    var rows = [];
    lines.forEach(function (l) { rows = rows.concat(mark(".src-line" + attr("data-line", l), "hl")); });
    showCode(kernel);
    reveal(nodes[0] || one(".gkernel" + attr("data-kernel", kernel)));
    reveal(rows[0]);
    reveal(card);
    status(kernel + ": " + (card ? card.dataset.count : nodes.length) + " nodes" +
           (lines.length ? ", model lines " + lines.join(", ") : ""));
  }

  function selectLine(line) {
    var row = one(".src-line" + attr("data-line", line));
    clear();
    row.classList.add("sel");
    var nodes = [];
    words(row.dataset.nodes).forEach(function (n) {
      nodes = nodes.concat(mark(".gnode" + attr("data-node", n), "hl"));
    });
    var kernels = words(row.dataset.kernels);
    markKernels(kernels, "hl");
    reveal(nodes[0] || (kernels.length ? one(".gkernel" + attr("data-kernel", kernels[0])) : null));
    status("line " + line + ": " + words(row.dataset.nodes).length + " nodes in " +
           kernels.length + " kernels");
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest(".gnode, .gkernel, .kcard, .src-line.linked, .prov, .knode");
    if (!target) { return; }
    if (target.classList.contains("gnode")) {
      selectNode(target.dataset.node);
    } else if (target.classList.contains("prov") || target.classList.contains("knode")) {
      if (one(".gnode" + attr("data-node", target.dataset.node))) {
        selectNode(target.dataset.node);
      } else {  // a collapsed graph draws kernels, not nodes
        selectKernel(target.closest(".kcode").dataset.kernel);
      }
    } else if (target.classList.contains("gkernel") || target.classList.contains("kcard")) {
      selectKernel(target.dataset.kernel);
    } else {
      selectLine(target.dataset.line);
    }
  });
}());
