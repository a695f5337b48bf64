/* One change stream per browser, shared by every open board page (a SharedWorker).

   Over HTTP/1.1 a browser opens at most six connections to a server; a stream held
   open by each tab would use them up, and a seventh tab would wait for ever. So the
   pages (board.js) ask this worker to follow a stream's URL, and it keeps one
   EventSource per URL however many pages follow it, passing on to each page:
     {type: "state", state: "connecting" | "open" | "closed"} and {type: "board", version}.
   A page says {type: "bye"} as it goes away. A stream the server closed for good (a 204,
   a refusal) is tried again after a minute. Where there is no SharedWorker (Android's
   Chrome) each page runs this as a dedicated Worker of its own, with the same messages. */
"use strict";

var streams = {};

function tell(stream, message) {
  stream.ports.forEach(function (port) { port.postMessage(message); });
}

function follow(url, stream) {
  var source = new EventSource(url);
  stream.source = source;
  stream.state = "connecting";
  source.addEventListener("open", function () {
    stream.state = "open";
    tell(stream, { type: "state", state: "open" });
  });
  source.addEventListener("board", function (evt) {
    stream.version = evt.data;
    tell(stream, { type: "board", version: evt.data });
  });
  source.addEventListener("error", function () {
    stream.state = source.readyState === EventSource.CLOSED ? "closed" : "connecting";
    tell(stream, { type: "state", state: stream.state });
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(function () { if (stream.ports.length) follow(url, stream); }, 60000);
    }
  });
}

function connect(port) {
  var url = null;
  port.onmessage = function (msg) {
    var data = msg.data || {};
    if (data.type === "follow" && typeof data.url === "string" && url === null) {
      url = data.url;
      var stream = streams[url];
      if (!stream) {
        stream = streams[url] = { ports: [], version: null, state: "connecting", source: null };
        follow(url, stream);
      }
      stream.ports.push(port);
      port.postMessage({ type: "state", state: stream.state });
      if (stream.version !== null) port.postMessage({ type: "board", version: stream.version });
    } else if (data.type === "bye" && url !== null && streams[url]) {
      var left = streams[url];
      left.ports = left.ports.filter(function (p) { return p !== port; });
      if (!left.ports.length) {
        if (left.source) left.source.close();
        delete streams[url];
      }
      url = null;
    }
  };
  if (port.start) port.start();
}

if (typeof SharedWorkerGlobalScope !== "undefined" && self instanceof SharedWorkerGlobalScope) {
  self.onconnect = function (evt) { connect(evt.ports[0]); };
} else {
  // A dedicated Worker (a browser without SharedWorker): the one page it serves is its port.
  connect(self);
}
