// push.mjs: push a message to a uid through push_api, with Node's global fetch (Node 18 and later).
// Run: PUSH_API_KEY=<key> node push.mjs alice "hello from Node.js"
// PUSH_API_URL defaults to http://127.0.0.1:7070 (the push_api site of Caddyfile.example).
const [uid, message] = process.argv.slice(2);
if (message === undefined) {
  console.error("usage: node push.mjs <uid> <message>");
  process.exit(2);
}
const api = process.env.PUSH_API_URL ?? "http://127.0.0.1:7070";
const response = await fetch(`${api}/send`, {
  method: "POST",
  headers: { "Content-Type": "application/json", Authorization: `Bearer ${process.env.PUSH_API_KEY ?? ""}` },
  body: JSON.stringify({ uid, data: message }),
  signal: AbortSignal.timeout(10000),
});
const body = await response.text();
if (!response.ok) {
  console.error(`push_api refused: ${response.status} ${body}`);
  process.exit(1);
}
process.stdout.write(body);
