// Refreshes the part of a page marked data-refresh="SECONDS" in place; nothing else.
// Without this script the page works the same, refreshed by its link.
(function () {
  "use strict";
  var live = document.querySelector("[data-refresh]");
  if (!live || !window.fetch || !window.DOMParser) return;
  var every = 1000 * Math.max(2, parseInt(live.getAttribute("data-refresh"), 10) || 5);
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected || !response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(live.id);
        if (fresh) live.innerHTML = fresh.innerHTML;
        live.setAttribute("data-refreshed", new Date().toISOString());
      })
      .catch(function () { /* the next tick tries again; the page says when it was drawn */ });
  }
  window.setInterval(refresh, every);
})();
