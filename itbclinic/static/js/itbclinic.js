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
    // A creating form's button is disabled once the form is sent, so a double click sends it
    // once (a courtesy: the one-time form token, core/idempotency.py, is what the server holds).
    document.querySelectorAll("form").forEach(function (form) {
      var buttons = form.querySelectorAll("[data-disable-on-submit]");
      if (!buttons.length) {
        return;
      }
      form.addEventListener("submit", function (event) {
        if (form.getAttribute("data-sent") === "1") {
          event.preventDefault();
          return;
        }
        form.setAttribute("data-sent", "1");
        // After this tick, so the button that was clicked is still sent with the form.
        window.setTimeout(function () {
          buttons.forEach(function (button) {
            button.disabled = true;
            button.setAttribute("aria-disabled", "true");
          });
        }, 0);
      });
    });
    // Back to a page from the browser's cache: its buttons work again (the token still holds).
    window.addEventListener("pageshow", function (event) {
      if (!event.persisted) {
        return;
      }
      document.querySelectorAll("form[data-sent]").forEach(function (form) {
        form.removeAttribute("data-sent");
        form.querySelectorAll("[data-disable-on-submit]").forEach(function (button) {
          button.disabled = false;
          button.removeAttribute("aria-disabled");
        });
      });
    });

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
