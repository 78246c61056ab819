/* The payment screen: keep the totals and the amount to charge in step with the dates and credits
   chosen; recalculate the preselection on the server when the dates change. */
(function () {
  "use strict";
  function ready(fn) { if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); } }
  function cents(text) {
    var v = parseFloat(String(text || "").replace(/,/g, ""));
    return isNaN(v) ? 0 : Math.round(v * 100);
  }
  function fmt(c) {
    var neg = c < 0; c = Math.abs(c);
    var s = (Math.floor(c / 100)).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + ("0" + (c % 100)).slice(-2);
    return (neg ? "-" : "") + s;
  }
  ready(function () {
    var form = document.getElementById("payment-form");
    if (!form) { return; }
    var apply = form.querySelector("input[name=apply_credits]");
    var amount = form.querySelector("input[name=amount]");
    var creditInputs = Array.prototype.slice.call(form.querySelectorAll("input[name^=credit_]"));
    var dosBoxes = Array.prototype.slice.call(form.querySelectorAll("input[name=dos]"));
    var amountTouched = false;
    if (amount) {
      amount.addEventListener("input", function () { amountTouched = true; });
    }
    var first = true;
    function update() {
      var owed = 0, used = 0;
      dosBoxes.forEach(function (b) { if (b.checked) { owed += cents(b.dataset.balance); } });
      creditInputs.forEach(function (i) {
        if (!i.hasAttribute("data-always-disabled")) { i.disabled = !(apply && apply.checked); }
        if (apply && apply.checked && !i.disabled) { used += cents(i.value); }
      });
      var rest = owed - used;
      document.getElementById("total-owed").textContent = fmt(owed);
      document.getElementById("total-credits").textContent = fmt(used);
      document.getElementById("total-rest").textContent = fmt(rest);
      if (first && amount && amount.value !== "" && cents(amount.value) !== rest) { amountTouched = true; }
      first = false;
      if (amount && !amountTouched) { amount.value = (rest / 100).toFixed(2); }
    }
    creditInputs.forEach(function (i) {
      if (i.disabled) { i.setAttribute("data-always-disabled", "1"); }
      i.addEventListener("input", update);
    });
    if (apply) { apply.addEventListener("change", update); }
    // a different choice of dates changes which credits cover them: ask the server again
    dosBoxes.forEach(function (b) {
      b.addEventListener("change", function () { document.getElementById("recalculate").click(); });
    });
    function channel() {
      var checked = form.querySelector("input[name=channel]:checked");
      var value = checked ? checked.value : "";
      var show = function (name, on) {
        var row = form.querySelector(".field-" + name);
        if (row) { row.style.display = on ? "" : "none"; }
      };
      show("card_token", value === "card_reader");
      show("processor_reference", value === "card_reader");
      show("check_number", value === "check");
    }
    form.querySelectorAll("input[name=channel]").forEach(function (r) { r.addEventListener("change", channel); });
    channel();
    update();
  });
})();
