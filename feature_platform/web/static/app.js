// Keyboard answers, the lease countdown and lease renewal while the person is active.
// Plain forms do all the work without JavaScript; this only adds keys and the clock.
(function () {
  "use strict";
  function typing(event) {
    var t = event.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  }
  var sent = false;
  function press(button) {
    if (!button || sent) return;
    sent = true; // one key, one submission (a held key must not double submit)
    button.click();
  }
  document.addEventListener("keydown", function (event) {
    if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    var key = event.key;
    var scope = document.querySelector(".conflict.current") || document;
    var button = scope.querySelector('button[data-key="' + CSS.escape(key) + '"]');
    if (button) { event.preventDefault(); press(button); }
  });
  document.querySelectorAll("select.autosubmit").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  var task = document.getElementById("task");
  if (!task) return;
  var expires = Date.parse(task.dataset.expires);
  var clock = document.getElementById("countdown");
  var lastActive = Date.now();
  ["keydown", "mousemove", "click", "scroll"].forEach(function (name) {
    document.addEventListener(name, function () { lastActive = Date.now(); }, { passive: true });
  });
  function tick() {
    var left = Math.max(0, Math.round((expires - Date.now()) / 1000));
    var m = Math.floor(left / 60), s = left % 60;
    clock.textContent = m + ":" + (s < 10 ? "0" : "") + s;
    clock.className = left < 60 ? "warn" : "";
    if (left === 0) clock.textContent = "expired: reload for a task";
  }
  function renew() {
    // Renew only for someone who touched the page in the last two minutes.
    if (Date.now() - lastActive > 120000 || expires <= Date.now()) return;
    var body = new URLSearchParams({ csrf: task.dataset.csrf, task_id: task.dataset.taskId });
    fetch(task.dataset.renew, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && data.expires_at) expires = Date.parse(data.expires_at); });
  }
  tick();
  setInterval(tick, 1000);
  setInterval(renew, 60000);
})();
