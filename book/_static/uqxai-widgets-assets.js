// Glue between the vendored Jupyter widget manager, require.js and MathJax 3 (no network needed).
// Loaded on pages with widgets, after require.js and before embed-amd.js (nb_ipywidgets_js in _config.yml).
(function () {
  var here = document.currentScript && document.currentScript.src;
  // 1. The html-manager finds its icon fonts relative to the URL of its AMD module
  //    "@jupyter-widgets/html-manager/dist/libembed-amd"; by default that resolves next to each
  //    page (<page dir>/@jupyter-widgets/html-manager/dist/*.woff2, 404s). Map it to _static.
  if (here && window.require && window.require.config) {
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": new URL("vendor/html-manager", here).href },
    });
  }
  // 2. Widgets typeset their labels with the MathJax 2 API (MathJax.Hub.Queue); the book loads
  //    MathJax 3. Offer the old entry point on top of MathJax 3 once its (deferred) script has run.
  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {
      Queue: function () {
        var elements = [];
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          if (Array.isArray(job) && job[0] === "Typeset" && job[2]) elements.push(job[2]);
        }
        if (!elements.length) return;
        var run = function () {
          return mj.typesetPromise ? mj.typesetPromise(elements) : null;
        };
        if (mj.startup && mj.startup.promise) mj.startup.promise.then(run);
        else run();
      },
    };
  });
})();
