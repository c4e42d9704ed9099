// The run page's terminal: xterm.js (from its npm package, bundled into /pkg by
// `cargo xtask build`) connected to the terminal websocket of an instance
// (/api/v1/runs/{run}/instances/{instance}/terminal; protocol in docs/api.md).
// "Open terminal" buttons carry data-run and data-instance; the page's #terminal-panel holds
// the emulator. window.slipstreamTerminal.text() gives the screen as text (browser tests).
(function () {
  "use strict";
  let current = null;

  function panel() { return document.getElementById("terminal-panel"); }

  function close() {
    if (current) {
      current.ws.close();
      current.term.dispose();
      window.removeEventListener("resize", current.onResize);
      current = null;
    }
    const p = panel();
    if (p) p.hidden = true;
  }

  function open(run, instance) {
    close();
    const p = panel();
    const box = document.getElementById("terminal");
    if (!p || !box || typeof Terminal === "undefined") return;
    p.hidden = false;
    document.getElementById("terminal-title").textContent = "Terminal on " + instance;
    box.dataset.instance = instance;
    box.dataset.connected = "false";
    delete box.dataset.exited;
    const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000 });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fit.fit();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + location.host + "/api/v1/runs/" + encodeURIComponent(run) + "/instances/" +
      encodeURIComponent(instance) + "/terminal?columns=" + term.cols + "&rows=" + term.rows;
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const send = (m) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
    ws.onopen = () => { box.dataset.connected = "true"; term.focus(); };
    ws.onclose = () => { box.dataset.connected = "false"; };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") {
        const m = JSON.parse(e.data);
        if (m.type === "exit") {
          box.dataset.exited = String(m.code);
          term.write("\r\n[the shell exited" + (m.code === null ? "" : " with " + m.code) + "]\r\n");
        }
      } else {
        term.write(new Uint8Array(e.data));
      }
    };
    term.onData((data) => send({ type: "input", data: data }));
    term.onResize((size) => send({ type: "resize", columns: size.cols, rows: size.rows }));
    const onResize = () => fit.fit();
    window.addEventListener("resize", onResize);
    current = { term: term, ws: ws, onResize: onResize };
  }

  window.slipstreamTerminal = {
    open: open,
    close: close,
    // The open emulator (browser tests time keystrokes through it).
    term: function () { return current ? current.term : null; },
    // The screen (and scrollback) as text, one line per row.
    text: function () {
      if (!current) return "";
      const b = current.term.buffer.active;
      const lines = [];
      for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
      return lines.join("\n");
    },
  };

  document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("button.open-terminal");
    if (button) open(button.dataset.run, button.dataset.instance);
    if (e.target.closest && e.target.closest("#terminal-close")) close();
  });
})();
