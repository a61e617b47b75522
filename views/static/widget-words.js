/* Pure: the widget's wording of ageing and payment behaviour, from the summary's `aging` and
 * `behaviour` blocks (README "Ageing and payment behaviour"). No DOM, no clock, no arithmetic
 * on money: amounts are the API's exact strings, only ever formatted by the `fmt` passed in
 * ({money(amount, currency), approx(amount, currency), day(iso)}); widget.js passes its own,
 * the browser tests (tests/browser/test_widget_ageing.py) call these with several summaries.
 */
var WidgetWords = (function () {
  "use strict";

  var SHORT = { "current": "Current", "1-30": "1-30 days", "31-60": "31-60 days", "61-90": "61-90 days", "90+": "90+ days" };
  var LONG = {
    "current": "Current (not yet due)", "1-30": "1-30 days overdue", "31-60": "31-60 days overdue",
    "61-90": "61-90 days overdue", "90+": "Over 90 days overdue"
  };

  // "Invoices …": what the list shows when one bucket is chosen
  var FILTER = {
    "current": "not yet due", "1-30": "1-30 days overdue", "31-60": "31-60 days overdue",
    "61-90": "61-90 days overdue", "90+": "over 90 days overdue"
  };

  // Formatting without Intl, for tests of the words alone.
  var PLAIN = {
    money: function (amount, currency) { return currency + " " + amount; },
    approx: function (amount, currency) { return "≈ " + currency + " " + amount; },
    day: function (iso) { return iso; }
  };

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function isZero(amount) {  // a test on the exact string, no arithmetic
    return amount === undefined || amount === null || /^[-+]?0*\.?0*$/.test(String(amount));
  }

  // "1 day", "12 days", "12.5 days", "0.5 days": a count of days (whole, or a half), not money.
  function days(n) {
    var text = String(n).replace(/^-/, "");
    return text + (text === "1" ? " day" : " days");
  }

  function daysOverdue(n) {
    return typeof n === "number" && n > 0 ? days(n) + " overdue" : "";
  }

  // Every currency an unpaid amount of any bucket is in.
  function currencies(aging) {
    var seen = [];
    (aging || []).forEach(function (b) {
      b.by_currency.forEach(function (a) {
        if (!isZero(a.amount) && seen.indexOf(a.currency) < 0) seen.push(a.currency);
      });
    });
    return seen;
  }

  // The bar's segments: one per bucket that holds an invoice, in the API's order. `weight` is
  // the exact amount string that sizes it (the one currency's amount, or the converted figure),
  // null when the bucket has nothing converted to size it by; `left` lists the exact amounts
  // of currencies without a usable rate, which the converted figure does not hold.
  function segments(aging, fmt) {
    fmt = fmt || PLAIN;
    var single = currencies(aging).length <= 1;
    return (aging || []).filter(function (b) { return b.count > 0; }).map(function (b) {
      var amounts = b.by_currency.filter(function (a) { return !isZero(a.amount); });
      var seg = {
        bucket: b.bucket, short: SHORT[b.bucket] || b.bucket, label: b.label || LONG[b.bucket] || b.bucket,
        count: b.count, weight: null, text: "", converted: false, left: []
      };
      if (single) {
        var one = amounts[0];
        if (one) {
          seg.weight = one.amount;
          seg.text = fmt.money(one.amount, one.currency);
        } else {
          seg.text = fmt.money("0", b.by_currency.length ? b.by_currency[0].currency : "");
        }
        return seg;
      }
      var c = (b.converted || [])[0];
      seg.left = c ? c.unconverted.filter(function (a) { return !isZero(a.amount); }) : amounts;
      if (c && c.count > 0) {
        seg.weight = c.amount;
        seg.converted = true;
        seg.text = fmt.approx(c.amount, c.currency);
      } else {  // nothing converted: the exact amounts, and no size
        seg.text = seg.left.map(function (a) { return fmt.money(a.amount, a.currency); }).join(" + ");
      }
      return seg;
    });
  }

  // What the legend says under an amount, when not everything is in it.
  function leftNote(seg, fmt) {
    fmt = fmt || PLAIN;
    if (!seg.left.length) return "";
    if (seg.weight === null) return "not converted: no rate";
    return "+ " + seg.left.map(function (a) { return fmt.money(a.amount, a.currency); }).join(" + ") +
      " not converted";
  }

  // "31-60 days overdue: ≈ NZ$1,234 converted, 2 invoices"
  function segmentLabel(seg, fmt) {
    var note = leftNote(seg, fmt);
    return seg.label + ": " + seg.text + (seg.converted ? " converted" : "") +
      (note ? " (" + note + ")" : "") + ", " + plural(seg.count, "invoice", "invoices");
  }

  function timing(median) {
    if (median > 0) return days(median) + " late";
    if (median < 0) return days(median) + " early";
    return "on the due date";
  }

  // The behaviour as sentences: [{text, tone}], tone "" (the lead), "later", "earlier" or "note".
  //   "Usually pays 12 days late; 3 of the last 10 on time." "Paying later than last year."
  //   "Last payment NZ$500.00 on 3 Nov 2026."
  function behaviour(b, fmt) {
    fmt = fmt || PLAIN;
    var out = [];
    if (!b) return out;
    var counted = b.counted || 0;
    var settled = b.settled_count || 0;
    var open = b.open_overdue_count || 0;
    var median = b.median_days_late;
    var last = b.last_payment;
    if (!counted || typeof median !== "number") {  // a payment of this year still says when it was
      if (!(last && b.since && last.date >= b.since)) {  // ISO dates compare as text
        out.push({ text: "No payment history in the last 12 months.", tone: "note" });
      }
    } else if (!settled) {  // only invoices still unpaid: "usually pays" would flatter them
      out.push({ text: "None paid in the last 12 months; " + (open === 1
        ? "1 invoice " + days(median) + " overdue."
        : open + " invoices overdue (median " + days(median) + ")."), tone: "" });
    } else if (counted === 1) {
      out.push({ text: "Paid " + timing(median) + "; the only invoice in the last 12 months.", tone: "" });
    } else {
      var onTime = b.on_time_count || 0;
      out.push({ text: "Usually pays " + timing(median) + "; " + (onTime ? String(onTime) : "none") +
        " of the last " + counted + " on time.", tone: "" });
    }
    if (b.trend === "later") out.push({ text: "Paying later than last year.", tone: "later" });
    if (b.trend === "earlier") out.push({ text: "Paying earlier than last year.", tone: "earlier" });
    if (last) {
      out.push({ text: "Last payment " + fmt.money(last.amount, last.currency) + " on " + fmt.day(last.date) +
        (last.count > 1 ? ", in " + last.count + " parts." : "."), tone: "note" });
    }
    return out;
  }

  function sentence(b, fmt) {
    return behaviour(b, fmt).map(function (p) { return p.text; }).join(" ");
  }

  return {
    PLAIN: PLAIN, SHORT: SHORT, LONG: LONG, FILTER: FILTER,
    days: days, daysOverdue: daysOverdue, currencies: currencies, segments: segments,
    leftNote: leftNote, segmentLabel: segmentLabel, behaviour: behaviour, sentence: sentence
  };
})();
