// Dashboard behaviour: forms post to the JSON API with the session's CSRF token (a form with
// data-confirm asks first: what it does cannot be undone), and the timeline asks for sightings
// newer than the newest shown every few seconds.
(function () {
  const csrf = document.body.dataset.csrf;
  document.querySelectorAll("form[data-api]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
      const body = new FormData(form);
      body.append("csrf", csrf);
      const method = form.dataset.method || "POST";
      const response = await fetch(form.dataset.api, { method, body, credentials: "same-origin" });
      if (!response.ok) {
        const detail = await response.json().catch(() => ({ detail: response.statusText }));
        alert(detail.detail || "request failed");
        return;
      }
      if (form.dataset.then) location.assign(form.dataset.then); else location.reload();
    });
  });
  const timeline = document.getElementById("timeline");
  if (!timeline) return;
  async function poll() {
    const newest = timeline.dataset.newest || "0";
    const camera = new URLSearchParams(location.search).get("camera");
    const url = `/api/sightings?after_id=${newest}&limit=100` + (camera ? `&camera=${encodeURIComponent(camera)}` : "");
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    for (const item of data.items.reverse()) {
      const figure = document.createElement("figure");
      figure.className = "face";
      figure.dataset.sighting = item.sighting_id;
      const link = document.createElement("a");
      link.href = `/sightings/${item.sighting_id}`;
      const img = document.createElement(item.crop_url ? "img" : "div");
      if (item.crop_url) { img.src = item.crop_url; img.width = 96; img.height = 96; img.alt = `face ${item.sighting_id}`; }
      else { img.className = "erased"; img.textContent = "erased"; }
      link.append(img);
      const caption = document.createElement("figcaption");
      caption.textContent = `${item.person || (item.cluster_id ? "unknown #" + item.cluster_id : "unknown")} · ${item.camera || ""}`;
      figure.append(link, caption);
      timeline.prepend(figure);
      timeline.dataset.newest = Math.max(Number(timeline.dataset.newest), item.sighting_id);
      document.getElementById("empty")?.remove();
    }
  }
  setInterval(poll, 2000);
})();
