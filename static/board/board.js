/* Mogplex board page script: ages and the wall clock that advance on the server's
   clock, freshness from unchanged answers, client-side STALE, the connection
   banner, reload on a new app version, changed-row highlight, title and favicon,
   and on the wall: rows fitted to the screen and the optional alert.
   Plain JS, no framework; no upstream data is ever evaluated.

   Two entry points keep the page true, whatever brought the news:
   boardReplaced() after new board markup is in place (an htmx swap today; a
   pushed stream could call the same), and boardConfirmed(header) when the
   server says the page is current (a 204), with that answer's headers. */
(function () {
  "use strict";
  var body = document.body;
  var staleSeconds = Number(body.dataset.staleSeconds || 90);
  var offsetMs = 0; // server clock minus browser clock
  var lastGood = new Date();
  var flashState = {};
  var sigsBefore = null;
  var laneBefore = null;
  window.boardPage = { loadedAt: Date.now(), swaps: 0, fits: 0 };
  // A refresh never overwrites what someone is typing (an acknowledgement's note).
  // A highlight is set by the page after a swap: the next swap must not strip it mid-flash.
  if (window.Idiomorph) {
    window.Idiomorph.defaults.ignoreActiveValue = true;
    window.Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (name, node, how) {
      return !(name === "data-flash" && how === "remove");
    };
  }

  function board() { return document.getElementById("board"); }
  function serverNow() { return (Date.now() + offsetMs) / 1000; }
  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }

  function syncClock() {
    var el = board();
    if (el && el.dataset.serverTime) offsetMs = Number(el.dataset.serverTime) * 1000 - Date.now();
  }

  // --- ages and the clock ------------------------------------------------------

  function ageText(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  var clockFormats = {};
  function clockFormat(zone) {
    if (!(zone in clockFormats)) {
      try {
        clockFormats[zone] = new Intl.DateTimeFormat("en-GB", {
          timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
        });
      } catch (e) {
        clockFormats[zone] = null; // a zone this browser does not know: use the server's offset
      }
    }
    return clockFormats[zone];
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function clockText(el, now) {
    var format = el.dataset.tz ? clockFormat(el.dataset.tz) : null;
    if (format) return format.format(new Date(now * 1000));
    var s = Math.floor(now + Number(el.dataset.utcOffset || 0));
    s = ((s % 86400) + 86400) % 86400;
    return two(Math.floor(s / 3600)) + ":" + two(Math.floor(s / 60) % 60) + ":" + two(s % 60);
  }

  function grace() {
    var el = board();
    var refresh = el ? Number(el.dataset.refresh || 5) : 5;
    return 2 * refresh + 5; // the server re-renders at the threshold; allow a couple of polls
  }

  function tick() {
    var now = serverNow();
    document.querySelectorAll("time.tick[data-epoch]").forEach(function (el) {
      var since = now - Number(el.dataset.epoch);
      setText(el, ageText(el.dataset.until ? -since : since) + (el.dataset.suffix || ""));
    });
    document.querySelectorAll("time[data-clock]").forEach(function (el) { setText(el, clockText(el, now)); });
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

  // --- title and favicon ---------------------------------------------------------

  var ICON_COLOURS = { clear: "#1a7f37", active: "#0b62c4", attention: "#c0262d", attention_stale: "#c0262d", stale: "#9a6700", lost: "#5b6270", cache: "#5b6270", revoked: "#5b6270" };
  // The favicon's state reads by shape as well as colour: a tick, a play triangle, a cross,
  // a warning triangle, a dash for "cannot tell".
  var TICK = '<circle cx="8" cy="8" r="7.5" fill="COLOUR"/><path d="M4 8.4 6.8 11 12 5" fill="none" stroke="#fff" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"/>';
  var PLAY = '<circle cx="8" cy="8" r="7.5" fill="COLOUR"/><path d="M6 4.2v7.6L12 8z" fill="#fff"/>';
  var CROSS = '<rect x=".5" y=".5" width="15" height="15" rx="2" fill="COLOUR"/><path d="M4.5 4.5l7 7M11.5 4.5l-7 7" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/>';
  var WARN = '<path d="M8 .5 15.8 15H.2z" fill="COLOUR"/><path d="M8 5.5v4.5" stroke="#fff" stroke-width="2" stroke-linecap="round"/><circle cx="8" cy="12.6" r="1.1" fill="#fff"/>';
  var DASH = '<circle cx="8" cy="8" r="7.5" fill="COLOUR"/><path d="M4 8h8" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/>';
  var ICON_SHAPES = { clear: TICK, active: PLAY, attention: CROSS, attention_stale: CROSS, stale: WARN, lost: DASH, cache: DASH, revoked: DASH };
  var TITLE_WORDS = { clear: "✔ All clear", active: "▶ Running", attention: "✖ Attention", attention_stale: "✖ Attention · ⚠ STALE", stale: "⚠ STALE", lost: "⚠ Connection lost", cache: "⚠ Cache unavailable", revoked: "⚠ Display link revoked" };
  var baseTitle = document.title;
  var shownState = null;

  function updateTitle(anyStale) {
    var el = board();
    if (!el) return;
    var state = el.dataset.overall || "clear";
    // Something needs attention and the data is old: the title says both, as the headline does.
    if (anyStale) state = state === "attention" ? "attention_stale" : "stale";
    var banner = document.getElementById("connection-banner");
    if (!banner.hidden) state = banner.dataset.problem || "lost";
    if (state === shownState) return;
    shownState = state;
    document.title = TITLE_WORDS[state] + " · " + baseTitle;
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">' +
      ICON_SHAPES[state].replace(/COLOUR/g, ICON_COLOURS[state]) + '</svg>';
    var link = document.getElementById("favicon");
    if (link) link.href = "data:image/svg+xml," + encodeURIComponent(svg);
  }

  // --- changed rows ------------------------------------------------------------------

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

  // --- the wall: rows fitted to the screen --------------------------------------------
  //
  // Each panel's list (ul[data-fit], data-total = how many rows the panel has) is
  // sent up to a generous number of rows. Rows that do not fit whole are hidden and
  // the panel's [data-fit-more] line says how many are not shown. Lists are fitted
  // in page order, twice: a list that shrinks (the lane, the sources) gives room
  // to one fitted before it.

  function fitList(list) {
    var rows = Array.prototype.filter.call(list.children, function (el) { return el.tagName === "LI"; });
    var panel = list.parentElement;
    var more = panel.querySelector(":scope > [data-fit-more]");
    var total = Number(list.dataset.total || rows.length);
    rows.forEach(function (row) { if (row.hidden) row.hidden = false; });
    if (more) more.hidden = true;
    // Measured in fractional pixels: scrollHeight is rounded, and a row a pixel over is cut.
    var last = rows[rows.length - 1];
    if (total <= rows.length && (!last || last.getBoundingClientRect().bottom <= list.getBoundingClientRect().bottom + 0.5)) return;
    if (more) more.hidden = false;
    var bottom = list.getBoundingClientRect().bottom + 0.5;
    var shown = 0;
    rows.forEach(function (row, n) {
      if (shown === n && row.getBoundingClientRect().bottom <= bottom) shown += 1;
      else row.hidden = true;
    });
    if (more) {
      setText(more.querySelector("[data-fit-count]"), String(total - shown));
      more.hidden = total - shown <= 0;
    }
  }

  function fitBoard() {
    var lists = document.querySelectorAll("#board ul[data-fit]");
    if (!lists.length) return;
    for (var pass = 0; pass < 2; pass++) lists.forEach(fitList);
    window.boardPage.fits += 1;
  }

  // --- the wall: ?alert=1 -----------------------------------------------------------------
  //
  // An item new to the attention lane pulses once (not under prefers-reduced-motion,
  // see board.css) and a short chime plays where the browser lets a page make sound
  // without a click (a kiosk browser is usually started so).

  var alerting = body.dataset.alert === "1";
  var audio = null;

  function laneIds() {
    var out = {};
    document.querySelectorAll("#board .lane-attention [data-fit] > li[id]").forEach(function (el) { out[el.id] = true; });
    return out;
  }

  function chime() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      audio = audio || new Context();
      if (audio.state === "suspended") audio.resume();
      if (audio.state !== "running") return;
      var start = audio.currentTime;
      [660, 880].forEach(function (pitch, n) {
        var tone = audio.createOscillator();
        var level = audio.createGain();
        tone.frequency.value = pitch;
        level.gain.setValueAtTime(0.0001, start + n * 0.18);
        level.gain.exponentialRampToValueAtTime(0.25, start + n * 0.18 + 0.02);
        level.gain.exponentialRampToValueAtTime(0.0001, start + n * 0.18 + 0.4);
        tone.connect(level).connect(audio.destination);
        tone.start(start + n * 0.18);
        tone.stop(start + n * 0.18 + 0.45);
      });
      window.boardPage.chimes = (window.boardPage.chimes || 0) + 1;
    } catch (e) {
      audio = null; // no sound here; the pulse still shows
    }
  }

  // The class stays until the next swap replaces the row's markup; the pulse runs once.
  // --- the live region: new problems and recoveries, one polite message per refresh ---
  //
  // Each unresolved item of the lane carries data-announce ("acme/api failed"); a refresh
  // compares the items before and after and says what appeared and what went away.

  var problemsBefore = null;

  function problems() {
    var out = {};
    document.querySelectorAll("#board [data-announce][id]").forEach(function (el) { out[el.id] = el.dataset.announce; });
    return out;
  }

  function announceChanges() {
    var live = document.getElementById("announcer");
    if (!live || !problemsBefore) return;
    var now = problems();
    var added = [], gone = [];
    Object.keys(now).forEach(function (id) { if (!(id in problemsBefore)) added.push(now[id]); });
    Object.keys(problemsBefore).forEach(function (id) { if (!(id in now)) gone.push(problemsBefore[id]); });
    problemsBefore = null;
    if (!added.length && !gone.length) return;
    var parts = [];
    if (added.length) parts.push("New problem" + (added.length > 1 ? "s" : "") + ": " + added.join("; ") + ".");
    if (gone.length) parts.push("Recovered: " + gone.join("; ") + ".");
    live.textContent = parts.join(" ");
  }

  function alertNew() {
    if (!alerting || !laneBefore) return;
    var fresh = [];
    document.querySelectorAll("#board .lane-attention [data-fit] > li[id]").forEach(function (el) {
      if (laneBefore[el.id]) return;
      fresh.push(el.id);
      el.classList.add("alert-new");
    });
    window.boardPage.alerted = fresh;
    if (fresh.length) chime();
  }

  // --- the connection banner ------------------------------------------------------------
  //
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
      if (leave) { leave(); leave = null; }
      body.classList.add("display-revoked");
      setText(why, said || "This display link was revoked; ask an operator for a new one.");
      banner.dataset.problem = "revoked";
    } else {
      setText(why, problem ? said || "Cache unavailable" : "Connection lost");
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

  // --- keeping the page true --------------------------------------------------------------

  // A payload someone opened stays open across swaps (the new markup has it folded).
  var openBefore = null;
  function openDetails() {
    var out = [];
    document.querySelectorAll("#board details[open][id]").forEach(function (el) { out.push(el.id); });
    return out;
  }
  function reopenDetails() {
    if (!openBefore) return;
    openBefore.forEach(function (id) {
      var el = document.getElementById(id);
      if (el && !el.open) el.open = true;
    });
    openBefore = null;
  }

  function boardReplacing() {
    sigsBefore = sigs();
    laneBefore = laneIds();
    problemsBefore = problems();
    openBefore = openDetails();
  }

  function boardReplaced() {
    window.boardPage.swaps += 1;
    syncClock();
    fitBoard();
    flashChanged();
    alertNew();
    announceChanges();
    shownState = null;
    tick();
  }

  // X-Board-Now is the server's clock; X-Board-Fetched a JSON object of when each
  // badge's data was last fetched, keyed like the badges' data-fetched-key.
  function boardConfirmed(header) {
    var serverTime = Number(header("X-Board-Now"));
    if (serverTime > 0) offsetMs = serverTime * 1000 - Date.now();
    var fetched = null;
    try { fetched = JSON.parse(header("X-Board-Fetched") || "null"); } catch (e) { fetched = null; }
    if (fetched && typeof fetched === "object") {
      document.querySelectorAll("#board [data-fetched-key]").forEach(function (el) {
        var at = fetched[el.dataset.fetchedKey];
        if (el.dataset.fetchedKey && typeof at === "number" && isFinite(at)) el.dataset.fetchedAt = at.toFixed(3);
      });
    }
    tick();
  }

  window.boardPage.boardReplacing = boardReplacing;
  window.boardPage.boardReplaced = boardReplaced;
  window.boardPage.boardConfirmed = boardConfirmed;

  function isBoard(evt) { return evt.detail.target && evt.detail.target.id === "board"; }

  document.addEventListener("htmx:beforeRequest", function (evt) {
    if (revoked) evt.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (evt) { if (isBoard(evt)) boardReplacing(); });
  // Fitted as soon as the new markup is in (before the browser paints it), and again once settled.
  document.addEventListener("htmx:afterSwap", function (evt) { if (isBoard(evt)) { reopenDetails(); fitBoard(); } });
  document.addEventListener("htmx:afterSettle", function (evt) { if (isBoard(evt)) boardReplaced(); });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var xhr = evt.detail.xhr;
    if (!evt.detail.successful || !xhr || xhr.status === 0) return;
    var appVersion = xhr.getResponseHeader("X-Board-App-Version");
    if (appVersion && body.dataset.appVersion && appVersion !== body.dataset.appVersion) {
      window.location.reload();
      return;
    }
    connectionBack();
    if (xhr.status === 204) boardConfirmed(function (name) { return xhr.getResponseHeader(name); });
  });
  document.addEventListener("htmx:sendError", connectionLost);
  document.addEventListener("htmx:responseError", connectionLost);
  document.addEventListener("htmx:timeout", connectionLost);

  // The screen's size, the banners above the wall and the type all change the room there is.
  var poll = document.getElementById("board-poll");
  if (window.ResizeObserver && poll) {
    new ResizeObserver(fitBoard).observe(poll);
  } else {
    window.addEventListener("resize", fitBoard);
  }

  // --- push: the change stream says when the board changed, and the page polls at once ---
  // (dashboard/board/push.py). The poll above stays on its interval whatever the stream
  // does, so a stream that is refused, buffered by a proxy or cut costs only speed, and
  // is not shown: EventSource reopens a broken stream by itself; one the server closed
  // for good (a 204 from a server that cannot push, a refusal) is tried again later.
  // Every board page of this browser shares one stream through a SharedWorker
  // (stream-worker.js): a browser holds at most six connections to a server, and a
  // stream per tab would leave none for a seventh. Without SharedWorker (Android's
  // Chrome), the page runs the same script as a Worker of its own.
  var pushed = null;
  var streamStatus = "none";
  var leave = null;
  function heard(version) {
    if (version === pushed) return;
    pushed = version;
    var shown = document.getElementById("board-version");
    // Already showing it (the stream says the current version as it opens).
    if (shown && shown.value.split(".")[0] === version) return;
    window.boardPage.pushedAt = Date.now();
    htmx.trigger(poll, "board:refresh");
  }
  function streamOpen() {
    if (!poll || !poll.dataset.stream || !poll.dataset.streamWorker || revoked) return;
    var worker;
    try {
      worker = window.SharedWorker
        ? new SharedWorker(poll.dataset.streamWorker, { name: "board-stream" })
        : new Worker(poll.dataset.streamWorker);
    } catch (e) {
      return; // no worker here: the poll alone
    }
    var port = worker.port || worker;
    port.onmessage = function (msg) {
      if (msg.data.type === "board") heard(msg.data.version);
      else if (msg.data.type === "state") streamStatus = msg.data.state;
    };
    if (port.start) port.start();
    port.postMessage({ type: "follow", url: new URL(poll.dataset.stream, window.location.href).href });
    leave = function () { port.postMessage({ type: "bye" }); streamStatus = "closed"; };
    window.addEventListener("pagehide", leave);
  }
  window.boardPage.streamState = function () { return streamStatus; };
  streamOpen();

  // --- theme: the browser's setting unless this browser chose one (remembered in localStorage) ---
  var THEME_NEXT = { auto: "dark", dark: "light", light: "auto" };
  var THEME_WORDS = { auto: "Theme: follows the browser", dark: "Theme: dark", light: "Theme: light" };
  function themeChosen() {
    try { return window.localStorage.getItem("board-theme") || "auto"; } catch (e) { return "auto"; }
  }
  function themeApply(choice) {
    if (choice === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = choice;
    var toggle = document.getElementById("theme-toggle");
    if (toggle) { toggle.textContent = THEME_WORDS[choice]; toggle.hidden = false; }
  }
  themeApply(themeChosen());
  var themeToggle = document.getElementById("theme-toggle");
  if (themeToggle) themeToggle.addEventListener("click", function () {
    var next = THEME_NEXT[themeChosen()] || "auto";
    try { window.localStorage.setItem("board-theme", next); } catch (e) { /* private mode: this page only */ }
    themeApply(next);
  });

  syncClock();
  fitBoard();
  tick();
  setInterval(tick, 1000);
})();
