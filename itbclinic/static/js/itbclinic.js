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

    // A table wider than the screen scrolls inside its own box (.table-wrap), never the page.
    // While it does, the box is a named region the keyboard can reach and scroll with the arrow
    // keys (WCAG 2.1.1); when the table fits, it is no extra stop on the way through the page.
    function tableName(box) {
      var caption = box.querySelector("caption, h2");
      if (caption && caption.textContent.trim()) {
        return caption.textContent.trim();
      }
      for (var el = box.previousElementSibling; el; el = el.previousElementSibling) {
        if (/^H[1-6]$/.test(el.tagName)) {
          return el.textContent.trim();
        }
      }
      return "Table";
    }
    function markScrollable(box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      if (scrolls && !box.hasAttribute("tabindex")) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", tableName(box) + " (scrolls sideways)");
      } else if (!scrolls && box.hasAttribute("tabindex")) {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
      }
    }
    // (.inline-group: a table of related rows in the Django admin, which scrolls on a phone.)
    var boxes = document.querySelectorAll(".table-wrap, .inline-group");
    boxes.forEach(markScrollable);
    if (window.ResizeObserver) {
      var observer = new ResizeObserver(function (entries) {
        entries.forEach(function (entry) {
          markScrollable(entry.target);
        });
      });
      boxes.forEach(function (box) {
        observer.observe(box);
      });
    }
  });
})();
