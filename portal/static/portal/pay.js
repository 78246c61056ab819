/* The pay page's totals, updated as the patient ticks visits and changes credit amounts (a
   convenience only: without JavaScript the Recalculate button does the same on the server, and
   the server computes and checks what is charged). Amounts are counted in cents. */
(function () {
  "use strict";
  var form = document.querySelector("form.pay-form");
  if (!form) { return; }
  function cents(text) {
    var s = String(text || "").replace(/[$,\s]/g, "");
    if (!/^\d+(\.\d{1,2})?$/.test(s)) { return null; }
    var parts = s.split(".");
    return parseInt(parts[0], 10) * 100 + (parts[1] ? parseInt((parts[1] + "0").slice(0, 2), 10) : 0);
  }
  function dollars(c) {
    var s = String(Math.floor(c / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return "$" + s + "." + String(c % 100).padStart(2, "0");
  }
  function update() {
    var owed = 0, used = 0;
    form.querySelectorAll("input[name=visit]:checked").forEach(function (box) { owed += cents(box.dataset.owed) || 0; });
    form.querySelectorAll("input[data-credit]").forEach(function (input) { used += cents(input.value) || 0; });
    document.getElementById("total-owed").textContent = dollars(owed);
    document.getElementById("total-credits").textContent = dollars(used);
    document.getElementById("total-rest").textContent = dollars(Math.max(owed - used, 0));
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
}());
