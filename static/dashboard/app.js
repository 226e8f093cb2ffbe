// Small progressive enhancements; every page also works without JavaScript.

// Show a modal <dialog>, focus its least destructive control (or its first), and give the focus
// back to `opener` when it closes.
function openDialog(dialog, opener) {
  "use strict";
  dialog.addEventListener("close", function () {
    if (opener && document.contains(opener)) opener.focus();
  }, {once: true});
  dialog.showModal();
  const first = dialog.querySelector("[data-dialog-initial-focus]") || dialog.querySelector("[autofocus]");
  if (first) first.focus();
}

// Direct uploads (S3 storage): the file's parts go from the browser straight to the bucket, as the
// client's do (README "Direct uploads"); the web process never sees its bytes. The SHA-256 the
// workers check the stored file against is computed here first (vendor/sha256.min.js, a chunk
// at a time, never the whole file in memory). An interrupted upload resumes from the parts the
// bucket holds when the same file is chosen again (the session id is kept in localStorage).
const directUploads = (function () {
  "use strict";
  const HASH_CHUNK = 8 * 1024 * 1024;
  const PARALLEL = 4;
  const URLS_PER_REQUEST = 1000;
  const ATTEMPTS = 3;

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function call(method, url, body) {
    const response = await fetch(url, {
      method: method, credentials: "same-origin",
      headers: {"Accept": "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) {
      const error = new Error((data && data.detail) || ("The registry answered " + response.status + "."));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  async function hashFile(file, report) {
    const hash = sha256.create();
    for (let offset = 0; offset < file.size; offset += HASH_CHUNK) {
      hash.update(await file.slice(offset, offset + HASH_CHUNK).arrayBuffer());
      report(Math.min(file.size, offset + HASH_CHUNK));
    }
    return hash.hex();
  }

  function putPart(url, blob, report) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", url);  // the URL carries its own authority: no cookie, no token
      xhr.upload.addEventListener("progress", function (e) { report(e.loaded); });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) { report(blob.size); resolve(); }
        else reject(new Error("The bucket refused a part (" + xhr.status + ")."));
      });
      xhr.addEventListener("error", function () { reject(new Error("The connection to the bucket failed.")); });
      xhr.send(blob);
    });
  }

  function partSize(session, number) {
    return number < session.part_count ? session.part_size : session.size - session.part_size * (session.part_count - 1);
  }

  // Send `file` as the `kind` file of the version whose form is `form` (data-direct-upload-url,
  // data-direct-upload-api); `show(text, fraction)` reports progress. Resolves when the file is
  // the format's (the workers then check it), rejects with a message to show.
  async function send(form, file, kind, show) {
    const startUrl = form.dataset.directUploadUrl.replace("__kind__", encodeURIComponent(kind));
    const api = function (id, tail) {
      return form.dataset.directUploadApi.replace("__upload__", encodeURIComponent(id)) + (tail || "");
    };
    const key = "registry-upload:" + startUrl + ":" + file.name + ":" + file.size + ":" + file.lastModified;
    let session = null;
    const saved = window.localStorage ? window.localStorage.getItem(key) : null;
    if (saved) {
      try { session = (await call("GET", api(saved, "parts/?numbers=1"))).upload; }
      catch (error) { if (error.status !== 404) throw error; }
      if (!session || session.size !== file.size) { session = null; window.localStorage.removeItem(key); }
    }
    if (!session) {
      const digest = await hashFile(file, function (done) {
        show("Computing the file's SHA-256… " + Math.round(100 * done / file.size) + "%", done / file.size);
      });
      session = await call("POST", startUrl, {size: file.size, sha256: digest, filename: file.name,
                                              content_type: file.type || ""});
      if (window.localStorage) window.localStorage.setItem(key, session.id);
    }
    const progress = {};
    const report = function () {
      let sent = 0;
      Object.keys(progress).forEach(function (n) { sent += progress[n]; });
      show("Uploading… " + Math.round(100 * sent / file.size) + "%", sent / file.size);
    };
    for (let first = 1; first <= session.part_count; first += URLS_PER_REQUEST) {
      const last = Math.min(session.part_count, first + URLS_PER_REQUEST - 1);
      let listing = await call("GET", api(session.id, "parts/?numbers=" + first + "-" + last));
      const stored = {};
      listing.stored.forEach(function (part) { stored[part.number] = part.size; });
      const queue = [];
      for (let n = first; n <= last; n++) {
        if (stored[n] === partSize(session, n)) progress[n] = partSize(session, n);  // resumed: kept
        else queue.push(n);
      }
      report();
      // A part that still fails after ATTEMPTS tries ends the upload, but only once the parts
      // already on their way have settled: what they send is kept for the resume, and the failure
      // is the last thing the status line says (a late part's progress must not overwrite it).
      let failure = null;
      const sendPart = async function (n) {
        const offset = (n - 1) * session.part_size;
        const blob = file.slice(offset, offset + partSize(session, n));
        for (let attempt = 1; ; attempt++) {
          try {
            await putPart(listing.urls[String(n)], blob, function (done) { progress[n] = done; report(); });
            return;
          } catch (error) {
            progress[n] = 0;
            if (attempt >= ATTEMPTS || failure) throw error;
            // A fresh URL, in case this one expired.
            listing.urls[String(n)] = (await call("GET", api(session.id, "parts/?numbers=" + n))).urls[String(n)];
          }
        }
      };
      const worker = async function () {
        while (queue.length && !failure) {
          const n = queue.shift();
          try { await sendPart(n); } catch (error) { failure = failure || error; }
        }
      };
      const workers = [];
      for (let k = 0; k < PARALLEL; k++) workers.push(worker());
      await Promise.all(workers);
      if (failure) throw failure;
    }
    show("Uploaded. Checking the parts…", 1);
    await call("POST", api(session.id, "complete/"));
    if (window.localStorage) window.localStorage.removeItem(key);
  }

  return {
    available: function (form) { return Boolean(form && form.dataset.directUploadUrl && window.sha256 && window.fetch); },
    send: send,
  };
})();

