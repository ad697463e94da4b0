// Uses pushhub.js's API as an application would, for tsc to check against
// pushhub.d.ts (--noEmit --strict); the @ts-expect-error lines must fail.
import { PushHub, PushHubError } from "./pushhub.js";
import type { CloseDetail, Message, PushHubState, SendReceipt, Welcome } from "./pushhub.js";

const hub = new PushHub("wss://push.example.com/ws", { token: "eyJ...", pingInterval: 0, storage: null });
const demo = new PushHub("ws://localhost:8080/ws", { uid: "alice" });

const off: () => void = hub.on("message", (m: Message) => {
  const seq: number = m.seq;
  const from: string | undefined = m.from;
  console.log(seq, from, m.group, m.data);
});
off();
hub.on("welcome", (w: Welcome) => {
  const resumed: boolean = w.resume?.recovered ?? false;
  console.log(w.uid, w.conn_id, w.seq, w.epoch, resumed, w.resume?.reason);
});
hub.on("state", ({ state }) => {
  const s: PushHubState = state;
  console.log(s);
});
hub.on("close", (c: CloseDetail) => console.log(c.code, c.reason, c.reconnectIn ?? "not reconnecting"));
hub.on("error", (e) => console.log(e.code, e.message));
hub.addEventListener("message", (ev) => console.log(ev.detail.seq));

async function use(): Promise<void> {
  const r: SendReceipt = await hub.send({ to: "bob", data: { text: "hi" } });
  console.log(r.delivered, r.dropped);
  await hub.send({ group: "room-1", data: "hello room" });
  await hub.send({ all: true, data: 42 });
  await hub.app({ cart: 42 });
  await hub.join("room-1");
  await hub.leave("room-1");
  const rtt: number = await hub.ping();
  console.log(rtt, hub.state, hub.uid, hub.connId, hub.lastSeq, hub.epoch, [...hub.groups]);
  try {
    await demo.app("to the application");
  } catch (err) {
    if (err instanceof PushHubError) console.log(err.code, err.message);
  }
  demo.close();
}
void use();

// What the declarations must refuse.
// @ts-expect-error: a uid is a string
new PushHub("ws://localhost:8080/ws", { uid: 42 });
// @ts-expect-error: exactly one target
void hub.send({ to: "bob", group: "room-1", data: 1 });
// @ts-expect-error: a target is needed
void hub.send({ data: 1 });
// @ts-expect-error: no such event
hub.on("messages", () => {});
// @ts-expect-error: a message's seq is a number
hub.on("message", (m) => m.seq.toUpperCase());
// @ts-expect-error: the state is the client's to change
hub.state = "online";
