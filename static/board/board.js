/* Mogplex board page script: ages that advance, client-side STALE, connection
   banner, reload on a new app version, changed-row highlight, title and favicon.
   Plain JS, no framework; no upstream data is ever evaluated. */
(function () {
  "use strict";
  var body = document.body;
  var staleSeconds = Number(body.dataset.staleSeconds || 90);
  var offsetMs = 0; // server clock minus browser clock
  var lastGood = new Date();
  var flashState = {};
  var sigsBefore = null;
  window.boardPage = { loadedAt: Date.now(), swaps: 0 };

  function board() { return document.getElementById("board"); }
  function serverNow() { return (Date.now() + offsetMs) / 1000; }

  function syncClock() {
    var el = board();
    if (el && el.dataset.serverTime) offsetMs = Number(el.dataset.serverTime) * 1000 - Date.now();
  }

  function ageText(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

  function grace() {
    var el = board();
    var refresh = el ? Number(el.dataset.refresh || 5) : 5;
    return 2 * refresh + 5; // the server re-renders at the threshold; allow a couple of polls
  }

  function tick() {
    var now = serverNow();
    document.querySelectorAll("time.tick[data-epoch]").forEach(function (el) {
      setText(el, ageText(now - Number(el.dataset.epoch)) + (el.dataset.suffix || ""));
    });
    var anyStale = false;
    document.querySelectorAll(".fresh[data-fetched-at]").forEach(function (el) {
      if (!el.dataset.fetchedAt) { anyStale = true; return; }
      var age = now - Number(el.dataset.fetchedAt);
      // STALE as the server rendered it stands until the next swap; STALE the page
      // concluded itself (no news for too long) lifts when fresher times arrive.
      var serverStale = el.classList.contains("is-stale") && !el.dataset.clientStale;
      var stale = serverStale || age > staleSeconds + grace();
      var panel = el.closest(".panel");
      if (stale) {
        anyStale = true;
        setText(el, "STALE · data " + ageText(age) + " old");
        if (!el.classList.contains("is-stale")) { el.classList.add("is-stale"); el.dataset.clientStale = "1"; }
        if (panel && !panel.classList.contains("is-stale")) { panel.classList.add("is-stale"); panel.dataset.clientStale = "1"; }
      } else {
        if (el.dataset.clientStale) { el.classList.remove("is-stale"); delete el.dataset.clientStale; }
        if (panel && panel.dataset.clientStale) { panel.classList.remove("is-stale"); delete panel.dataset.clientStale; }
        setText(el, "updated " + ageText(age) + " ago");
      }
    });
    updateTitle(anyStale);
  }

  // An unchanged answer (204) carries no board, only what keeps the page true:
  // X-Board-Now (the server's clock) and X-Board-Fetched, a JSON object of when
  // each badge's data was last fetched, keyed like the badges' data-fetched-key.
  function applyUnchanged(xhr) {
    var serverTime = Number(xhr.getResponseHeader("X-Board-Now"));
    if (serverTime > 0) offsetMs = serverTime * 1000 - Date.now();
    var fetched = null;
    try { fetched = JSON.parse(xhr.getResponseHeader("X-Board-Fetched") || "null"); } catch (e) { fetched = null; }
    if (fetched && typeof fetched === "object") {
      document.querySelectorAll("#board [data-fetched-key]").forEach(function (el) {
        var at = fetched[el.dataset.fetchedKey];
        if (el.dataset.fetchedKey && typeof at === "number" && isFinite(at)) el.dataset.fetchedAt = at.toFixed(3);
      });
    }
    tick();
  }

  var ICON_COLOURS = { clear: "#1a7f37", active: "#0b62c4", attention: "#c0262d", stale: "#9a6700", lost: "#5b6270", cache: "#5b6270", revoked: "#5b6270" };
  var TITLE_WORDS = { clear: "✔ All clear", active: "▶ Running", attention: "✖ Attention", stale: "⚠ STALE", lost: "⚠ Connection lost", cache: "⚠ Cache unavailable", revoked: "⚠ Display link revoked" };
  var baseTitle = document.title;
  var shownState = null;

  function updateTitle(anyStale) {
    var el = board();
    if (!el) return;
    var state = el.dataset.overall || "clear";
    if (anyStale && state !== "attention") state = "stale";
    var banner = document.getElementById("connection-banner");
    if (!banner.hidden) state = banner.dataset.problem || "lost";
    if (state === shownState) return;
    shownState = state;
    document.title = TITLE_WORDS[state] + " · " + baseTitle;
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="' +
      ICON_COLOURS[state] + '"/></svg>';
    var link = document.getElementById("favicon");
    if (link) link.href = "data:image/svg+xml," + encodeURIComponent(svg);
  }

  function sigs() {
    var out = {};
    document.querySelectorAll("#board [data-sig][id]").forEach(function (el) { out[el.id] = el.dataset.sig; });
    return out;
  }

  function flashChanged() {
    if (!sigsBefore) return;
    document.querySelectorAll("#board [data-sig][id]").forEach(function (el) {
      if (sigsBefore[el.id] === el.dataset.sig) return;
      var next = flashState[el.id] === "a" ? "b" : "a";
      flashState[el.id] = next;
      el.setAttribute("data-flash", next);
    });
    sigsBefore = null;
  }

  // The server answers a poll it cannot serve because Redis is down with 503,
  // X-Board-Problem: cache and one sentence; htmx swaps nothing, so the page
  // keeps its last board and the banner says why (as text, never as HTML).
  // A revoked display link (410, X-Board-Problem: revoked) is final: the board
  // is hidden behind the server's sentence and the page stops polling.
  var revoked = false;

  function connectionLost(evt) {
    var banner = document.getElementById("connection-banner");
    var xhr = evt && evt.detail ? evt.detail.xhr : null;
    var problem = xhr && evt.type === "htmx:responseError" ? xhr.getResponseHeader("X-Board-Problem") : null;
    var said = problem ? (xhr.responseText || "").trim().slice(0, 200) : "";
    var why = banner.querySelector(".why");
    if (problem === "revoked") {
      revoked = true;
      body.classList.add("display-revoked");
      if (why) setText(why, said || "This display link was revoked; ask an operator for a new one.");
      banner.dataset.problem = "revoked";
    } else {
      if (why) setText(why, problem ? said || "Cache unavailable" : "Connection lost");
      banner.dataset.problem = problem ? "cache" : "lost";
    }
    setText(banner.querySelector(".since"), lastGood.toTimeString().slice(0, 8));
    if (banner.hidden) banner.hidden = false;
    shownState = null;
    updateTitle(false);
  }

  function connectionBack() {
    lastGood = new Date();
    var banner = document.getElementById("connection-banner");
    if (!banner.hidden) { banner.hidden = true; updateTitle(false); }
  }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (revoked) evt.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "board") sigsBefore = sigs();
  });
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "board") {
      window.boardPage.swaps += 1;
      syncClock();
      flashChanged();
      shownState = null;
      tick();
    }
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var xhr = evt.detail.xhr;
    if (!evt.detail.successful || !xhr || xhr.status === 0) return;
    var appVersion = xhr.getResponseHeader("X-Board-App-Version");
    if (appVersion && body.dataset.appVersion && appVersion !== body.dataset.appVersion) {
      window.location.reload();
      return;
    }
    connectionBack();
    if (xhr.status === 204) applyUnchanged(xhr);
  });
  document.addEventListener("htmx:sendError", connectionLost);
  document.addEventListener("htmx:responseError", connectionLost);
  document.addEventListener("htmx:timeout", connectionLost);

  syncClock();
  tick();
  setInterval(tick, 1000);
})();