(function () {
  "use strict";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // <button data-open-dialog="id"> opens <dialog id="id">; [data-close-dialog] closes it (a Cancel
  // link that is the page's own way back without JavaScript closes the dialog instead of leaving).
  // A closed dialog gives the focus back to what opened it; Escape closes (the browser's own).
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog && dialog.showModal) { event.preventDefault(); openDialog(dialog, opener); }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) {
      const dialog = closer.closest("dialog");
      if (dialog) { event.preventDefault(); dialog.close(); }
    }
  });

  // <select data-submit-on-change>: a choice sends its form (the sort order of the model list).
  document.addEventListener("change", function (event) {
    const select = event.target.closest("select[data-submit-on-change]");
    if (!select || !select.form) return;
    if (select.form.requestSubmit) select.form.requestSubmit(); else select.form.submit();
  });

  // <input data-select-on-focus>: focusing selects the whole value, ready to copy.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("input[data-select-on-focus]")) event.target.select();
  });

  // <button data-copy="id">: copy the value of <input id="id"> to the clipboard, and say so.
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    field.select();
    if (navigator.clipboard) navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  });

  // Reopen a dialog whose form came back with errors.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("dialog[data-open-on-load]").forEach(function (d) { if (d.showModal) d.showModal(); });
  });

  // Send `file` straight to the bucket through `form` (data-direct-upload-url), showing progress in
  // its <progress> and status line; then follow data-upload-next.
  function sendDirect(form, file, kind) {
    const progress = form.querySelector("progress") || form.appendChild(document.createElement("progress"));
    const status = form.querySelector("[data-upload-status]");
    const button = form.querySelector('button[type="submit"]');
    progress.max = 1; progress.value = 0; progress.hidden = false;
    if (button) button.disabled = true;
    if (status) status.classList.remove("field-error");
    directUploads.send(form, file, kind, function (text, fraction) {
      progress.value = fraction;
      if (status) status.textContent = text;
    }).then(function () {
      if (status) status.textContent = "Uploaded. Checking the file…";
      window.location = form.dataset.uploadNext || window.location.href;
    }, function (error) {
      if (status) { status.textContent = error.message + " Choose the same file again to resume."; status.classList.add("field-error"); }
      if (button) button.disabled = false;
    });
  }
  window.registrySendDirect = sendDirect;

  // <form data-upload-url="..."> with a file input: PUT the raw file to the API with a progress bar,
  // then follow data-upload-next. Without JavaScript the form posts to the dashboard instead.
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-upload-url]");
    if (!form) return;
    const input = form.querySelector('input[type="file"]');
    const kindField = form.querySelector('[name="kind"]');
    if (!input || !input.files.length) return;
    event.preventDefault();
    const file = input.files[0];
    const kind = kindField ? kindField.value : "";
    const url = form.dataset.uploadUrl.replace("__kind__", encodeURIComponent(kind))
      + "?filename=" + encodeURIComponent(file.name);
    const progress = form.querySelector("progress") || form.appendChild(document.createElement("progress"));
    const status = form.querySelector("[data-upload-status]");
    const button = form.querySelector('button[type="submit"]');
    progress.max = file.size || 1; progress.value = 0; progress.hidden = false;
    if (button) button.disabled = true;
    if (file.size > 0 && directUploads.available(form)) {
      sendDirect(form, file, kind);
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { progress.max = e.total; progress.value = e.loaded; }
      if (status) status.textContent = "Uploading… " + Math.round(100 * e.loaded / (e.total || 1)) + "%";
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 300) {
        if (status) status.textContent = "Uploaded. Checking the file…";
        window.location = form.dataset.uploadNext || window.location.href;
      } else {
        let message = "Upload failed (" + xhr.status + ").";
        try { message = JSON.parse(xhr.responseText).detail || message; } catch (e) { /* not JSON */ }
        if (status) { status.textContent = message; status.classList.add("field-error"); }
        if (button) button.disabled = false;
      }
    });
    xhr.addEventListener("error", function () {
      if (status) { status.textContent = "The connection failed; try again."; status.classList.add("field-error"); }
      if (button) button.disabled = false;
    });
    xhr.send(file);
  });
})();

