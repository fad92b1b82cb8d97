// Drives the official AssemblyAI Node SDK (assemblyai@4.41.5, unchanged) against the local
// emulator over wss:// (the SDK accepts no other scheme). The emulator's CA is trusted through
// NODE_EXTRA_CA_CERTS, set by the caller.
//
// usage: node sdk_driver.mjs WSS_BASE HTTPS_BASE API_KEY AUDIO.raw MODE
//   MODE key        stream with the API key; UpdateConfiguration after 0.5 s of audio and
//                   ForceEndpoint FORCE_AT_MS (env, default 1800) into the audio
//   MODE token      mint a temporary token (GET /v3/token over https) and stream with it
//   MODE wrong-key  connect with a wrong key
//   MODE bad-update UpdateConfiguration with max_turn_silence 4294967295
// Prints one JSON object with everything the SDK delivered.

import { readFileSync } from "node:fs";
import { AssemblyAI, StreamingTranscriber } from "assemblyai";

const [wssBase, httpsBase, apiKey, audioPath, mode] = process.argv.slice(2);
const audio = readFileSync(audioPath);
const forceAtMs = Number(process.env.FORCE_AT_MS ?? "1800");
const report = { begin_id: null, partials: 0, finals: [], errors: [], warnings: [], close: null };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const params = {
    websocketBaseUrl: `${wssBase}/v3/ws`,
    sampleRate: 16000,
    speechModel: "universal-streaming-english",
    formatTurns: true,
  };
  if (mode === "token") {
    const client = new AssemblyAI({ apiKey, streamingBaseUrl: httpsBase });
    params.token = await client.streaming.createTemporaryToken({ expires_in_seconds: 60 });
    report.token_minted = typeof params.token === "string" && params.token.length > 0;
  } else {
    params.apiKey = mode === "wrong-key" ? "wrong-key" : apiKey;
  }
  const transcriber = new StreamingTranscriber(params);
  transcriber.on("open", (begin) => {
    report.begin_id = begin.id;
  });
  transcriber.on("turn", (turn) => {
    if (turn.end_of_turn) {
      report.finals.push({ turn_order: turn.turn_order, transcript: turn.transcript });
    } else {
      report.partials += 1;
    }
  });
  transcriber.on("warning", (w) => report.warnings.push(w.warning_code));
  transcriber.on("error", (err) => report.errors.push({ code: err.code ?? null, message: String(err.message) }));
  transcriber.on("close", (code, reason) => {
    report.close = { code, reason: String(reason ?? "") };
  });
  try {
    await transcriber.connect();
  } catch (err) {
    report.errors.push({ code: err.code ?? null, message: String(err.message), connect: true });
    return;
  }
  const chunk = 1600; // 50 ms
  const start = Date.now();
  for (let i = 0, n = 0; i < audio.length; i += chunk, n += 1) {
    if (report.close) break;
    let piece = audio.subarray(i, i + chunk);
    if (piece.length < chunk) piece = Buffer.concat([piece, Buffer.alloc(chunk - piece.length)]);
    transcriber.sendAudio(piece.buffer.slice(piece.byteOffset, piece.byteOffset + piece.length));
    const at = (n + 1) * 50;
    if (mode === "key" && at === 500) {
      transcriber.updateConfiguration({ end_of_turn_confidence_threshold: 0.5, min_turn_silence: 300 });
    }
    if (mode === "bad-update" && at === 500) {
      transcriber.updateConfiguration({ max_turn_silence: 4294967295 });
    }
    if (mode === "key" && at === forceAtMs) {
      transcriber.forceEndpoint();
      report.forced_at_ms = at;
    }
    await sleep(Math.max(0, start + at - Date.now()));
  }
  if (!report.close) {
    // close() sends Terminate and resolves at Termination, or after its 5 s timeout; it
    // removes the listeners first, so the close code is not seen here: the time tells.
    const t0 = Date.now();
    await transcriber.close(true, 5000);
    report.close_ms = Date.now() - t0;
  }
}

main()
  .catch((err) => report.errors.push({ code: err.code ?? null, message: String(err.message), fatal: true }))
  .finally(() => {
    console.log(JSON.stringify(report));
    process.exit(0);
  });
