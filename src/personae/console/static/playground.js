// The chat playground's streaming: the form's turn is sent to `…/stream` and the answer is
// shown as its Server-Sent Events arrive (`delta` text, then the stored `message`, or an
// `error`). Without this script the form posts and the page reloads with the answer.
const form = document.getElementById("send");
const list = document.getElementById("messages");
const errorBox = document.getElementById("chat-error");
const csrf = document.querySelector('meta[name="csrf-token"]').content;

function item(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  list.appendChild(li);
  return li;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.classList.remove("hidden");
}

function thought(li, process) {
  const details = document.createElement("details");
  details.className = "thought";
  const summary = document.createElement("summary");
  summary.textContent = "Thought process";
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(process, null, 2);
  details.append(summary, pre);
  li.appendChild(details);
}

// One SSE block ("event: NAME\ndata: JSON") → [name, data].
function parse(block) {
  let name = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  return [name, data ? JSON.parse(data) : null];
}

async function send(event) {
  event.preventDefault();
  const text = form.message.value.trim();
  if (!text) return;
  errorBox.classList.add("hidden");
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  item("user", text);
  const answer = item("agent", "");
  answer.dataset.streaming = "true";
  answer.dataset.deltas = "0";
  const body = {
    message: text,
    conversation_id: form.conversation_id.value || null,
    verbose: form.verbose.checked,
  };
  try {
    const response = await fetch(`/console/chat/${list.dataset.characterId}/stream`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "text/event-stream" },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new Error(problem?.error?.message || `${response.status} ${response.statusText}`);
    }
    form.message.value = "";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let text_ = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const [name, data] = parse(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (name === "delta") {
          text_ += data.content;
          answer.textContent = text_;
          answer.dataset.deltas = String(Number(answer.dataset.deltas) + 1);
        } else if (name === "message") {
          answer.textContent = data.content;
          answer.dataset.messageId = data.id;
          answer.dataset.conversationId = data.conversation_id;
          if (data.thought_process) thought(answer, data.thought_process);
          if (!form.conversation_id.value) {
            form.conversation_id.value = data.conversation_id;
            history.replaceState(null, "", `?conversation=${encodeURIComponent(data.conversation_id)}`);
          }
        } else if (name === "error") {
          throw new Error(data?.error?.message || "The answer failed");
        }
      }
    }
  } catch (error) {
    answer.remove();
    showError(error.message);
  } finally {
    delete answer.dataset.streaming;
    button.disabled = false;
  }
}

form.addEventListener("submit", send);