// Model page enhancements.
(function () {
  "use strict";

  // <form data-progress-submit enctype="multipart/form-data">: post through XHR to show upload
  // progress, then show the page the server answered with (where it redirected, or the form
  // with its errors) in place of <main>.
  let swapped = false;
  // The address bar moved without a load: Back and Forward load the page they point to.
  window.addEventListener("popstate", function (event) {
    if (swapped || (event.state && event.state.swapped)) window.location.reload();
  });
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-progress-submit]");
    if (!form || event.defaultPrevented) return;
    const input = form.querySelector('input[type="file"]');
    if (!input || !input.files.length || !window.FormData) return;
    event.preventDefault();
    // On S3 the version is created without its file, which then goes straight to the bucket
    // from the Formats tab the answer shows (its add-a-file form).
    const kindField = form.querySelector('[name="kind"]');
    const direct = form.hasAttribute("data-direct-upload") && window.registrySendDirect && input.files[0].size > 0
      ? {file: input.files[0], kind: kindField ? kindField.value : ""} : null;
    const body = new FormData(form);
    if (direct) { body.delete(input.name); body.append("direct_upload", "1"); }
    const progress = form.querySelector("progress");
    const status = form.querySelector("[data-upload-status]");
    const button = form.querySelector('button[type="submit"]');
    if (progress) { progress.hidden = false; progress.value = 0; progress.max = 1; }
    if (button) button.disabled = true;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      if (progress) { progress.max = e.total; progress.value = e.loaded; }
      if (status) status.textContent = "Uploading… " + Math.round(100 * e.loaded / (e.total || 1)) + "%";
    });
    xhr.addEventListener("load", function () {
      const redirected = xhr.status < 300 && xhr.responseURL && xhr.responseURL !== form.action;
      const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const main = document.querySelector("main");
      const fresh = page.querySelector("main");
      if (main && fresh) {
        // Show the page the server answered with, also after a redirect: loading it again
        // would lose its one-time messages ("Version 2 created…", or why the file was refused).
        if (redirected) { history.pushState({swapped: true}, "", xhr.responseURL); swapped = true; }
        if (page.title) document.title = page.title;
        main.innerHTML = fresh.innerHTML;
        if (window.htmx) window.htmx.process(main);
        const firstError = main.querySelector(".field-error, .form-error");
        if (firstError) firstError.scrollIntoView({block: "center"});
        else if (redirected) window.scrollTo(0, 0);
        const target = direct && redirected ? main.querySelector("form[data-direct-upload-url]") : null;
        if (target) {
          const select = target.querySelector('[name="kind"]');
          if (select) select.value = direct.kind;
          window.registrySendDirect(target, direct.file, direct.kind);
        }
      } else if (redirected) {
        window.location = xhr.responseURL;
      } else if (status) {
        status.textContent = "The upload failed (" + xhr.status + ")."; status.classList.add("field-error");
        if (button) button.disabled = false;
      }
    });
    xhr.addEventListener("error", function () {
      if (status) { status.textContent = "The connection failed; try again."; status.classList.add("field-error"); }
      if (button) button.disabled = false;
    });
    xhr.send(body);
  });
})();

