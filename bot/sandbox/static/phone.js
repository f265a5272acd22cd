// The sandbox phone page: pick a user, read their chat, reply, tap card buttons, send a photo or a location.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: "", names: {}, lastJson: "", busy: false };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// WeCom markdown, the parts bots use: headings, bold, links, quotes, <font color="info|comment|warning">.
function renderMarkdown(source) {
  return escapeHtml(source).split("\n").map((line) => {
    let html = line
      .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
      .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>')
      .replace(/&lt;font color=&quot;(info|comment|warning)&quot;&gt;(.*?)&lt;\/font&gt;/g,
        '<span class="font-$1">$2</span>')
      .replace(/`([^`]+)`/g, "<code>$1</code>");
    const heading = html.match(/^#{1,6}\s+(.*)$/);
    if (heading) return `<h3>${heading[1]}</h3>`;
    if (html.startsWith("&gt; ")) return `<blockquote>${html.slice(5)}</blockquote>`;
    return `<p>${html || "&nbsp;"}</p>`;
  }).join("");
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "html") node.innerHTML = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function cardNode(item) {
  const card = item.card;
  const head = el("div", { class: "head" }, [
    el("div", { class: "t", text: card.title || "卡片消息" }),
    card.desc ? el("div", { class: "d", text: card.desc }) : null,
  ]);
  const rows = el("dl");
  for (const [key, value] of card.rows || []) {
    rows.appendChild(el("dt", { text: key }));
    rows.appendChild(el("dd", { text: value }));
  }
  const node = el("div", { class: "card", "data-seq": item.seq, "data-task": card.task_id || "" }, [head]);
  if ((card.rows || []).length) node.appendChild(rows);
  if (card.replace_name !== null && card.replace_name !== undefined) {
    node.appendChild(el("div", { class: "replaced", text: card.replace_name || "已处理" }));
  } else if ((card.buttons || []).length) {
    const buttons = el("div", { class: "buttons" });
    for (const button of card.buttons) {
      buttons.appendChild(el("button", {
        type: "button", class: button.style === 1 ? "" : "secondary", "data-key": button.key, text: button.text,
        onclick: (event) => tap(item.seq, button.key, event.currentTarget),
      }));
    }
    node.appendChild(buttons);
  }
  return node;
}

function itemNode(item) {
  let body;
  if (item.card) body = cardNode(item);
  else if (item.media_id) {
    body = el("div", { class: "bubble pic" }, [el("img", { class: "photo", alt: "照片", src: `/sandbox/pic/${item.media_id}` })]);
  } else if (item.kind === "markdown") body = el("div", { class: "bubble md", html: renderMarkdown(item.text || "") });
  else body = el("div", { class: "bubble", text: item.text || "" });
  const from = item.side === "bot"
    ? (item.channel === "app" ? "门店助手" : item.channel === "robot" ? "群机器人" : `群聊 ${item.to}`)
    : "";
  const col = el("div", { class: "col" }, [from ? el("div", { class: "from", text: from }) : null, body]);
  if (item.side === "me" && item.status !== 200) {
    col.appendChild(el("div", { class: "status", text: "发送失败，机器人没有应答" }));
  }
  return el("div", { class: `row ${item.side}`, "data-kind": item.kind }, [col]);
}

function render(items) {
  const chat = $("chat");
  const nearBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
  chat.replaceChildren();
  if (!items.length) {
    chat.appendChild(el("p", { class: "hint", id: "empty", text: "还没有消息。发“帮助”给门店助手试试。" }));
  }
  for (const item of items) chat.appendChild(itemNode(item));
  if (nearBottom || state.justSent) chat.scrollTop = chat.scrollHeight;
  state.justSent = false;
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(state.toastTimer);
  state.toastTimer = setTimeout(() => { box.hidden = true; }, 3000);
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch (err) { data = { ok: false, error: "沙盒没有返回结果" }; }
  if (!response.ok || data.ok === false) {
    throw new Error(data.error || (data.status ? `机器人返回 ${data.status}` : "机器人没有应答，请稍后再试"));
  }
  return data;
}

async function refresh() {
  if (!state.user) return;
  try {
    const data = await api(`/sandbox/api/chat?user=${encodeURIComponent(state.user)}`);
    const json = JSON.stringify(data.items);
    if (json !== state.lastJson) {
      state.lastJson = json;
      render(data.items);
    }
  } catch (err) {
    toast(err.message);
  }
}

async function post(path, body) {
  state.justSent = true;
  try {
    await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (err) {
    toast(err.message);
  }
  await refresh();
}

async function tap(seq, key, button) {
  button.disabled = true;
  await post("/sandbox/api/click", { user: state.user, seq, key });
  button.disabled = false;
}

async function press(button) {
  if (button.type === "view") { window.open(button.url, "_blank"); return; }
  const body = { user: state.user, key: button.key, type: button.type };
  if (button.type.startsWith("scancode_")) {
    const result = window.prompt("扫码：请输入条码数字", "6900000000011");
    if (!result) return;
    body.result = result;
  }
  await post("/sandbox/api/menu", body);
}

async function loadMenu() {
  try {
    const data = await api("/sandbox/api/menu");
    const json = JSON.stringify(data.buttons);
    if (json === state.menuJson) return;
    state.menuJson = json;
    const bar = $("menu");
    bar.replaceChildren(...data.buttons.map((b) => el("button", {
      type: "button", "data-key": b.key, text: b.name, onclick: () => press(b),
    })));
    bar.hidden = !data.buttons.length;
  } catch (err) {
    toast(err.message);
  }
}

async function sendText(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) { toast("请输入要发送的内容"); return; }
  $("text").value = "";
  $("send").disabled = true;
  await post("/sandbox/api/text", { user: state.user, text });
  $("send").disabled = false;
  $("text").focus();
}

async function sendPhotoFile() {
  const file = $("photo-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("user", state.user);
  form.append("photo", file);
  state.justSent = true;
  try { await api("/sandbox/api/photo", { method: "POST", body: form }); } catch (err) { toast(err.message); }
  $("photo-file").value = "";
  await refresh();
}

async function sendLocation(event) {
  event.preventDefault();
  $("location-form").hidden = true;
  await post("/sandbox/api/location", {
    user: state.user, lat: $("loc-lat").value, lng: $("loc-lng").value, label: $("loc-label").value,
  });
}

function chooseUser(userid) {
  state.user = userid;
  state.lastJson = "";
  localStorage.setItem("sandbox-user", userid);
  const url = new URL(window.location.href);
  url.searchParams.set("user", userid);
  history.replaceState(null, "", url);
  refresh();
}

async function start() {
  const data = await api("/sandbox/api/users");
  $("corp").textContent = data.corp_name || "企业微信沙盒";
  const select = $("user");
  for (const user of data.users) {
    state.names[user.userid] = user.name;
    select.appendChild(el("option", { value: user.userid, text: `${user.name}（${user.userid}）` }));
  }
  const wanted = new URL(window.location.href).searchParams.get("user") || localStorage.getItem("sandbox-user");
  const first = data.users.some((u) => u.userid === wanted) ? wanted : (data.users[0] || {}).userid || "";
  select.value = first;
  select.addEventListener("change", () => chooseUser(select.value));
  $("send-form").addEventListener("submit", sendText);
  $("photo").addEventListener("click", () => post("/sandbox/api/photo", { user: state.user }));
  $("photo-file").addEventListener("change", sendPhotoFile);
  $("location").addEventListener("click", () => { $("location-form").hidden = !$("location-form").hidden; });
  $("loc-cancel").addEventListener("click", () => { $("location-form").hidden = true; });
  $("location-form").addEventListener("submit", sendLocation);
  chooseUser(first);
  loadMenu();
  setInterval(refresh, 1000);
  setInterval(loadMenu, 5000);
}

start().catch((err) => toast(err.message));
