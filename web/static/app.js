// ShopLens shopper pages: search-box suggestions and photo upload (drag and drop, file picker, phone camera).
(function () {
  "use strict";

  function debounce(fn, ms) {
    let timer;
    return function (...args) { clearTimeout(timer); timer = setTimeout(() => fn.apply(this, args), ms); };
  }

  function setupSuggest(form) {
    const input = form.querySelector("[data-suggest-input]");
    const list = form.querySelector("[data-suggest-list]");
    if (!input || !list) return;
    let items = [], active = -1, lastQuery = "";

    function close() { list.hidden = true; active = -1; }
    function render() {
      list.innerHTML = "";
      items.forEach((s, i) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", i === active ? "true" : "false");
        li.textContent = s.text;
        const n = document.createElement("small");
        n.textContent = s.count;
        li.appendChild(n);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); input.value = s.text; close(); form.submit(); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
    }
    const fetchSuggestions = debounce(async () => {
      const q = input.value.trim();
      if (q.length < 2) { items = []; render(); return; }
      lastQuery = q;
      try {
        const r = await fetch("/api/v1/suggest?" + new URLSearchParams({ q, n: 8 }));
        if (!r.ok || q !== lastQuery) return;
        items = (await r.json()).suggestions || [];
        active = -1;
        render();
      } catch (_) { /* suggestions are a nicety: stay quiet when they fail */ }
    }, 120);

    input.addEventListener("input", fetchSuggestions);
    input.addEventListener("blur", () => setTimeout(close, 100));
    input.addEventListener("keydown", (e) => {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { active = Math.min(items.length - 1, active + 1); render(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = Math.max(-1, active - 1); render(); e.preventDefault(); }
      else if (e.key === "Enter" && active >= 0) { input.value = items[active].text; close(); }
      else if (e.key === "Escape") { close(); }
    });
  }

  const ALLOWED = ["image/jpeg", "image/png", "image/webp", "image/gif"];

  function setupPhoto(form) {
    const status = form.querySelector("[data-photo-status]");
    function say(text) { if (status) status.textContent = text; }
    function submitFile(file, input) {
      if (!file) return;
      if (file.type && !ALLOWED.includes(file.type) && !file.type.startsWith("image/")) {
        say("That isn't a photo we can read: use JPEG, PNG, WebP or GIF."); return;
      }
      if (input.files[0] !== file) {
        const dt = new DataTransfer();
        dt.items.add(file);
        input.files = dt.files;
      }
      // Only the input that holds the photo may be sent, so the camera and picker inputs don't clash.
      form.querySelectorAll("[data-photo-input]").forEach((other) => { other.disabled = other !== input; });
      say("Searching with your photo…");
      form.submit();
    }
    const inputs = form.querySelectorAll("[data-photo-input]");
    inputs.forEach((input) => input.addEventListener("change", () => submitFile(input.files[0], input)));
    if (form.hasAttribute("data-dropzone")) {
      ["dragenter", "dragover"].forEach((t) => form.addEventListener(t, (e) => { e.preventDefault(); form.classList.add("over"); }));
      ["dragleave", "drop"].forEach((t) => form.addEventListener(t, (e) => { e.preventDefault(); form.classList.remove("over"); }));
      form.addEventListener("drop", (e) => {
        const file = e.dataTransfer && e.dataTransfer.files[0];
        if (file) submitFile(file, inputs[0]);
      });
    }
    window.addEventListener("pageshow", () => inputs.forEach((i) => { i.disabled = false; }));
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-suggest]").forEach(setupSuggest);
    document.querySelectorAll("[data-photo-form]").forEach(setupPhoto);
  });
})();
