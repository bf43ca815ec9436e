// Follows a live build through its server-sent events: each step's state
// changes in place, and the Gantt chart is redrawn as steps start and end.
"use strict";
(function () {
  const me = document.currentScript;
  const d = window.distbuild;
  const id = me.dataset.build;
  if (me.dataset.live !== "true") return;

  let ganttTimer = null;
  function redrawGantt() {
    clearTimeout(ganttTimer);
    ganttTimer = setTimeout(async () => {
      const resp = await fetch(`/builds/${encodeURIComponent(id)}/gantt.svg`, { cache: "no-store" });
      if (resp.ok) document.getElementById("gantt").innerHTML = await resp.text();
    }, 250);
  }

  function stepRow(name) {
    return document.querySelector(`#steps tr[data-step="${CSS.escape(name)}"]`);
  }
  function setStep(name, word, fields) {
    const row = stepRow(name);
    if (row) {
      d.setState(row.querySelector(".state"), word);
      for (const [cls, value] of Object.entries(fields || {})) {
        const td = row.querySelector("." + cls);
        if (td && value !== undefined) td.textContent = value;
      }
    }
    for (const el of document.querySelectorAll(`#strata [data-step="${CSS.escape(name)}"]`)) {
      d.setState(el.matches("li") ? el : el.querySelector("h3 .state"), word);
    }
  }

  const es = new EventSource(`/api/builds/${encodeURIComponent(id)}/events?from=${encodeURIComponent(me.dataset.from || "0")}`);
  es.addEventListener("graph_resolved", () => d.refresh(["steps", "strata", "gantt"]));
  es.addEventListener("step_started", (m) => {
    const e = JSON.parse(m.data).stepStarted;
    setStep(e.step.stepName, "running", { worker: e.worker, attempts: e.attempt, duration: "", reason: "" });
    redrawGantt();
  });
  es.addEventListener("step_finished", (m) => {
    const e = JSON.parse(m.data).stepFinished;
    setStep(e.step.stepName, "finished", { worker: e.worker, duration: d.duration(e.duration) });
    redrawGantt();
  });
  es.addEventListener("step_failed", (m) => {
    const e = JSON.parse(m.data).stepFailed;
    setStep(e.step.stepName, e.willRetry ? "ready" : "failed", { worker: e.worker, attempts: e.attempt, reason: e.reason });
    redrawGantt();
  });
  function ended(word) {
    return () => {
      d.setState(document.getElementById("build-state"), word);
      document.getElementById("live-note").textContent = "";
      es.close();
      d.refresh(["steps", "strata", "gantt"]);
    };
  }
  es.addEventListener("build_finished", ended("succeeded"));
  es.addEventListener("build_failed", ended("failed"));
  es.addEventListener("build_cancelled", ended("cancelled"));
  es.addEventListener("end", () => es.close());
})();
