// Dunning and invoices on the demo page: the "fix your card" action from /api/me, the
// invoices list (GET /api/invoices) and what renews next (GET /api/invoices/upcoming).
// Uses demo.js's globals ($, call, money, formatDate, showError); runs after each account load.
"use strict";

const ACTION_TEXT = {
  fix_payment: "Your last payment failed. Update your card to keep Pro.",
  confirm_payment: "Your bank asks you to confirm your last payment.",
};
const ACTION_BUTTON = { fix_payment: "Fix your card", confirm_payment: "Confirm payment" };

function renderPaymentAction(me) {
  const box = $("payment-action");
  const action = me.action;
  box.hidden = !action;
  if (!action) return;
  $("payment-action-text").textContent = ACTION_TEXT[action.type] || "A payment needs you.";
  const link = $("payment-action-link");
  link.textContent = ACTION_BUTTON[action.type] || "Pay now";
  link.href = action.hostedInvoiceUrl || "#";
}

function invoiceRow(invoice) {
  const row = document.createElement("tr");
  row.className = `invoice invoice-${invoice.status}`;
  const cells = [
    formatDate(invoice.created),
    invoice.number || invoice.id,
    money(invoice.total ?? invoice.amountDue, invoice.currency || "usd"),
    invoice.amountTax ? money(invoice.amountTax, invoice.currency || "usd") : "—",
    invoice.status,
  ];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  const links = document.createElement("td");
  for (const [label, url] of [["View", invoice.hostedInvoiceUrl], ["PDF", invoice.invoicePdf]]) {
    if (!url) continue;
    const a = document.createElement("a");
    a.href = url;
    a.textContent = label;
    a.target = "_blank";
    a.rel = "noopener";
    links.append(a, " ");
  }
  row.append(links);
  return row;
}

async function loadBilling(me) {
  renderPaymentAction(me);
  if (!me.user.stripeCustomerId) {
    $("billing-history").hidden = true;
    return;
  }
  const [list, next] = await Promise.all([
    call("GET", "/api/invoices"), call("GET", "/api/invoices/upcoming"),
  ]);
  $("billing-history").hidden = false;
  const body = $("invoice-rows");
  body.replaceChildren(...list.invoices.map(invoiceRow));
  $("no-invoices").hidden = list.invoices.length > 0;
  const up = next.upcoming;
  $("upcoming").textContent = up
    ? `Next invoice: ${money(up.amountDue, up.currency || "usd")} on ${formatDate(up.periodStart)}`
    : "Nothing renews.";
}

document.addEventListener("account-loaded", (event) => {
  loadBilling(event.detail).catch(showError);
});