// Confirmations: one in-page dialog for every action that asks first.
(function () {
  "use strict";

  function sharedDialog() {
    let dialog = document.getElementById("confirm-dialog");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "confirm-dialog";
      dialog.className = "confirm-dialog";
      dialog.setAttribute("aria-labelledby", "confirm-title");
      document.body.appendChild(dialog);
    }
    return dialog;
  }

  // <a href="confirmation page" data-confirm-dialog>: show that page's confirmation card (its
  // question, its form and its Cancel) in a dialog. Without JavaScript the link opens the page.
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("a[data-confirm-dialog]");
    if (!opener || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    fetch(opener.href, {credentials: "same-origin"}).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.text();
    }).then(function (text) {
      const card = new DOMParser().parseFromString(text, "text/html").querySelector("[data-confirm-card]");
      if (!card) { window.location = opener.href; return; }
      const dialog = sharedDialog();
      dialog.replaceChildren(document.importNode(card, true));
      openDialog(dialog, opener);
    }).catch(function () { window.location = opener.href; });
  });

  // A form in the dialog that only downloads (GET) leaves the page where it is: close the dialog.
  document.addEventListener("submit", function (event) {
    const dialog = event.target.closest("dialog.confirm-dialog");
    if (dialog && event.target.method === "get") window.setTimeout(function () { dialog.close(); }, 0);
  });

  // <form data-confirm="question">: ask in the same dialog before posting.
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (!form || form.dataset.confirmed === "yes") return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const submitter = event.submitter;
    const dialog = sharedDialog();
    const title = document.createElement("h2");
    title.id = "confirm-title";
    title.textContent = form.dataset.confirm;
    const actions = document.createElement("div");
    actions.className = "actions";
    const yes = document.createElement("button");
    yes.type = "button";
    yes.className = (submitter && submitter.className) || "primary";
    yes.textContent = (submitter && submitter.textContent.trim()) || "Confirm";
    const no = document.createElement("button");
    no.type = "button";
    no.textContent = "Cancel";
    no.setAttribute("data-close-dialog", "");
    no.setAttribute("data-dialog-initial-focus", "");
    actions.append(yes, no);
    dialog.replaceChildren(title, actions);
    yes.addEventListener("click", function () {
      dialog.close();
      form.dataset.confirmed = "yes";
      if (form.requestSubmit) form.requestSubmit(submitter || undefined); else form.submit();
    });
    openDialog(dialog, submitter || form.querySelector("button"));
  }, true);
})();

