// The voice-chat page: microphone -> 16-bit PCM over the websocket (push-to-talk or hands-free
// voice activity), text turns, the streamed transcript of both sides, gapless Web Audio playback
// of the answer's chunks, per-turn latencies, stop (barge-in). Protocol: vita_jax/serve/websocket.py.
"use strict";

const $ = (id) => document.getElementById(id);
const VAD = { threshold: 0.02, startBlocks: 3, endSilenceMs: 800, preRollBlocks: 15 };

const page = {
  ws: null, ready: false, audio: null, mic: null,
  recording: false, pendingHeader: null,
  turn: null,          // the latest turn (the one recording, waiting or answering)
  awaiting: [],        // turns sent, not started by the server yet (in order)
  turns: new Map(),    // server turn id -> turn
  playbackEnd: 0, sources: [],
  vad: { voiced: 0, silentSince: null, preRoll: [] },
};

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = "status" + (kind ? " " + kind : "");
}

function addBubble(kind, text) {
  const div = document.createElement("div");
  div.className = "turn " + kind;
  const body = document.createElement("span");
  body.className = "body";
  body.textContent = text || "";
  div.appendChild(body);
  $("transcript").appendChild(div);
  $("transcript").scrollTop = $("transcript").scrollHeight;
  return div;
}

function setMeta(bubble, text) {
  let meta = bubble.querySelector(".meta");
  if (!meta) {
    meta = document.createElement("span");
    meta.className = "meta";
    bubble.appendChild(meta);
  }
  meta.textContent = text;
}

// ---- audio context (made on the first click: browsers start audio only after a gesture) ----
async function audioContext() {
  if (!page.audio) page.audio = new AudioContext();
  if (page.audio.state === "suspended") await page.audio.resume();
  return page.audio;
}

function playChunk(turn, header, samples) {
  const ctx = page.audio;
  if (!ctx || !turn || turn.stopped) return;
  const buffer = ctx.createBuffer(1, samples.length, header.sample_rate);
  buffer.copyToChannel(samples, 0);
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  const earliest = ctx.currentTime + 0.03;
  if (page.playbackEnd > 0 && earliest > page.playbackEnd && header.index > 0) turn.gaps += 1;
  const at = Math.max(earliest, page.playbackEnd);   // gapless: right after the previous chunk
  source.start(at);
  page.playbackEnd = at + buffer.duration;
  page.sources.push(source);
  source.onended = () => { page.sources = page.sources.filter((s) => s !== source); };
}

function stopPlayback() {
  for (const source of page.sources) { try { source.stop(); } catch (e) { /* already ended */ } }
  page.sources = [];
  page.playbackEnd = 0;
}

// ---- websocket ----
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => onMessage(event.data);
  ws.onclose = () => {
    page.ready = false;
    enable(false);
    setStatus("disconnected, retrying…", "bad");
    setTimeout(connect, 1000);
  };
  page.ws = ws;
}

function send(message) { page.ws.send(JSON.stringify(message)); }

function enable(on) {
  for (const id of ["talk", "send", "handsfree"]) $(id).disabled = !on;
}

