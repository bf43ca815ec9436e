// Tails a running step's output through the build's server-sent events;
// when the step ends, swaps in its stored log and performance graphs.
"use strict";
(function () {
  const me = document.currentScript;
  const d = window.distbuild;
  if (me.dataset.running !== "true") return;
  const id = me.dataset.build, step = me.dataset.step;
  const log = document.getElementById("log");
  const maxChars = 2 << 20;
  const decoder = new TextDecoder();

  const url = `/api/builds/${encodeURIComponent(id)}/events?output=${encodeURIComponent(step)}&from=${encodeURIComponent(me.dataset.from || "0")}`;
  const es = new EventSource(url);
  es.addEventListener("step_output", (m) => {
    const out = JSON.parse(m.data).stepOutput;
    if (out.stepName !== step || !out.data) return;
    const bytes = Uint8Array.from(atob(out.data), (c) => c.charCodeAt(0));
    log.append(decoder.decode(bytes, { stream: true }));
    if (log.textContent.length > maxChars) log.textContent = log.textContent.slice(-maxChars);
    log.scrollTop = log.scrollHeight;
  });
  function ended(kind) {
    return (m) => {
      const e = JSON.parse(m.data)[kind];
      if (e.step.stepName !== step) return;
      d.setState(document.getElementById("step-state"), kind === "stepFinished" ? "finished" : "failed");
      es.close();
      // The stored log and the profile are what the page shows now.
      d.refresh(["main"]);
    };
  }
  es.addEventListener("step_finished", ended("stepFinished"));
  es.addEventListener("step_failed", ended("stepFailed"));
  es.addEventListener("end", () => es.close());
})();
