/* The console's own script, beside htmx (the CSP allows scripts from the console only, and no eval).
   A part of a page that refreshes itself (hx-trigger "every …, tab-shown", marked data-pause-hidden) asks the
   server nothing while its tab is hidden, and asks once as soon as the tab is shown again: an idle tab costs the
   console no queries. (htmx's own trigger filter, [document.visibilityState…], would need eval.) */
document.addEventListener("htmx:confirm", function (event) {
  if (document.hidden && event.target.hasAttribute("data-pause-hidden")) {
    event.preventDefault();
  }
});
document.addEventListener("visibilitychange", function () {
  if (!document.hidden) {
    document.querySelectorAll("[data-pause-hidden]").forEach(function (elt) {
      htmx.trigger(elt, "tab-shown");
    });
  }
});