function onMessage(data) {
  if (typeof data !== "string") {
    const header = page.pendingHeader;
    page.pendingHeader = null;
    const turn = header && page.turns.get(header.turn);
    if (!turn) return;
    if (turn.firstAudioAt === null) turn.firstAudioAt = performance.now();
    turn.chunks += 1;
    turn.audioSeconds += header.samples / header.sample_rate;
    turn.assistant.dataset.chunks = String(turn.chunks);
    playChunk(turn, header, new Float32Array(data));
    return;
  }
  const m = JSON.parse(data);
  let turn = m.turn !== undefined ? page.turns.get(m.turn) : undefined;
  switch (m.type) {
    case "ready":
      page.ready = true;
      enable(true);
      setStatus("ready");
      break;
    case "queued":
      setStatus(`queued: ${m.position} request(s) ahead`, "busy");
      break;
    case "start":
      setStatus("answering…", "busy");
      turn = page.awaiting.shift();
      if (turn) {
        page.turns.set(m.turn, turn);
        turn.assistant = addBubble("assistant", "");
      }
      break;
    case "text":
      if (turn) {
        turn.assistant.querySelector(".body").textContent += m.text;
        if (turn.firstTextAt === null) turn.firstTextAt = performance.now();
      }
      break;
    case "audio":
      page.pendingHeader = m;
      break;
    case "user_text":
      if (turn && turn.user) setMeta(turn.user, "heard: " + (m.text || "(nothing)"));
      break;
    case "note":
      addBubble("note", m.text);
      break;
    case "end":
      if (turn) finishTurn(turn, m);
      break;
    case "reset":
      $("transcript").textContent = "";
      break;
    case "error":
      addBubble("error", "error: " + m.message);
      if (m.refused === "turn") page.awaiting.shift();
      if (turn) finishTurn(turn, null);
      else setStatus("ready");
      break;
  }
}

function finishTurn(turn, end) {
  for (const [id, t] of page.turns) if (t === turn) page.turns.delete(id);
  if (page.turn === turn) page.turn = null;
  if (!page.turn) setStatus("ready");
  if (!end) return;
  const ms = (t) => (t === null || t === undefined ? "–" : `${Math.round(t)} ms`);
  const firstAudio = turn.firstAudioAt === null ? null : turn.firstAudioAt - turn.sentAt;
  const t = end.timings || {};
  const parts = [
    `first audio ${ms(firstAudio)}` + (t.first_audio_s != null ? ` (model ${ms(1e3 * t.first_audio_s)})` : ""),
    `first text ${ms(turn.firstTextAt === null ? null : turn.firstTextAt - turn.sentAt)}`,
    `${end.tokens_per_s ? end.tokens_per_s.toFixed(1) : "–"} tokens/s`,
    `mode ${end.mode}`,
    `${turn.chunks} audio chunks, ${turn.audioSeconds.toFixed(2)} s`,
    `${turn.gaps} playback gaps`,
  ];
  if (end.interrupted) parts.push("interrupted");
  const text = parts.join(" · ");
  const assistant = turn.assistant;
  setMeta(assistant, text);
  assistant.dataset.done = "1";
  $("latency").textContent = `last turn: ${text}`;
  $("latency").dataset.turns = String(Number($("latency").dataset.turns || 0) + 1);
}

function beginTurn(userText) {
  stopPlayback();
  page.turn = { user: addBubble("user", userText), assistant: null, sent: false, sentAt: null,
                firstAudioAt: null, firstTextAt: null, chunks: 0, audioSeconds: 0, gaps: 0, stopped: false };
  return page.turn;
}

function sendTurn(extra) {
  const turn = page.turn;
  turn.sent = true;
  turn.sentAt = performance.now();
  page.awaiting.push(turn);
  send({ type: "turn", task: "chat", mode: $("mode").value, ...extra });
}

// ---- microphone ----
async function microphone() {
  if (page.mic) return page.mic;
  const ctx = await audioContext();
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  await ctx.audioWorklet.addModule("/static/recorder-worklet.js");
  const node = new AudioWorkletNode(ctx, "pcm-recorder");
  ctx.createMediaStreamSource(stream).connect(node);
  node.port.onmessage = (event) => onMicBlock(event.data);
  page.mic = { stream, node, rate: ctx.sampleRate };
  return page.mic;
}

function pcm16(block) {
  const out = new Int16Array(block.length);
  for (let i = 0; i < block.length; i++) out[i] = Math.max(-1, Math.min(1, block[i])) * 0x7fff;
  return out.buffer;
}

