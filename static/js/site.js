/* MCP Billing pages: copy buttons. Loaded on every page; no framework, no network. */
(function () {
  "use strict";

  function textOf(button) {
    var selector = button.getAttribute("data-copy-from");
    if (selector) {
      var source = document.querySelector(selector);
      if (source) return "value" in source && source.tagName !== "CODE" ? source.value : source.textContent;
    }
    return button.getAttribute("data-copy-text") || "";
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done;
  }

  function copied(button, ok) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = ok ? "Copied" : "Press Ctrl+C";
    setTimeout(function () { button.textContent = label; }, 1800);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-from], [data-copy-text]");
    if (!button) return;
    var text = textOf(button);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, true); },
        function () { copied(button, fallbackCopy(text)); }
      );
    } else {
      copied(button, fallbackCopy(text));
    }
  });
})();

/* Buttons with data-confirm ask before their form is sent. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();

/* A key just issued is kept in this tab (sessionStorage, never sent anywhere) so that
   /connect/ can fill its set-ups with it; closing the tab forgets it. */
(function () {
  "use strict";
  var box = document.querySelector("[data-issued-key]");
  if (box) {
    try { sessionStorage.setItem("mcpb-issued-key", box.getAttribute("data-issued-key")); } catch (e) {}
  }
})();

/* /connect/: fill the set-ups with the key, and send a test call through /mcp. */
(function () {
  "use strict";
  var form = document.getElementById("test-call-form");
  if (!form) return;
  var input = document.getElementById("connect-key");
  var error = document.getElementById("connect-key-error");
  var output = document.getElementById("test-call-result");
  var button = document.getElementById("test-call-button");
  var placeholder = form.getAttribute("data-placeholder");
  var blocks = Array.prototype.slice.call(document.querySelectorAll(".code-block code"));
  blocks.forEach(function (code) { code.setAttribute("data-template", code.textContent); });

  function fill(key) {
    blocks.forEach(function (code) {
      code.textContent = code.getAttribute("data-template").split(placeholder).join(key || placeholder);
    });
  }

  function element(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function show(kind, title, rows, detail) {
    output.replaceChildren();
    var box = element("div", { "class": "alert alert-" + kind, role: kind === "danger" ? "alert" : "status" });
    box.appendChild(element("strong", {}, title));
    if (rows && rows.length) {
      var list = element("dl", { "class": "row small mb-0 mt-2" });
      rows.forEach(function (row) {
        list.appendChild(element("dt", { "class": "col-5" }, row[0]));
        var dd = element("dd", { "class": "col-7 mb-1 text-break-all" });
        if (row[2]) dd.appendChild(element("a", { href: row[2] }, row[1])); else dd.textContent = row[1];
        list.appendChild(dd);
      });
      box.appendChild(list);
    }
    if (detail) box.appendChild(element("pre", { "class": "small mb-0 mt-2 text-wrap" }, detail));
    output.appendChild(box);
  }

  function parse(response) {
    return response.text().then(function (text) {
      if ((response.headers.get("content-type") || "").indexOf("text/event-stream") === 0) {
        var data = text.split("\n").filter(function (l) { return l.indexOf("data:") === 0; });
        text = data.length ? data[data.length - 1].slice(5) : "";
      }
      return text ? JSON.parse(text) : null;
    });
  }

  function rpc(key, body, version) {
    var headers = {
      "Authorization": "Bearer " + key,
      "Content-Type": "application/json",
      "Accept": "application/json, text/event-stream"
    };
    if (version) headers["MCP-Protocol-Version"] = version;
    return fetch(form.getAttribute("data-mcp-url"), {
      method: "POST", headers: headers, body: JSON.stringify(body), credentials: "omit"
    }).then(function (response) {
      if (response.status === 401) {
        return parse(response).catch(function () { return null; }).then(function (answer) {
          var message = (answer && answer.error && (answer.error.message || answer.error)) || "";
          throw new Error("The endpoint refused the key (HTTP 401). " + message);
        });
      }
      if (!response.ok && response.status !== 202) throw new Error("The endpoint answered HTTP " + response.status + ".");
      return response.status === 202 ? null : parse(response);
    });
  }

  function money(cents, currency) {
    var value = Number(cents) / 100;
    return value.toLocaleString(undefined, { style: "currency", currency: (currency || "usd").toUpperCase(), maximumFractionDigits: 8 });
  }

  function testCall(key) {
    var tool = form.getAttribute("data-tool");
    var version;
    var init = {
      jsonrpc: "2.0", id: 1, method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "mcp-billing-connect-page", version: "1" } }
    };
    return rpc(key, init).then(function (answer) {
      if (!answer || answer.error) throw new Error("initialize failed: " + JSON.stringify(answer && answer.error));
      version = answer.result.protocolVersion;
      return rpc(key, { jsonrpc: "2.0", method: "notifications/initialized" }, version);
    }).then(function () {
      if (!tool) return rpc(key, { jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }, version);
      var args = JSON.parse(form.getAttribute("data-arguments") || "{}");
      return rpc(key, { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: tool, arguments: args } }, version);
    }).then(function (answer) {
      if (answer.error) throw new Error(answer.error.message || JSON.stringify(answer.error));
      var result = answer.result;
      if (!tool) {
        show("success", "It works: the endpoint lists " + result.tools.length + " tools.", []);
        return;
      }
      var text = (result.content || []).map(function (c) { return c.text || ""; }).join("\n");
      if (result.isError) {
        var refused = result.structuredContent && result.structuredContent.error;
        show("warning", "The call was refused: " + (refused ? refused.message : text), refused && refused.action_url ? [["What to do", "Open", refused.action_url]] : []);
        return;
      }
      var receipt = (result._meta || {})["mcpbilling/receipt"] || {};
      var rows = [
        ["Tool", tool],
        ["Cost", receipt.unit_amount_decimal !== undefined ? money(receipt.unit_amount_decimal, receipt.currency) : "—"],
        ["Receipt", receipt.usage_id || "—", receipt.usage_id ? "/usage/" + receipt.usage_id + "/" : null]
      ];
      if (receipt.credits !== null && receipt.credits !== undefined) rows.push(["Credits", String(receipt.credits)]);
      if (receipt.balance !== null && receipt.balance !== undefined) rows.push(["Credits left", String(receipt.balance)]);
      show("success", "It works: " + tool + " answered through the endpoint.", rows, text);
      output.setAttribute("data-receipt", receipt.usage_id || "");
    });
  }

  var stored = null;
  try { stored = sessionStorage.getItem("mcpb-issued-key"); } catch (e) {}
  if (stored) { input.value = stored; fill(stored); }
  input.addEventListener("input", function () { fill(input.value.trim()); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var key = input.value.trim();
    input.classList.remove("is-invalid");
    if (key.indexOf("mcpb_") !== 0) {
      error.textContent = "Enter a whole API key: it begins with mcpb_.";
      input.classList.add("is-invalid");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    try { sessionStorage.setItem("mcpb-issued-key", key); } catch (e) {}
    button.disabled = true;
    show("info", "Calling the endpoint…", []);
    testCall(key).catch(function (failure) {
      show("danger", "The test call failed.", [], failure.message);
    }).then(function () { button.disabled = false; });
  });
})();
