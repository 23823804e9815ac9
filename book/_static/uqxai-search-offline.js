// Search result snippets when the book is read from file:// (loaded on search.html only, by book/_ext).
//
// Sphinx's searchtools.js builds each hit's summary by fetch()ing the hit's page
// (DOCUMENTATION_OPTIONS.SHOW_SEARCH_SUMMARY) and reading the text of its [role="main"] element.
// Browsers refuse fetch() of file:// URLs, so every hit logged errors and showed no snippet.
// At build time book/_ext writes _static/uqxai_search_text.js: window.UQXAI_SEARCH_TEXT maps each
// page's docname to its main content reduced to text and the ids of its sections
// ('<div role="main">…</div>'), which is all makeSearchSummary reads. On file:// this shim answers
// the summary fetches from that map; over http(s) it does nothing.
(function () {
  if (window.location.protocol !== "file:" || typeof window.fetch !== "function") return;
  var realFetch = window.fetch.bind(window);

  function docnameOf(url) {
    // the page a summary request asks for, as a docname ("book/_executed/ecg_sue"), or null
    var root = document.documentElement.dataset.content_root || "";
    var rootHref = new URL(root, window.location.href).href;
    var href = new URL(url, window.location.href).href.split("#")[0].split("?")[0];
    if (href.indexOf(rootHref) !== 0) return null;
    var doc = decodeURIComponent(href.slice(rootHref.length));
    var suffix = (window.DOCUMENTATION_OPTIONS && DOCUMENTATION_OPTIONS.FILE_SUFFIX) || ".html";
    if (doc.slice(-suffix.length) !== suffix) return null;
    return doc.slice(0, -suffix.length);
  }

  window.fetch = function (input, init) {
    var url = typeof input === "string" ? input : input && input.url;
    var doc = url ? docnameOf(url) : null;
    if (doc === null) return realFetch(input, init);
    var texts = window.UQXAI_SEARCH_TEXT || {};
    // a page without stored text gets an empty answer: no snippet, but no failed request either
    var body = Object.prototype.hasOwnProperty.call(texts, doc) ? texts[doc] : "";
    return Promise.resolve(new Response(body, { status: 200, headers: { "Content-Type": "text/html" } }));
  };
})();
