// Keeps the builds list current by polling the JSON API.
"use strict";
(function () {
  const d = window.distbuild;
  const body = document.querySelector("#builds tbody");
  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  async function poll() {
    try {
      const resp = await fetch("/api/builds", { cache: "no-store" });
      if (!resp.ok) return;
      const builds = (await resp.json()).builds || [];
      if (builds.length === 0) return;
      const rows = builds.map((b) => {
        const tr = document.createElement("tr");
        tr.className = "build";
        tr.dataset.build = b.buildId;
        const a = document.createElement("a");
        a.href = "/builds/" + encodeURIComponent(b.buildId);
        a.textContent = b.buildId;
        cell(tr, "").appendChild(a);
        const st = d.stateWord(b.state || "");
        cell(tr, st, "state " + st);
        cell(tr, (b.request || {}).morphologyPath || "");
        cell(tr, `${b.finishedSteps || 0} / ${b.totalSteps || 0}` + (b.failedSteps ? ` (${b.failedSteps} failed)` : ""));
        cell(tr, d.time(b.created));
        cell(tr, d.time(b.ended));
        return tr;
      });
      body.replaceChildren(...rows);
    } catch (e) {
      // The controller is away; try again at the next tick.
    }
  }
  setInterval(poll, 2000);
})();
