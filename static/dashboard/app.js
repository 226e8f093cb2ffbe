// Small progressive enhancements; every page also works without JavaScript.
(function () {
  "use strict";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // <button data-open-dialog="id"> opens <dialog id="id">; [data-close-dialog] closes it.
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog && dialog.showModal) { event.preventDefault(); dialog.showModal(); }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) { const dialog = closer.closest("dialog"); if (dialog) dialog.close(); }
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
    const url = form.dataset.uploadUrl.replace("__kind__", encodeURIComponent(kindField ? kindField.value : ""))
      + "?filename=" + encodeURIComponent(file.name);
    const progress = form.querySelector("progress") || form.appendChild(document.createElement("progress"));
    const status = form.querySelector("[data-upload-status]");
    const button = form.querySelector('button[type="submit"]');
    progress.max = file.size || 1; progress.value = 0; progress.hidden = false;
    if (button) button.disabled = true;
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

  // <form data-confirm="question">: ask before an irreversible post.
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) { event.preventDefault(); event.stopImmediatePropagation(); }
  }, true);

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
    xhr.send(new FormData(form));
  });
})();