// Forms as they are typed in.
(function () {
  "use strict";

  // Controls that only work with JavaScript (the Markdown preview) are hidden until it runs.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-needs-js]").forEach(function (el) { el.hidden = false; });
  });

  // JSON object fields ([data-json-object] around a textarea): say at once when the text is not a
  // JSON object, next to the field and in a summary at the top of the form.
  function jsonProblem(text, list) {
    if (!text.trim()) return "";
    let value;
    try { value = JSON.parse(text); } catch (error) { return "This is not valid JSON: " + error.message; }
    if (list) {  // [data-json-object="list"]: a JSON list of objects
      return Array.isArray(value) ? "" : 'Enter a JSON list in brackets, e.g. [{"name": "weights", …}].';
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return 'Enter a JSON object in braces, e.g. {"learning_rate": 0.01}.';
    }
    return "";
  }

  function fieldLabel(field) {
    const label = field.querySelector("label");
    return label ? label.textContent.replace("*", "").trim() : "A field";
  }

  function updateSummary(form) {
    let summary = form.querySelector("[data-error-summary]");
    const problems = Array.from(form.querySelectorAll("[data-json-object].has-live-error"));
    if (!summary) {
      summary = document.createElement("div");
      summary.className = "error-summary";
      summary.setAttribute("data-error-summary", "");
      summary.setAttribute("role", "alert");
      summary.tabIndex = -1;
      form.prepend(summary);
    }
    if (summary.dataset.server === "yes" && !problems.length) return;
    summary.dataset.server = "";
    summary.replaceChildren();
    summary.hidden = !problems.length;
    if (!problems.length) return;
    const heading = document.createElement("p");
    heading.textContent = problems.length === 1 ? "One field needs fixing:" : problems.length + " fields need fixing:";
    const list = document.createElement("ul");
    problems.forEach(function (field) {
      const input = field.querySelector("textarea");
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = "#" + input.id;
      link.textContent = fieldLabel(field) + ": " + field.querySelector("[data-live-error]").textContent;
      item.appendChild(link);
      list.appendChild(item);
    });
    summary.append(heading, list);
  }

  function check(field) {
    const input = field.querySelector("textarea");
    if (!input) return true;
    const problem = jsonProblem(input.value, field.getAttribute("data-json-object") === "list");
    let message = field.querySelector("[data-live-error]");
    if (!message) {
      message = document.createElement("div");
      message.className = "field-error";
      message.id = input.id + "-live-error";
      message.setAttribute("data-live-error", "");
      message.setAttribute("aria-live", "polite");
      input.insertAdjacentElement("afterend", message);
    }
    message.textContent = problem;
    message.hidden = !problem;
    field.classList.toggle("has-live-error", Boolean(problem));
    field.classList.toggle("has-error", Boolean(problem) || Boolean(field.querySelector(".field-error:not([data-live-error])")));
    if (problem) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", message.id);
    } else if (!field.querySelector(".field-error:not([data-live-error])")) {
      input.removeAttribute("aria-invalid");
    }
    if (input.form) updateSummary(input.form);
    return !problem;
  }

  let timer = null;
  document.addEventListener("input", function (event) {
    const field = event.target.closest("[data-json-object]");
    if (!field) return;
    window.clearTimeout(timer);
    timer = window.setTimeout(function () { check(field); }, 300);
  });
  document.addEventListener("focusout", function (event) {
    const field = event.target.closest("[data-json-object]");
    if (field) check(field);
  });

  // A form with a field in error is not sent: the summary at its top says what to fix.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    const fields = Array.from(form.querySelectorAll("[data-json-object]"));
    if (!fields.length) return;
    const ok = fields.map(check).every(Boolean);
    if (!ok) {
      event.preventDefault();
      event.stopImmediatePropagation();
      const summary = form.querySelector("[data-error-summary]");
      if (summary) { summary.scrollIntoView({block: "start"}); summary.focus(); }
    }
  }, true);

  // The Add member form: suggest accounts and groups by the start of their name (context admins
  // only, see dashboard/views/assist.py). Without JavaScript the exact name is typed.
  function suggestionsFor(form, input, key) {
    const list = document.createElement("datalist");
    list.id = input.id + "-suggestions";
    form.appendChild(list);
    input.setAttribute("list", list.id);
    input.setAttribute("autocomplete", "off");
    let pending = null;
    input.addEventListener("input", function () {
      window.clearTimeout(pending);
      const typed = input.value.trim();
      if (typed.length < 2) { list.replaceChildren(); return; }
      pending = window.setTimeout(function () {
        fetch(form.dataset.suggestUrl + "?q=" + encodeURIComponent(typed), {credentials: "same-origin"})
          .then(function (response) { return response.ok ? response.json() : {users: [], groups: []}; })
          .then(function (found) {
            list.replaceChildren.apply(list, (found[key] || []).map(function (name) {
              const option = document.createElement("option");
              option.value = name;
              return option;
            }));
          }).catch(function () { list.replaceChildren(); });
      }, 200);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-suggest-url]").forEach(function (form) {
      const user = form.querySelector('input[name="username"]');
      const group = form.querySelector('input[name="group"]');
      if (user) suggestionsFor(form, user, "users");
      if (group) suggestionsFor(form, group, "groups");
    });
  });
})();

// On a phone the tabs are one row that scrolls sideways (app.css): show the current one.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".tabs [aria-current]").forEach(function (tab) {
      const row = tab.parentElement;
      if (row.scrollWidth > row.clientWidth) {
        row.scrollLeft = tab.offsetLeft - row.offsetLeft - (row.clientWidth - tab.offsetWidth) / 2;
      }
    });
  });
})();
