// The status page's refresh: every few seconds, fetch this same URL with part=live (the
// server renders the live region with the same template) and swap it in. No page reload, no
// HTML built here: the nodes come from the server's escaped templates, parsed inertly
// (DOMParser runs no script). With JavaScript off the page is whole; only this stops.
"use strict";
(function () {
  const live = document.getElementById("live");
  const every = live ? Number(live.dataset.refresh) : 0;
  if (!live || !(every > 0)) {
    return;
  }
  const url = new URL(window.location.href);
  url.searchParams.set("part", "live");
  let refreshes = 0;
  let failures = 0;
  async function refresh() {
    try {
      const answer = await fetch(url, { credentials: "same-origin", redirect: "error" });
      if (!answer.ok) {
        throw new Error(String(answer.status));
      }
      const text = await answer.text();
      const parsed = new DOMParser().parseFromString(text, "text/html");
      const nodes = Array.from(parsed.body.childNodes, (n) => document.importNode(n, true));
      live.replaceChildren(...nodes);
      refreshes += 1;
      failures = 0;
      live.dataset.refreshes = String(refreshes);
      document.body.classList.remove("stale");
    } catch (err) {
      failures += 1;
      document.body.classList.add("stale");
    }
    if (failures < 20) {
      window.setTimeout(refresh, every * 1000 * Math.min(1 + failures, 10));
    }
  }
  window.setTimeout(refresh, every * 1000);
})();
