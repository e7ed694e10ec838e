// The official OpenAI Node SDK (npm `openai`, pinned by package-lock.json)
// against `embedq serve`: the request the SDK makes by default (base64),
// float, dimensions, the `instruction` extension as an extra body field, and
// errors surfacing as the SDK's own error classes.
//
//   node openai_sdk_test.mjs BASE_URL REF_JSON
//
// REF_JSON (written by api_test.py, scenario sdk): {inputs, instruction,
// hidden, plain, d32, ins}: `embedq embed` vectors of the inputs without an
// instruction, at 32 dimensions, and with the instruction.
import fs from "node:fs";
import OpenAI from "openai";

const [baseURL, refPath] = process.argv.slice(2);
const ref = JSON.parse(fs.readFileSync(refPath, "utf8"));
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
let failures = 0;

function cos(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

function check(cond, what) {
  if (!cond) {
    failures++;
    console.error(`FAIL: ${what}`);
  } else {
    console.log(`ok: ${what}`);
  }
}

function sameAll(got, want, what) {
  check(got.data.length === want.length, `${what}: ${want.length} vectors`);
  got.data.forEach((d, i) => {
    check(d.index === i && d.embedding.length === want[i].length,
      `${what}: data[${i}] index and length ${want[i].length}`);
    const c = cos(d.embedding, want[i]);
    check(c >= 0.99999, `${what}: data[${i}] cosine ${c.toFixed(7)} >= 0.99999`);
  });
}

async function expectError(cls, status, fn, what, param) {
  try {
    await fn();
    check(false, `${what}: expected ${cls.name}`);
  } catch (e) {
    check(e instanceof cls && e.status === status,
      `${what}: ${cls.name} (${status}), got ${e.constructor.name} ${e.status}`);
    if (param !== undefined) check(e.param === param, `${what}: param ${param}, got ${e.param}`);
  }
}

// The default: the SDK asks for base64 and decodes it into floats.
const def = await client.embeddings.create({ model: "tiny", input: ref.inputs });
sameAll(def, ref.plain, "default (base64)");
check(def.model === "tiny" && def.object === "list", "model and object");
check(def.usage.prompt_tokens > 0 && def.usage.total_tokens === def.usage.prompt_tokens, "usage");

const flt = await client.embeddings.create({ model: "tiny", input: ref.inputs, encoding_format: "float" });
sameAll(flt, ref.plain, "encoding_format float");

const one = await client.embeddings.create({ model: "tiny", input: ref.inputs[0] });
sameAll(one, [ref.plain[0]], "a single string");

const d32 = await client.embeddings.create({ model: "tiny", input: ref.inputs, dimensions: 32 });
sameAll(d32, ref.d32, "dimensions 32");

// Extra body fields pass through the SDK as they are (Python: extra_body).
const ins = await client.embeddings.create({ model: "tiny", input: ref.inputs, instruction: ref.instruction });
sameAll(ins, ref.ins, "instruction (extra body field)");

await expectError(OpenAI.NotFoundError, 404,
  () => client.embeddings.create({ model: "gpt-nothing", input: "x" }), "unknown model");
await expectError(OpenAI.BadRequestError, 400,
  () => client.embeddings.create({ model: "tiny", input: "x", dimensions: 8 }), "dimensions 8", "dimensions");
await expectError(OpenAI.BadRequestError, 400,
  () => client.embeddings.create({ model: "tiny", input: ["ok", ""] }), "an empty input", "input[1]");
await expectError(OpenAI.BadRequestError, 400,
  () => client.embeddings.create({ model: "tiny", input: "x", truncate: "no" }), "truncate not a boolean", "truncate");

// 429: the server runs with --max-pending-inputs 64; a request of 2,000
// inputs keeps the lane busy while small ones arrive.
const bigP = client.embeddings.create({ model: "tiny", input: Array(2000).fill("words ".repeat(60)) })
  .then(() => "ok", (e) => e);
let rate = null, bigDone = false;
bigP.then(() => { bigDone = true; });
const metricsURL = baseURL.replace(/\/v1\/?$/, "") + "/metrics";
while (!rate && !bigDone) {
  // once its 2,000 inputs are pending (/metrics answers at once), a small
  // request must be refused
  const m = await (await fetch(metricsURL)).text();
  if (!m.includes("embedq_api_queue_inputs 2000")) {
    await new Promise((r) => setTimeout(r, 10));
    continue;
  }
  try {
    await client.embeddings.create({ model: "tiny", input: Array(64).fill("x") });
  } catch (e) {
    rate = e;
  }
}
check(rate instanceof OpenAI.RateLimitError && rate.status === 429,
  `busy: RateLimitError (429), got ${rate && rate.constructor.name}`);
check(rate && rate.headers && rate.headers.get("retry-after") === "1", "busy: Retry-After: 1");
check((await bigP) === "ok", "the large request itself is answered");

const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === "tiny", "models.list");

if (failures) {
  console.error(`${failures} failures`);
  process.exit(1);
}
console.log("openai SDK: all checks passed");
