/* Tabs of the patient page: one section shown at a time, chosen by the link or the URL's #tab-...
   Without JavaScript every section shows, one under the other. */
(function () {
  "use strict";
  function ready(fn) { if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); } }
  ready(function () {
    var tabs = document.getElementById("patient-tabs");
    if (!tabs) { return; }
    var links = Array.prototype.slice.call(tabs.querySelectorAll("a"));
    document.body.classList.add("js-tabs");
    function show(id, push) {
      var found = false;
      links.forEach(function (a) {
        var target = a.getAttribute("href").slice(1);
        var section = document.getElementById(target);
        var on = target === id;
        found = found || on;
        a.classList.toggle("active", on);
        if (section) { section.classList.toggle("hidden", !on); }
      });
      if (!found && links.length) { show(links[0].getAttribute("href").slice(1), false); return; }
      if (push && history.replaceState) { history.replaceState(null, "", "#" + id); }
    }
    links.forEach(function (a) {
      a.addEventListener("click", function (e) { e.preventDefault(); show(a.getAttribute("href").slice(1), true); });
    });
    // a form with errors opens the details tab
    var initial = location.hash.slice(1);
    if (document.querySelector("#tab-details .errornote")) { initial = "tab-details"; }
    show(initial || "tab-dos", false);
    window.addEventListener("hashchange", function () { show(location.hash.slice(1), false); });
  });
})();
