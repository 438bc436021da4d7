// The chat page: pusher-js (vendored, served at /pusher.min.js) joins the
// room's presence channel through /broadcasting/auth, shows who is here,
// receives `message` events broadcast from Rust, sends messages with a
// POST to /messages and "typing…" as a client event.
"use strict";

const params = new URLSearchParams(location.search);
const name = params.get("name") || "";
const room = params.get("room") || "lobby";
const valid = (s) => /^[A-Za-z0-9_-]{1,20}$/.test(s);
const $ = (id) => document.getElementById(id);

function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function addMessage(message, mine = false) {
  const li = document.createElement("li");
  li.className = mine ? "mine" : "";
  li.dataset.user = message.user;
  const who = document.createElement("b");
  who.textContent = message.user;
  li.append(who, document.createTextNode(message.text));
  $("messages").append(li);
  $("messages").scrollTop = $("messages").scrollHeight;
}

function showMembers(members) {
  const list = $("members");
  list.replaceChildren();
  members.each((member) => {
    const li = document.createElement("li");
    li.dataset.member = member.id;
    li.textContent = member.info && member.info.name ? member.info.name : member.id;
    list.append(li);
  });
  $("count").textContent = String(members.count);
}

$("room").textContent = valid(room) ? room : "?";

if (!valid(room)) {
  status("a room's name is 1 to 20 letters, digits, - or _", true);
} else if (!valid(name)) {
  status("choose a name to join");
  $("sign-in").hidden = false;
  $("sign-in").addEventListener("submit", (e) => {
    e.preventDefault();
    const chosen = $("name").value.trim();
    if (!valid(chosen)) {
      status("a name is 1 to 20 letters, digits, - or _", true);
      return;
    }
    params.set("name", chosen);
    location.search = params.toString();
  });
} else {
  const key = document.querySelector('meta[name="pusher-key"]').content;
  const secure = location.protocol === "https:";
  const port = Number(location.port || (secure ? 443 : 80));
  const pusher = new Pusher(key, {
    wsHost: location.hostname,
    wsPort: port,
    wssPort: port,
    forceTLS: secure,
    enabledTransports: ["ws", "wss"],
    disableStats: true,
    cluster: "local",
    channelAuthorization: {
      endpoint: "/broadcasting/auth",
      transport: "ajax",
      headers: { "X-Chat-User": name },
    },
  });
  const channel = pusher.subscribe("presence-room." + room);

  pusher.connection.bind("state_change", ({ current }) => {
    if (current !== "connected") status(current + "…", current === "unavailable" || current === "failed");
  });
  channel.bind("pusher:subscription_succeeded", () => {
    status("connected as " + name);
    $("chat").hidden = false;
    $("text").focus();
    showMembers(channel.members);
  });
  channel.bind("pusher:subscription_error", (error) => {
    status("could not join the room: " + (error && error.error ? error.error : "refused"), true);
  });
  channel.bind("pusher:member_added", () => showMembers(channel.members));
  channel.bind("pusher:member_removed", () => showMembers(channel.members));
  channel.bind("message", (message) => addMessage(message));

  let typingTimer = null;
  channel.bind("client-typing", (data) => {
    if (!data || !valid(data.name)) return;
    $("typing").textContent = data.name + " is typing…";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 3000);
  });
  let lastTyping = 0;
  $("text").addEventListener("input", () => {
    const now = Date.now();
    if (now - lastTyping > 2000) {
      lastTyping = now;
      channel.trigger("client-typing", { name });
    }
  });

  $("post").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    const response = await fetch("/messages", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "X-Chat-User": name,
        "X-Socket-ID": pusher.connection.socket_id || "",
      },
      body: JSON.stringify({ room, text }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      status(body.error || "the message was not sent (" + response.status + ")", true);
      return;
    }
    $("text").value = "";
    addMessage(body, true);
  });
}
