// Shared by the dashboard's pages: small helpers, no framework.
"use strict";
window.distbuild = {
  // stateWord turns "STEP_STATE_RUNNING" into "running", as the server does.
  stateWord(s) {
    const i = s.indexOf("STATE_");
    return (i >= 0 ? s.slice(i + 6) : s).toLowerCase();
  },
  // setState shows a state word in an element whose class names it.
  setState(el, word) {
    if (!el) return;
    el.className = el.className.replace(/\b(waiting|ready|running|finished|failed|skipped|cancelled|resolving|succeeded|unspecified)\b/g, "").trim();
    el.classList.add("state", word);
    if (!el.querySelector("a")) el.textContent = word;
  },
  time(s) {
    if (!s) return "";
    const d = new Date(s), p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },
  duration(s) {
    if (!s) return "";
    const secs = parseFloat(s);
    if (secs < 60) return secs.toFixed(1) + "s";
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), r = Math.round(secs % 60);
    return (h ? h + "h" : "") + (h || m ? m + "m" : "") + r + "s";
  },
  // refresh fetches the page again and swaps in the parts named by their
  // ids, so the page shows what the server now renders without a reload.
  async refresh(ids) {
    const resp = await fetch(location.pathname, { cache: "no-store" });
    if (!resp.ok) return;
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    for (const id of ids) {
      const now = document.getElementById(id), next = doc.getElementById(id);
      if (now && next) now.replaceWith(document.importNode(next, true));
    }
  },
};
