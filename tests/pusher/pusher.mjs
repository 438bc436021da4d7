// The real pusher-js client against the broadcast server, for
// tests/broadcast_pusher.rs: node pusher.mjs HOST PORT KEY.
//
// It prints `step NAME JSON` lines as it goes; the Rust test reads them,
// publishes from Rust when the client is ready, and restarts the server
// when asked. Any failure prints `failed: ...` and exits 1.

import Pusher from "pusher-js";

const [host, port, key] = process.argv.slice(2);
if (!host || !port || !key) {
  console.error("usage: node pusher.mjs HOST PORT KEY");
  process.exit(2);
}

const step = (name, data = {}) => console.log(`step ${name} ${JSON.stringify(data)}`);

const fail = (error) => {
  console.log(`failed: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
};
process.on("unhandledRejection", fail);
setTimeout(() => fail(new Error("the whole script took over 90 s")), 90_000).unref();

const within = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)),
  ]);

const once = (target, event) =>
  new Promise((resolve) => {
    const handler = (data) => {
      target.unbind(event, handler);
      resolve(data);
    };
    target.bind(event, handler);
  });

const expect = (ok, what) => {
  if (!ok) throw new Error(`expected ${what}`);
};

const client = (options = {}) =>
  new Pusher(key, {
    wsHost: host,
    wsPort: Number(port),
    forceTLS: false,
    enabledTransports: ["ws"],
    disableStats: true,
    cluster: "local",
    channelAuthorization: {
      endpoint: `http://${host}:${port}/broadcasting/auth`,
      transport: "ajax",
      headers: options.user ? { Authorization: `Bearer ${options.user}` } : {},
      ...(options.customHandler ? { customHandler: options.customHandler } : {}),
    },
  });

const connected = (pusher) =>
  pusher.connection.state === "connected" ? Promise.resolve() : once(pusher.connection, "connected");

const subscribed = (pusher, name) => {
  const channel = pusher.subscribe(name);
  return within(
    new Promise((resolve, reject) => {
      channel.bind("pusher:subscription_succeeded", (data) => resolve({ channel, data }));
      channel.bind("pusher:subscription_error", (error) => reject(new Error(`${name} refused: ${JSON.stringify(error)}`)));
    }),
    10_000,
    `subscribing to ${name}`,
  );
};

const refused = (pusher, name) => {
  const channel = pusher.subscribe(name);
  return within(
    new Promise((resolve, reject) => {
      channel.bind("pusher:subscription_succeeded", () => reject(new Error(`${name} should have been refused`)));
      channel.bind("pusher:subscription_error", (error) => resolve(error));
    }),
    10_000,
    `being refused ${name}`,
  );
};

// Reads `go NAME` lines from the Rust test.
const lines = [];
const waiting = [];
let buffer = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let at;
  while ((at = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, at).trim();
    buffer = buffer.slice(at + 1);
    if (waiting.length) waiting.shift()(line);
    else lines.push(line);
  }
});
const told = (what) =>
  within(
    new Promise((resolve) => (lines.length ? resolve(lines.shift()) : waiting.push(resolve))),
    30_000,
    `the test saying ${what}`,
  ).then((line) => expect(line === `go ${what}`, `"go ${what}", got "${line}"`));

async function main() {
  // Ann: a public, a private and a presence channel, through the real
  // auth endpoint.
  const ann = client({ user: "ann" });
  await within(connected(ann), 10_000, "ann connecting");
  const firstSocket = ann.connection.socket_id;
  expect(/^\d+\.\d+$/.test(firstSocket), `a socket id, got ${firstSocket}`);
  const [messages, session, room] = await Promise.all([
    subscribed(ann, "messages"),
    subscribed(ann, "private-session.7"),
    subscribed(ann, "presence-room.1"),
  ]);
  expect(room.data.count === 1, `one member, got ${room.data.count}`);
  expect(room.data.me.id === "7", `me to be 7, got ${room.data.me.id}`);
  expect(room.data.me.info.name === "ann", "ann's info");

  const received = [];
  const receivedAll = new Promise((resolve) => {
    for (const { channel } of [messages, session]) {
      channel.bind("message_post", (data) => {
        received.push({ channel: channel.name, data });
        if (received.length === 2) resolve();
      });
    }
  });
  step("subscribed", { socket_id: firstSocket });
  await within(receivedAll, 10_000, "message_post on messages and private-session.7");
  received.sort((a, b) => a.channel.localeCompare(b.channel));
  step("received", { events: received });

  // Bob joins the presence channel, then leaves.
  const bob = client({ user: "bob" });
  const added = once(room.channel, "pusher:member_added");
  const bobRoom = await subscribed(bob, "presence-room.1");
  expect(bobRoom.data.count === 2, `two members for bob, got ${bobRoom.data.count}`);
  const member = await within(added, 10_000, "member_added");
  step("member_added", { id: member.id, info: member.info, count: room.channel.members.count });
  const removed = once(room.channel, "pusher:member_removed");
  bob.disconnect();
  const gone = await within(removed, 10_000, "member_removed");
  step("member_removed", { id: gone.id, count: room.channel.members.count });

  // Refusals: someone else's session (the endpoint says 403), nobody
  // signed in (403), and a forged signature (the server says 4009).
  const byEndpoint = await refused(ann, "private-session.9");
  const nobody = client();
  await within(connected(nobody), 10_000, "an anonymous client connecting");
  const anonymous = await refused(nobody, "private-session.7");
  const forger = client({
    customHandler: (params, callback) => callback(null, { auth: `${key}:${"0".repeat(64)}` }),
  });
  await within(connected(forger), 10_000, "the forger connecting");
  const forgerError = once(forger.connection, "error");
  const byServer = await refused(forger, "private-session.7");
  const connectionError = await within(forgerError, 10_000, "pusher:error on the forger's connection");
  step("refused", {
    endpoint: byEndpoint.status,
    anonymous: anonymous.status,
    server: { type: byServer.type, status: byServer.status, code: connectionError.data && connectionError.data.code },
  });
  nobody.disconnect();
  forger.disconnect();

  // The server restarts: ann reconnects on her own and resubscribes.
  const states = [];
  ann.connection.bind("state_change", ({ current }) => states.push(current));
  const resubscribed = Promise.all(
    [messages, session, room].map(({ channel }) => once(channel, "pusher:subscription_succeeded")),
  );
  step("restart");
  await told("restarted");
  await within(resubscribed, 30_000, "resubscribing after the restart");
  await within(connected(ann), 10_000, "ann connected again");
  const secondSocket = ann.connection.socket_id;
  expect(secondSocket !== firstSocket, "a new socket id after the restart");
  const again = once(messages.channel, "message_post");
  step("reconnected", { socket_id: secondSocket, states, members: room.channel.members.count });
  const data = await within(again, 10_000, "message_post after the restart");
  step("received_again", { data });
  ann.disconnect();
  process.exit(0);
}

main().catch(fail);
