// 客户群发: mass-message tasks (add_msg_template) waiting for this phone's user to confirm them, as in WeCom.
"use strict";

async function loadGroupMsg() {
  const box = document.getElementById("groupmsg");
  const user = document.getElementById("user").value;
  if (!box || !user) return;
  let data;
  try {
    const response = await fetch(`/sandbox/api/groupmsg?userid=${encodeURIComponent(user)}`);
    data = await response.json();
  } catch (err) {
    return;
  }
  box.replaceChildren();
  box.hidden = !data.tasks.length;
  for (const task of data.tasks) {
    const row = document.createElement("div");
    row.className = "groupmsg-task";
    const text = document.createElement("span");
    text.textContent = `客户群发待确认（${task.customers} 位客户）：${task.text}`;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "确认发送";
    button.dataset.msgid = task.msgid;
    button.addEventListener("click", async () => {
      button.disabled = true;
      await fetch("/sandbox/api/groupmsg/confirm", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ msgid: task.msgid }),
      });
      loadGroupMsg();
    });
    row.append(text, button);
    box.appendChild(row);
  }
}

setInterval(loadGroupMsg, 2000);
document.addEventListener("DOMContentLoaded", loadGroupMsg);
document.getElementById("user")?.addEventListener("change", loadGroupMsg);
