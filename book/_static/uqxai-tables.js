// Tables fit the text column (loaded on every page by book/_ext/uqxai_book.py).
// The CSS lets cells wrap between words. A table that is still wider than the box it sits in gets,
// step by step, a smaller font (uqxai-tight) and then breaks inside the words of its header
// (uqxai-tighter); cells never break inside a word or number. What still does not fit scrolls in
// its own box (and book/tools/check_pages.py reports it). Runs when the page has loaded, when the
// window is resized and when a folded section is opened.
(function () {
  function available(table) {
    var box = table.parentElement;
    while (box && box.clientWidth === 0) box = box.parentElement;
    if (!box) return Infinity;
    var cs = getComputedStyle(box);
    return box.clientWidth - parseFloat(cs.paddingLeft || 0) - parseFloat(cs.paddingRight || 0);
  }
  function fits(table, width) {
    return table.getBoundingClientRect().width <= width + 0.5;
  }
  function fit(root) {
    var tables = (root || document).querySelectorAll("article.bd-article table, .bd-article table");
    Array.prototype.forEach.call(tables, function (t) {
      if (!t.offsetParent) return; // folded: fitted when opened
      t.classList.remove("uqxai-tight", "uqxai-tighter");
      var width = available(t);
      if (fits(t, width)) return;
      t.classList.add("uqxai-tight");
      if (fits(t, width)) return;
      t.classList.add("uqxai-tighter");
    });
  }
  window.uqxaiFitTables = fit;
  document.addEventListener("DOMContentLoaded", function () { fit(); });
  window.addEventListener("load", function () { fit(); });
  var timer = null;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { fit(); }, 100);
  });
  document.addEventListener("toggle", function (e) {
    if (e.target && e.target.open) fit(e.target);
  }, true);
})();
