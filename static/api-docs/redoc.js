// Start Redoc on the schema named by #redoc-container. The nonce this script was loaded with goes
// to Redoc, which puts it on the <style> elements it adds: the page's policy allows only those.
(function () {
  "use strict";
  const nonce = document.currentScript.nonce;
  const container = document.getElementById("redoc-container");
  window.Redoc.init(container.dataset.specUrl, {nonce: nonce}, container);
})();
