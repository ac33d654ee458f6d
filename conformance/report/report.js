"use strict";
// Filters act on data-* attributes; their state lives in the URL hash (#area=..&status=..&backend=..),
// so a filtered view can be linked to, and is restored on load.
(function () {
  const form = document.getElementById("filters");
  const all = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const show = (el, visible) => el.classList.toggle("filtered", !visible);

  function state() {
    return { area: form.area.value, status: form.status.value, backend: form.backend.value };
  }

  function apply() {
    const { area, status, backend } = state();
    const areaOk = (a) => !area || a === area;
    const engineOk = (e) => !backend || e === backend;
    all("[data-engine]", document.getElementById("matrix")).forEach((el) => show(el, engineOk(el.dataset.engine)));
    let shown = 0;
    all("tr.rule-row").forEach((row) => {
      const cells = all("td.cell", row).filter((c) => engineOk(c.dataset.engine));
      const visible = areaOk(row.dataset.area) && (!status || cells.some((c) => c.dataset.status === status));
      show(row, visible);
      shown += visible ? 1 : 0;
    });
    all("#matrix tbody").forEach((body) => show(body, all("tr.rule-row:not(.filtered)", body).length > 0));
    all("#areas tbody tr").forEach((row) => show(row, (!row.dataset.area || areaOk(row.dataset.area)) && engineOk(row.dataset.engine)));
    all("article.card").forEach((card) => {
      const entries = all(".entry", card);
      entries.forEach((en) => show(en, engineOk(en.dataset.engine) && (!status || en.dataset.status === status)));
      show(card, areaOk(card.dataset.area) && entries.some((en) => !en.classList.contains("filtered")));
    });
    all("section.kind").forEach((kind) => show(kind, all("article.card:not(.filtered)", kind).length > 0));
    all("section.engine").forEach((el) => show(el, engineOk(el.dataset.engine)));
    document.getElementById("shown").textContent =
      `${shown} of ${all("tr.rule-row").length} rules shown, ${all("article.card:not(.filtered)").length} triage cards`;
    const hash = new URLSearchParams(Object.entries(state()).filter(([, v]) => v)).toString();
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  }

  function restore() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const name of ["area", "status", "backend"]) {
      const value = params.get(name) || "";
      if (Array.from(form[name].options).some((o) => o.value === value)) form[name].value = value;
    }
  }

  // A repro's part shared by all repros of an engine is held once, in a hidden <pre> named by data-shared.
  function reproText(repro) {
    const shared = repro.dataset.shared ? document.getElementById(repro.dataset.shared).textContent : "";
    return repro.querySelector(".head").textContent + shared + repro.querySelector(".tail").textContent;
  }

  async function copy(button) {
    const text = reproText(button.closest(".repro"));
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      // file:// pages may lack the async clipboard: fall back to a selected textarea
      const area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.dataset.copied = String(text.length);
    button.textContent = "Copied";
  }

  form.addEventListener("change", apply);
  window.addEventListener("hashchange", () => {
    restore();
    apply();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (button) copy(button);
  });
  restore();
  apply();
})();