function startRecording(preRoll) {
  if (page.recording || !page.ready) return;
  if (page.turn) interrupt();             // barge-in: a new question stops the answer
  page.recording = true;
  $("talk").classList.add("recording");
  beginTurn("🎤 …");
  page.turn.recordedSamples = 0;
  send({ type: "audio", format: "pcm16", sample_rate: page.mic.rate });
  for (const block of preRoll || []) sendBlock(block);
}

function sendBlock(block) {
  page.turn.recordedSamples += block.length;
  page.ws.send(pcm16(block));
}

function stopRecording() {
  if (!page.recording) return;
  page.recording = false;
  $("talk").classList.remove("recording");
  const seconds = page.turn.recordedSamples / page.mic.rate;
  page.turn.user.querySelector(".body").textContent = `🎤 ${seconds.toFixed(1)} s`;
  sendTurn({ transcribe: true });
}

function onMicBlock(block) {
  let energy = 0;
  for (let i = 0; i < block.length; i++) energy += block[i] * block[i];
  const rms = Math.sqrt(energy / block.length);
  $("level-bar").style.width = `${Math.min(100, rms * 400)}%`;
  if (page.recording) sendBlock(block);
  if (!$("handsfree").checked) return;
  const vad = page.vad;
  const now = performance.now();
  if (rms > VAD.threshold) {
    vad.voiced += 1;
    vad.silentSince = null;
    if (!page.recording && vad.voiced >= VAD.startBlocks) {
      startRecording(vad.preRoll);
      vad.preRoll = [];
    }
  } else {
    vad.voiced = 0;
    if (page.recording) {
      vad.silentSince = vad.silentSince || now;
      if (now - vad.silentSince > VAD.endSilenceMs) { stopRecording(); vad.silentSince = null; }
    }
  }
  if (!page.recording) {
    vad.preRoll.push(block);
    if (vad.preRoll.length > VAD.preRollBlocks) vad.preRoll.shift();
  }
}

function interrupt() {
  if (page.turn) page.turn.stopped = true;
  stopPlayback();
  if (page.ws && page.ready) send({ type: "interrupt" });
}

// ---- controls ----
async function pressTalk(event) {
  if (event) event.preventDefault();
  try {
    await microphone();
  } catch (error) {
    addBubble("error", `microphone unavailable (${error.name}): the page needs HTTPS or localhost and a permission`);
    return;
  }
  startRecording();
}

function bindControls() {
  $("talk").addEventListener("pointerdown", pressTalk);
  $("talk").addEventListener("pointerup", stopRecording);
  $("talk").addEventListener("pointerleave", stopRecording);
  document.addEventListener("keydown", (e) => {
    if (e.code === "Space" && e.target === document.body && !e.repeat) pressTalk(e);
  });
  document.addEventListener("keyup", (e) => { if (e.code === "Space" && e.target === document.body) stopRecording(); });
  $("handsfree").addEventListener("change", async () => {
    if ($("handsfree").checked) {
      try { await microphone(); } catch (error) {
        $("handsfree").checked = false;
        addBubble("error", `microphone unavailable (${error.name})`);
      }
    } else stopRecording();
  });
  $("text-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text || !page.ready) return;
    await audioContext();
    if (page.turn) interrupt();
    beginTurn(text);
    $("text").value = "";
    sendTurn({ text });
  });
  $("stop").addEventListener("click", interrupt);
  $("reset").addEventListener("click", () => { interrupt(); send({ type: "reset" }); });
}

async function init() {
  bindControls();
  const info = await (await fetch("/info")).json();
  for (const mode of info.modes) {
    const option = document.createElement("option");
    option.value = option.textContent = mode;
    option.selected = mode === info.default_mode;
    $("mode").appendChild(option);
  }
  $("model").textContent = `${info.model} · ${info.llm.layers} layers · speech decoder ${info.speech_policy}, `
    + `${info.flow_steps} flow step(s)` + (info.demo ? " · random weights: the answers are noise" : "");
  connect();
}

init();
