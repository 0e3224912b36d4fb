// The merchandiser's page: drives /api/v1/products/ID/copy* (see web/copy_api.py).
(() => {
  const root = document.querySelector("[data-copywriter]");
  if (!root) return;
  const $ = (name) => root.querySelector(`[data-cw-${name}]`);
  const state = { product: null, version: null };
  const keyInput = $("key");
  keyInput.value = localStorage.getItem("shoplens-api-key") || "";
  keyInput.addEventListener("change", () => localStorage.setItem("shoplens-api-key", keyInput.value));
  const api = (path) => `/api/v1/products/${encodeURIComponent(state.product)}/copy${path}`;
  const status = (text) => { $("status").textContent = text; };
  const headers = () => ({ "Content-Type": "application/json", Authorization: `Bearer ${keyInput.value}` });
  const escapeHtml = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));

  async function call(method, path, body) {
    const res = await fetch(api(path), { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(data.error ? data.error.message : `HTTP ${res.status}`);
    return data;
  }

  function highlight(text, claims) {
    let html = "", at = 0;
    for (const c of claims.filter((c) => c.start >= at).sort((a, b) => a.start - b.start)) {
      html += escapeHtml(text.slice(at, c.start));
      const cls = c.supported ? "ok" : "bad";
      html += `<mark class="${cls}" title="${escapeHtml(c.reason || c.kind + ': in the facts')}">${escapeHtml(text.slice(c.start, c.end))}</mark>`;
      at = c.end;
    }
    $("highlight").innerHTML = html + escapeHtml(text.slice(at));
  }

  async function check() {
    const text = $("text").value;
    const data = await call("POST", "/check", { text });
    highlight(text, data.claims);
    return data;
  }

  function showVersion(v) {
    state.version = v.version;
    $("editor").hidden = false;
    $("version").textContent = v.version;
    $("vstatus").textContent = `${v.status}${v.edited ? ", edited" : ""} · ${v.model} · ${v.author || ""}`;
    $("text").value = v.text;
    $("flags").innerHTML = (v.flagged || []).map((c) =>
      `<li>${escapeHtml(c.action)}: <b>${escapeHtml(c.text)}</b> (${escapeHtml(c.reason)})</li>`).join("");
    check().catch((e) => status(e.message));
  }

  async function loadProduct(id) {
    state.product = id;
    const res = await fetch(api(""));
    const data = await res.json();
    if (!res.ok) { status(data.error.message); return; }
    $("panel").hidden = false;
    $("title").textContent = `${data.title} (${id})`;
    $("facts").innerHTML = Object.entries(data.facts).map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(String(v))}</dd>`).join("");
    $("source").textContent = data.source_description || "(no source description)";
    $("versions").innerHTML = data.versions.map((v) =>
      `<li data-v="${v.version}"><a href="#">v${v.version}</a> <small>${v.status}${v.edited ? ", edited" : ""} · ${escapeHtml(v.created_at || "")}</small><br>${escapeHtml(v.text)}</li>`).join("");
    $("versions").querySelectorAll("li").forEach((li) => li.querySelector("a").addEventListener("click", (e) => {
      e.preventDefault();
      showVersion(data.versions.find((v) => v.version === Number(li.dataset.v)));
    }));
    if (data.versions.length) showVersion(data.versions[0]); else $("editor").hidden = true;
  }

  async function search() {
    const q = $("query").value.trim();
    const res = await fetch(`/api/v1/copy/products?q=${encodeURIComponent(q)}&status=${$("filter").value}`);
    const data = await res.json();
    $("products").innerHTML = (data.products || []).map((p) =>
      `<li data-id="${escapeHtml(p.id)}">${escapeHtml(p.title)} <small>· ${escapeHtml(p.brand || "")} · copy: ${p.copy_status}</small></li>`).join("");
    $("products").querySelectorAll("li").forEach((li) => li.addEventListener("click", () => loadProduct(li.dataset.id)));
  }

  async function generate() {
    const stream = $("stream");
    stream.textContent = "";
    status("writing…");
    const body = { length: $("length").value, tone: $("tone").value, bullets: $("bullets").checked };
    const res = await fetch(api(""), { method: "POST", headers: { ...headers(), Accept: "text/event-stream" }, body: JSON.stringify(body) });
    if (!res.ok) { const d = await res.json().catch(() => ({})); status(d.error ? d.error.message : `HTTP ${res.status}`); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        const event = (chunk.match(/^event: (.*)$/m) || [])[1];
        const data = JSON.parse((chunk.match(/^data: (.*)$/m) || [])[1] || "{}");
        if (event === "token") stream.textContent += data.text;
        else if (event === "error") status(data.error.message);
        else if (event === "done") { status(`stored as version ${data.version}; checked`); await loadProduct(state.product); }
      }
    }
  }

  const act = (fn) => async () => { try { await fn(); } catch (e) { status(e.message); } };
  $("query").addEventListener("input", act(search));
  $("filter").addEventListener("change", act(search));
  $("generate").addEventListener("click", act(generate));
  $("check").addEventListener("click", act(check));
  $("save").addEventListener("click", act(async () => {
    const v = await call("POST", `/${state.version}/edit`, { text: $("text").value });
    status(`saved as version ${v.version}`); await loadProduct(state.product);
  }));
  $("approve").addEventListener("click", act(async () => {
    await call("POST", `/${state.version}/approve`); status(`version ${state.version} approved`); await loadProduct(state.product);
  }));
  $("discard").addEventListener("click", act(async () => {
    await call("POST", `/${state.version}/discard`); status(`version ${state.version} discarded`); await loadProduct(state.product);
  }));
  if (root.dataset.product) loadProduct(root.dataset.product); else search();
})();
