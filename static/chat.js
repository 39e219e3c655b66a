// Quartet's chat page: a WebSocket protocol v1 client with no build step.
// Model and user text is hostile input: user text is only ever set as text, and
// model markdown goes through marked (raw HTML escaped, images not loaded) and
// then DOMPurify before it reaches the page.
"use strict";

(() => {
  const KEY_STORAGE = "quartet.apiKey";
  const PING_EVERY_MS = 20000;
  const PONG_WITHIN_MS = 10000;
  const UNLOGGED_REFUSALS = new Set([
    "bad_request", "unknown_type", "too_large", "busy", "rate_limited", "unknown_request",
  ]);

  const $ = (id) => document.getElementById(id);
  const ui = {
    keyForm: $("key-form"), key: $("api-key"), status: $("status"),
    newSession: $("new-session"), sessionList: $("session-list"), title: $("session-title"),
    log: $("log"), composer: $("composer"), message: $("message"), send: $("send"), stop: $("stop"),
  };

  const state = {
    key: null,
    sessions: [],
    sessionId: null,
    ws: null,
    lastSeq: 0,
    retry: 0,
    retryTimer: null,
    pingTimer: null,
    pongTimer: null,
    turns: new Map(), // turn_id -> Turn
    pendingTurns: [], // messages this tab sent whose turn has not begun, oldest first
    activeTurnId: null,
    requests: new Map(), // request_id -> {el, kind, turn, timer}
    fillTimer: null,
  };

  // ---- markdown --------------------------------------------------------------

  marked.use({
    gfm: true,
    renderer: {
      // Raw HTML in markdown is shown as the text it is, never as markup.
      html({ text }) { return escapeHtml(text); },
      // A remote image would tell its host what the conversation holds: show what it was.
      image({ href, text }) {
        return `<span class="blocked-image">[image not loaded: ${escapeHtml(text || "")} ${escapeHtml(href || "")}]</span>`;
      },
    },
  });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  });
  const PURIFY = {
    FORBID_TAGS: ["img", "style", "svg", "math", "form", "input", "button", "textarea",
      "select", "iframe", "video", "audio", "source", "picture"],
    FORBID_ATTR: ["style", "srcset", "src"],
  };

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function renderMarkdown(target, text) {
    target.innerHTML = DOMPurify.sanitize(marked.parse(text), PURIFY);
  }

  // ---- DOM helpers -------------------------------------------------------------

  /** Build an element; string children become text nodes, never markup. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function pretty(value) {
    if (typeof value === "string") return value;
    try { return JSON.stringify(value, null, 2); } catch { return String(value); }
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function notice(text, kind = "error", parent = ui.log) {
    const node = el("p", { class: `notice ${kind}` }, text);
    parent.append(node);
    scrollToEnd();
    return node;
  }

  // ---- REST ----------------------------------------------------------------------

  async function api(method, path, body) {
    const init = { method, headers: { "X-API-Key": state.key } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`/api/v1${path}`, init);
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = new Error(data?.error?.message || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // ---- key and sessions --------------------------------------------------------

  async function connectKey(key) {
    state.key = key;
    setStatus("Checking the key…");
    try {
      await loadSessions();
    } catch (error) {
      state.key = null;
      ui.newSession.disabled = true;
      setStatus(error.status === 401 || error.status === 403
        ? "Key refused: check the API key" : `Cannot reach Quartet: ${error.message}`);
      return;
    }
    localStorage.setItem(KEY_STORAGE, key);
    ui.newSession.disabled = false;
    const wanted = new URLSearchParams(location.search).get("session");
    if (wanted) {
      await openSession(wanted, { push: false });
    } else {
      setStatus("Key accepted: open a session or start a new one");
      ui.newSession.focus();
    }
  }

  async function loadSessions() {
    const page = await api("GET", "/sessions?limit=200");
    state.sessions = page.items.sort((a, b) => b.created_at.localeCompare(a.created_at));
    renderSessions();
  }

  function renderSessions() {
    ui.sessionList.replaceChildren(...state.sessions.map((session) => {
      const open = el("button", {
        type: "button", class: "open-session",
        "aria-current": session.id === state.sessionId ? "page" : null,
      }, session.title || "Untitled");
      open.addEventListener("click", () => openSession(session.id));
      const remove = el("button", {
        type: "button", class: "delete-session", "aria-label": `Delete ${session.title || "Untitled"}`,
      }, "Delete");
      remove.addEventListener("click", () => deleteSession(session.id));
      return el("li", {}, open, remove);
    }));
  }

  async function newSession() {
    const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    const taken = new Set(state.sessions.map((s) => s.title));
    let title = `Chat ${time}`;
    for (let n = 2; taken.has(title); n += 1) title = `Chat ${time} (${n})`;
    try {
      const session = await api("POST", "/sessions", { title });
      state.sessions.unshift(session);
      await openSession(session.id);
      ui.message.focus();
    } catch (error) {
      notice(`Could not create a session: ${error.message}`);
    }
  }

  async function deleteSession(id) {
    try {
      await api("DELETE", `/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status !== 404) { notice(`Could not delete the session: ${error.message}`); return; }
    }
    state.sessions = state.sessions.filter((s) => s.id !== id);
    if (id === state.sessionId) closeSession(true);
    renderSessions();
  }

  function closeSession(updateUrl) {
    disconnect();
    state.sessionId = null;
    resetConversation();
    ui.title.textContent = "No session open";
    ui.message.disabled = true;
    ui.send.disabled = true;
    if (updateUrl) history.pushState(null, "", location.pathname);
    setStatus("No session open");
  }

  async function openSession(id, { push = true } = {}) {
    let session = state.sessions.find((s) => s.id === id);
    if (!session) {
      try {
        session = await api("GET", `/sessions/${encodeURIComponent(id)}`);
      } catch {
        closeSession(false);
        setStatus("That session was not found");
        return;
      }
    }
    disconnect();
    state.sessionId = id;
    resetConversation();
    ui.title.textContent = session.title || "Untitled";
    const url = `${location.pathname}?session=${encodeURIComponent(id)}`;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    renderSessions();
    ui.message.disabled = false;
    ui.send.disabled = false;
    ui.message.focus();
    connectSocket();
  }

  function resetConversation() {
    for (const request of state.requests.values()) clearInterval(request.timer);
    state.requests.clear();
    state.turns.clear();
    state.pendingTurns = [];
    state.activeTurnId = null;
    state.lastSeq = 0;
    ui.log.replaceChildren();
    updateRunning();
  }

  // ---- the socket --------------------------------------------------------------

  function connectSocket() {
    clearTimeout(state.retryTimer);
    const sessionId = state.sessionId;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ api_key: state.key, last_seq: String(state.lastSeq) });
    const ws = new WebSocket(
      `${scheme}://${location.host}/api/v1/chat/ws/${encodeURIComponent(sessionId)}?${query}`);
    state.ws = ws;
    setStatus(state.retry ? "Reconnecting…" : "Connecting…");
    ws.addEventListener("message", (event) => {
      if (ws !== state.ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      onFrame(frame);
    });
    ws.addEventListener("close", () => {
      if (ws !== state.ws) return;
      stopHeartbeat();
      state.ws = null;
      if (state.sessionId === sessionId) scheduleReconnect();
    });
  }

  function disconnect() {
    clearTimeout(state.retryTimer);
    stopHeartbeat();
    const ws = state.ws;
    state.ws = null;
    state.retry = 0;
    if (ws) ws.close(1000);
  }

  function scheduleReconnect() {
    const delay = Math.min(10000, 500 * 2 ** state.retry);
    state.retry += 1;
    setStatus(`Disconnected: reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.retryTimer = setTimeout(async () => {
      if (state.retry > 2) {
        // A socket refused again and again may mean the session is gone.
        try {
          await api("GET", `/sessions/${encodeURIComponent(state.sessionId)}`);
        } catch (error) {
          if (error.status === 404 || error.status === 401) {
            closeSession(false);
            setStatus(error.status === 404 ? "That session was deleted" : "Key refused");
            return;
          }
        }
      }
      if (state.sessionId) connectSocket();
    }, delay);
  }

  function startHeartbeat() {
    stopHeartbeat();
    state.pingTimer = setInterval(() => {
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
      state.ws.send(JSON.stringify({ type: "ping" }));
      clearTimeout(state.pongTimer);
      state.pongTimer = setTimeout(() => state.ws?.close(4000), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  function stopHeartbeat() {
    clearInterval(state.pingTimer);
    clearTimeout(state.pongTimer);
  }

  function sendFrame(frame) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      notice("Not connected: wait for the connection to come back, then try again.");
      return false;
    }
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  // ---- turns -------------------------------------------------------------------

  function newTurnElement(userText) {
    const node = el("article", { class: "turn" });
    const turn = {
      id: null,
      node,
      user: el("div", { class: "msg user" }),
      badges: el("div", { class: "badges" }),
      events: el("div", { class: "events" }),
      answer: el("div", { class: "msg assistant markdown" }),
      text: "",
      renderTimer: null,
      steps: new Map(),
      teams: new Map(),
      ended: false,
    };
    if (userText !== null) turn.user.textContent = userText;
    turn.answer.hidden = true;
    node.append(turn.user, turn.badges, turn.events, turn.answer);
    ui.log.append(node);
    scrollToEnd();
    return turn;
  }

  function turnFor(turnId) {
    let turn = state.turns.get(turnId);
    if (turn) return turn;
    if (state.pendingTurns.length) {
      turn = state.pendingTurns.shift();
    } else {
      turn = newTurnElement(null);
      fillUserTextSoon();
    }
    turn.id = turnId;
    turn.node.dataset.turnId = turnId;
    state.turns.set(turnId, turn);
    return turn;
  }

  /** Turns started elsewhere (history, another tab) get their user text from REST. */
  function fillUserTextSoon() {
    clearTimeout(state.fillTimer);
    state.fillTimer = setTimeout(fillUserText, 50);
  }

  async function fillUserText() {
    const sessionId = state.sessionId;
    let page;
    try {
      page = await api("GET", `/sessions/${encodeURIComponent(sessionId)}/messages?limit=500`);
      if (page.total > page.items.length) {
        page = await api("GET",
          `/sessions/${encodeURIComponent(sessionId)}/messages?limit=500&offset=${page.total - 500}`);
      }
    } catch {
      return;
    }
    if (sessionId !== state.sessionId) return;
    for (const message of page.items) {
      if (message.role !== "user" || !message.turn_id) continue;
      const turn = state.turns.get(message.turn_id);
      if (turn && !turn.user.textContent) turn.user.textContent = message.content;
    }
  }

  function scheduleAnswerRender(turn) {
    if (turn.renderTimer) return;
    // Re-rendering the whole answer per token would be quadratic on long answers.
    turn.renderTimer = setTimeout(() => {
      turn.renderTimer = null;
      renderMarkdown(turn.answer, turn.text);
      scrollToEnd();
    }, 30);
  }

  function endTurn(turn) {
    turn.ended = true;
    turn.node.classList.add("ended");
    if (state.activeTurnId === turn.id) state.activeTurnId = null;
    for (const [id, request] of state.requests) {
      if (request.turn === turn && !request.done) {
        finishRequest(id, request.kind === "question" ? "No longer waiting for an answer" : "Closed");
      }
    }
    updateRunning();
  }

  function updateRunning() {
    const running = Boolean(state.activeTurnId || state.pendingTurns.length);
    ui.stop.hidden = !running;
    ui.composer.classList.toggle("running", running);
  }

  function sendMessage() {
    const content = ui.message.value;
    if (!content.trim()) return;
    if (!sendFrame({ type: "message", content })) return;
    ui.message.value = "";
    state.pendingTurns.push(newTurnElement(content));
    updateRunning();
  }

  // ---- frames ------------------------------------------------------------------

  function onFrame(frame) {
    // Logged frames carry a turn_id and a durable seq: one seen already is a duplicate.
    if (frame.turn_id && typeof frame.seq === "number") {
      if (frame.seq <= state.lastSeq) return;
      state.lastSeq = frame.seq;
    }
    const handler = HANDLERS[frame.type];
    if (handler) handler(frame);
  }

  const HANDLERS = {
    connected() {
      state.retry = 0;
      setStatus("Connected");
      startHeartbeat();
    },
    pong() {
      clearTimeout(state.pongTimer);
    },
    skill_match(f) {
      const turn = turnFor(f.turn_id);
      const score = typeof f.score === "number" ? f.score.toFixed(2) : f.score;
      turn.badges.append(el("span", {
        class: "badge", title: `matched: ${(f.matched || []).join(", ")} (${f.source})`,
      }, `Skill ${f.skill} · ${score}`));
    },
    thinking(f) {
      const turn = turnFor(f.turn_id);
      turn.events.append(el("details", { class: "thinking" },
        el("summary", {}, "Thinking"), el("p", {}, f.content)));
      startTurn(turn);
    },
    step(f) {
      const turn = turnFor(f.turn_id);
      startTurn(turn);
      const key = f.call_id || `${f.tool}-${turn.steps.size}`;
      if (f.kind === "tool_call" || !turn.steps.has(key)) {
        const summary = el("summary", {}, `Tool ${f.tool}`);
        const card = el("details", { class: "tool-card" }, summary,
          el("p", { class: "label" }, "Arguments"), el("pre", {}, pretty(f.arguments ?? {})));
        turn.steps.set(key, { card, summary });
        turn.events.append(card);
      }
      if (f.kind === "tool_result") {
        const { card, summary } = turn.steps.get(key);
        if (f.error) {
          summary.textContent = `Tool ${f.tool}: failed`;
          card.classList.add("failed");
          card.append(el("p", { class: "label" }, "Error"),
            el("pre", {}, `${f.error.code}: ${f.error.message}`));
        } else {
          summary.textContent = `Tool ${f.tool}: done`;
          card.append(el("p", { class: "label" }, "Result"), el("pre", {}, pretty(f.result)));
        }
        if (f.tool === "ask_human") answerQuestionsOf(turn, f);
      }
      scrollToEnd();
    },
    token(f) {
      const turn = turnFor(f.turn_id);
      startTurn(turn);
      if (f.expert) {
        const expert = expertFor(turn, f.expert);
        if (expert) {
          expert.text += f.content;
          renderMarkdown(expert.output, expert.text);
        }
        return;
      }
      turn.text += f.content;
      turn.answer.hidden = false;
      scheduleAnswerRender(turn);
    },
    final_answer(f) {
      const turn = turnFor(f.turn_id);
      clearTimeout(turn.renderTimer);
      turn.renderTimer = null;
      turn.text = f.content;
      turn.answer.hidden = false;
      renderMarkdown(turn.answer, turn.text);
      endTurn(turn);
      scrollToEnd();
      // The user's row may have been written after this turn's first frame.
      if (!turn.user.textContent) fillUserTextSoon();
    },
    confirmation_request(f) {
      if (state.requests.has(f.request_id)) return;
      const turn = turnFor(f.turn_id);
      startTurn(turn);
      const countdown = el("p", { class: "countdown" });
      const approve = el("button", { type: "button", class: "approve" }, "Approve");
      const deny = el("button", { type: "button", class: "deny" }, "Deny");
      const buttons = el("div", { class: "request-buttons" }, approve, deny);
      const card = el("div", { class: "request confirmation" },
        el("p", { class: "request-title" }, `Run the tool ${f.tool}?`),
        el("pre", {}, pretty(f.arguments ?? {})),
        el("p", { class: "reason" }, f.reason || ""),
        countdown, buttons);
      const request = { el: card, kind: "confirmation", turn, buttons, done: false };
      state.requests.set(f.request_id, request);
      const answer = (approved) => {
        if (sendFrame({ type: "confirmation_reply", request_id: f.request_id, approved })) {
          approve.disabled = deny.disabled = true;
          ui.message.focus();
        }
      };
      approve.addEventListener("click", () => answer(true));
      deny.addEventListener("click", () => answer(false));
      startCountdown(request, countdown, f);
      turn.events.append(card);
      scrollToEnd();
    },
    confirmation_result(f) {
      const outcome = f.by === "cancel" ? "Cancelled: not run"
        : f.by === "timeout" ? "Timed out: not run"
        : f.approved ? "Approved" : "Denied";
      finishRequest(f.request_id, outcome);
    },
    ask_human(f) {
      if (state.requests.has(f.request_id)) return;
      const turn = turnFor(f.turn_id);
      startTurn(turn);
      const inputId = `answer-${f.request_id}`;
      const input = el("input", { id: inputId, type: "text", required: true, autocomplete: "off" });
      const reply = el("button", { type: "submit" }, "Reply");
      const form = el("form", { class: "request-buttons" },
        el("label", { for: inputId }, "Answer"), input, reply);
      const countdown = el("p", { class: "countdown" });
      const card = el("div", { class: "request question" },
        el("p", { class: "request-title" }, f.question), countdown, form);
      const request = { el: card, kind: "question", turn, buttons: form, done: false };
      state.requests.set(f.request_id, request);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (!input.value.trim()) return;
        if (sendFrame({ type: "human_reply", request_id: f.request_id, content: input.value })) {
          input.disabled = reply.disabled = true;
          ui.message.focus();
        }
      });
      startCountdown(request, countdown, f);
      turn.events.append(card);
      scrollToEnd();
      input.focus();
    },
    team_formed(f) {
      const turn = turnFor(f.turn_id);
      startTurn(turn);
      const experts = new Map();
      const expertList = el("ul", { class: "experts" });
      const work = el("div", { class: "expert-work" });
      for (const expert of f.experts || []) {
        expertList.append(el("li", {}, el("strong", {}, expert.name), ` — ${expert.role || ""}`));
        const output = el("div", { class: "expert-output markdown" });
        const stepsList = el("ul", { class: "expert-steps" });
        const result = el("div", { class: "expert-result markdown" });
        work.append(el("details", { class: "expert", open: true },
          el("summary", {}, expert.name), stepsList, output, result));
        experts.set(expert.name, { output, steps: stepsList, result, text: "" });
      }
      const plan = el("ol", { class: "plan" });
      const synthesis = el("div", { class: "synthesis markdown" });
      const outcome = el("p", { class: "team-outcome" });
      const region = el("section", { class: "team", "aria-label": "Team" },
        el("h3", {}, "Team"), el("p", { class: "goal" }, f.goal || ""),
        expertList, el("h4", {}, "Plan"), plan, work,
        el("h4", {}, "Synthesis"), synthesis, outcome);
      turn.teams.set(f.team_id, { region, experts, plan, synthesis, outcome });
      turn.lastTeam = f.team_id;
      turn.events.append(region);
      scrollToEnd();
    },
    plan_update(f) {
      const team = teamOf(f);
      if (!team) return;
      team.plan.replaceChildren(...(f.plan || []).map((task) => el("li",
        { class: `task ${task.status}`, "data-status": task.status },
        el("strong", {}, task.expert), `: ${task.task} `,
        el("span", { class: "task-status" }, `(${task.status})`))));
    },
    expert_step(f) {
      const expert = teamOf(f)?.experts.get(f.expert);
      if (expert) expert.steps.append(el("li", {}, f.content));
    },
    expert_result(f) {
      const expert = teamOf(f)?.experts.get(f.expert);
      if (expert) {
        expert.output.replaceChildren();
        renderMarkdown(expert.result, f.content);
      }
    },
    team_synthesis(f) {
      const team = teamOf(f);
      if (team) renderMarkdown(team.synthesis, f.content);
    },
    team_dissolved(f) {
      const team = teamOf(f);
      if (team) team.outcome.textContent = `Team dissolved: ${f.reason}`;
    },
    error(f) {
      const text = describeError(f);
      if (f.turn_id) {
        const turn = turnFor(f.turn_id);
        if (f.code === "cancelled" && turn.text) {
          renderMarkdown(turn.answer, turn.text);
        }
        notice(text, f.code === "cancelled" ? "info" : "error", turn.node);
        endTurn(turn);
        return;
      }
      if (state.pendingTurns.length && UNLOGGED_REFUSALS.has(f.code) && f.code !== "unknown_request") {
        // The message this tab just sent was refused: no turn will come for it.
        const turn = state.pendingTurns.pop();
        notice(text, "error", turn.events);
        turn.node.classList.add("ended");
        updateRunning();
        return;
      }
      notice(text, f.code === "no_active_turn" ? "info" : "error");
    },
  };

  function describeError(f) {
    switch (f.code) {
      case "cancelled": return "Stopped: the answer was cancelled.";
      case "busy": return "Busy: an answer is still running. Wait for it, or press Stop.";
      case "no_active_turn": return "Nothing to stop: no answer is running.";
      case "rate_limited": return `Too many messages: try again in ${Math.ceil(f.retry_after || 1)} s.`;
      case "unknown_request": return "That request was already answered or has closed.";
      case "interrupted": return "The server stopped during this answer: send the message again.";
      default: return `Error (${f.code}): ${f.message || ""}`;
    }
  }

  function startTurn(turn) {
    if (!turn.ended) {
      state.activeTurnId = turn.id;
      updateRunning();
    }
  }

  function expertFor(turn, name) {
    const team = turn.teams.get(turn.lastTeam);
    return team?.experts.get(name);
  }

  function teamOf(f) {
    return turnFor(f.turn_id).teams.get(f.team_id);
  }

  function startCountdown(request, node, f) {
    const received = Date.parse(f.ts);
    const deadline = (Number.isNaN(received) ? Date.now() : received) + (f.timeout_s || 0) * 1000;
    const tick = () => {
      const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      node.textContent = `${left} s left to answer`;
    };
    tick();
    request.timer = setInterval(tick, 1000);
  }

  function finishRequest(requestId, outcome) {
    const request = state.requests.get(requestId);
    if (!request || request.done) return;
    request.done = true;
    clearInterval(request.timer);
    request.el.querySelector(".countdown")?.remove();
    request.buttons.remove();
    request.el.classList.add("done");
    request.el.append(el("p", { class: "outcome" }, outcome));
  }

  function answerQuestionsOf(turn, step) {
    for (const [id, request] of state.requests) {
      if (request.turn !== turn || request.kind !== "question" || request.done) continue;
      finishRequest(id, step.error
        ? `Not answered: ${step.error.message || step.error.code}`
        : `Answered: ${pretty(step.result)}`);
      return;
    }
  }

  // ---- wiring ------------------------------------------------------------------

  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = ui.key.value.trim();
    if (key) connectKey(key);
  });
  ui.newSession.addEventListener("click", newSession);
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  ui.message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });
  ui.stop.addEventListener("click", () => {
    sendFrame({ type: "cancel" });
  });
  window.addEventListener("popstate", () => {
    if (!state.key) return;
    const wanted = new URLSearchParams(location.search).get("session");
    if (wanted && wanted !== state.sessionId) openSession(wanted, { push: false });
    else if (!wanted) closeSession(false);
  });

  const stored = localStorage.getItem(KEY_STORAGE);
  if (stored) {
    ui.key.value = stored;
    connectKey(stored);
  }
})();
