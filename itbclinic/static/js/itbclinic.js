/* ITB Clinic: the few behaviours the pages need. Served as a static file: the content
   security policy allows no inline script. Every page works without it. */
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  onReady(function () {
    // "Print" buttons (wallet card).
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        window.print();
      });
    });

    // Proposed dates: choosing one fills the date field of the same form, no page reload.
    document.querySelectorAll("[data-fill-date]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var target = document.getElementById(link.getAttribute("data-fill-target") || "id_day");
        if (!target) {
          return;
        }
        event.preventDefault();
        target.value = link.getAttribute("data-fill-date");
        document.querySelectorAll("[data-fill-date]").forEach(function (other) {
          other.classList.remove("chosen");
        });
        link.classList.add("chosen");
        target.focus();
      });
    });
  });
})();
