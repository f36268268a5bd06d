// Live status for the operator dashboard: polls the status JSON and updates the cells marked data-live.
// Pages work without it; it only spares the operator a reload. No inline script (the CSP forbids it).
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-status-url");
  var pollMs = parseInt(body.getAttribute("data-poll-ms") || "0", 10);
  if (!url || !(pollMs > 0) || !window.fetch || !document.querySelector("[data-live]")) {
    return;
  }

  function statusClass(status) {
    return "status status-" + String(status).toLowerCase().replace(/[^a-z]/g, "");
  }

  function setStatus(el, connector) {
    if (el.textContent !== connector.status) {
      el.textContent = connector.status;
    }
    el.className = statusClass(connector.status);
    if (connector.error_code && connector.error_code !== "NoError") {
      el.title = connector.error_code;
    } else {
      el.removeAttribute("title");
    }
  }

  function addConnector(list, cpId, connector) {
    var none = list.querySelector("li.none");
    if (none) {
      none.remove();
    }
    var li = document.createElement("li");
    var label = document.createElement("span");
    label.className = "label";
    label.textContent = connector.label;
    var badge = document.createElement("span");
    badge.setAttribute("data-live", "connector");
    badge.setAttribute("data-cp", cpId);
    badge.setAttribute("data-connector", String(connector.id));
    setStatus(badge, connector);
    li.appendChild(label);
    li.appendChild(document.createTextNode(" "));
    li.appendChild(badge);
    list.appendChild(li);
  }

  function refreshCurve(el) {
    fetch(el.getAttribute("data-src"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) {
          return;
        }
        // DOMParser never runs scripts; the fragment is our own server-escaped template.
        var doc = new DOMParser().parseFromString(html, "text/html");
        el.replaceChildren.apply(el, Array.prototype.slice.call(doc.body.childNodes));
      })
      .catch(function () { /* try again at the next tick */ });
  }

  function apply(data) {
    var chargers = new Map();
    data.chargers.forEach(function (cp) { chargers.set(cp.id, cp); });
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var cp = chargers.get(el.getAttribute("data-cp"));
      if (!cp) {
        return;
      }
      switch (el.getAttribute("data-live")) {
        case "connected":
          el.textContent = cp.connected ? "online" : "offline";
          el.className = "badge " + (cp.connected ? "ok" : "off");
          break;
        case "last-seen":
          el.textContent = cp.last_seen;
          break;
        case "active":
          el.textContent = String(cp.active_transactions);
          break;
        case "connector": {
          var id = el.getAttribute("data-connector");
          var found = cp.connectors.find(function (c) { return String(c.id) === id; });
          if (found) {
            setStatus(el, found);
          }
          break;
        }
        case "curve":
          // Redraw while a session runs, and once more after it ended (the server renders the SVG).
          if (cp.active_transactions > 0 || el.getAttribute("data-active") !== "0") {
            el.setAttribute("data-active", String(cp.active_transactions));
            refreshCurve(el);
          }
          break;
        case "connectors":
          cp.connectors.forEach(function (c) {
            var known = Array.prototype.some.call(
              el.querySelectorAll("[data-live=connector]"),
              function (badge) { return badge.getAttribute("data-connector") === String(c.id); }
            );
            if (!known) {
              addConnector(el, cp.id, c);
            }
          });
          break;
      }
    });
    if (data.totals) {
      document.querySelectorAll("[data-live-total]").forEach(function (el) {
        var value = data.totals[el.getAttribute("data-live-total")];
        if (typeof value === "string") {
          el.textContent = value;
        }
      });
    }
    document.querySelectorAll("[data-live-updated]").forEach(function (el) {
      el.textContent = "Last update: " + data.now + ".";
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) {
          apply(data);
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ })
      .finally(function () { window.setTimeout(poll, pollMs); });
  }

  window.setTimeout(poll, pollMs);
})();
