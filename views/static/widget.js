/* The invoice widget: reads the record's summary and invoices from the JSON API with the
 * page's embed token, renders them, and polls so that changes in Xero show without a reload.
 *
 * The token comes in the URL's fragment (`#token=xme_...`, never sent to any server); the page
 * first asks the server whether it opens this record (POST data-access-url, the token as the
 * bearer) and shows the refusal if not. A page opened by an older `?token=` link carries the
 * token in data-token instead, checked by the server before it served the page.
 *
 * Money arrives as exact decimal strings and is only ever formatted (Intl.NumberFormat
 * takes the string as it is); no arithmetic on amounts happens here. A poll re-renders only
 * what changed: rows are keyed by invoice id and kept when their data is the same, so focus
 * and an open payments popover survive refreshes.
 *
 * Polls are conditional: each GET sends back the ETag of the answer it holds (If-None-Match),
 * and a 304 (no body) keeps what is on screen. A failed load never leaves a list it cannot
 * vouch for: a list of another view or search is cleared, the same list is greyed. Each total
 * box shows one figure: the amount when there is one currency, else the base-currency total
 * marked as converted, with the exact per-currency amounts a tap away. Under the totals, the
 * ageing bar (a segment per bucket of days overdue, each one listing its invoices) and the
 * customer's payment behaviour in a sentence, both worded by widget-words.js.
 */
(function () {
  "use strict";

  var root = document.getElementById("widget");
  if (!root) return;
  var cfg = root.dataset;
  var POLL_MS = Math.max(500, parseInt(cfg.pollMs, 10) || 3000);
  var PER_PAGE = parseInt(cfg.perPage, 10) || 10;
  var RECORD = { contacts: "contact", accounts: "account", deals: "deal" }[cfg.kind] || "record";

  var EMPTY = {
    unpaid: "No invoices awaiting payment",
    overdue: "No overdue invoices",
    open: "No open invoices",
    paid: "No paid invoices",
    pinned: "No pinned invoices. Pin one to keep it here."
  };
  var STATUS_CLASS = {
    "Paid": "paid", "Open": "open", "Overdue": "overdue",
    "Partially paid": "partial", "Draft": "draft", "Voided": "voided"
  };

  // overdue: one ageing bucket of the Unpaid list ("" for all of it), chosen on the ageing bar
  var state = { view: "unpaid", q: "", from: "", to: "", overdue: "", page: 1, badDates: false };
  var rows = new Map();            // invoice id -> {sig, data, el}
  var shown = { list: null, listKey: null, summary: null, ageing: null, behaviour: null, synced: null, fresh: null };
  var held = new Map();            // url -> {etag, body}: the answers a 304 confirms
  var HELD_MAX = 24;
  var VIEW_LABEL = {};
  var listSeq = 0;
  var summarySeq = 0;
  var pollTimer = null;
  var polling = false;
  var token = cfg.token || fromFragment();
  var stopped = !cfg.token;        // the token is no good (any more), or not yet checked: do not ask
  var payments = new Map();        // invoice id -> {key, data | promise}
  var openPopover = null;          // invoice id whose payments popover is open
  var loadingTimer = null;

  var $ = function (sel, el) { return (el || document).querySelector(sel); };
  var $$ = function (sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); };
  var list = $("#invoice-list");
  var stateLoading = $("#state-loading");
  var stateError = $("#state-error");
  var stateEmpty = $("#state-empty");

  // --- talking to the API ------------------------------------------------------------------

  function ApiFailure(status, message) {
    this.status = status;
    this.message = message;
  }

  // A GET sends the ETag of the answer held for its URL; 304 means that answer still holds.
  // (cache "no-store": the browser's cache stays out of it, so the 304 reaches this code.)
  function call(method, url) {
    var headers = { "Authorization": "Bearer " + token, "Accept": "application/json" };
    var mine = method === "GET" ? held.get(url) : undefined;
    if (mine) headers["If-None-Match"] = mine.etag;
    return fetch(url, {
      method: method,
      headers: headers,
      cache: "no-store",
      credentials: "omit"
    }).then(function (response) {
      if (response.status === 304 && mine) return mine.body;
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) throw new ApiFailure(response.status, body.error || response.statusText);
        var etag = response.headers.get("ETag");
        if (method === "GET" && etag) {
          held.delete(url);
          held.set(url, { etag: etag, body: body });
          if (held.size > HELD_MAX) held.delete(held.keys().next().value);
        }
        return body;
      });
    }, function () {
      throw new ApiFailure(0, "network");
    });
  }

  function withId(template, id) {
    return template.replace(cfg.placeholder, encodeURIComponent(id));
  }

  function listKey() {
    return JSON.stringify([state.view, state.q, state.from, state.to, state.overdue, state.page]);
  }

  function listUrl() {
    var params = new URLSearchParams();
    params.set("view", state.view);
    if (state.q) params.set("q", state.q);
    if (state.from) params.set("from", state.from);
    if (state.to) params.set("to", state.to);
    if (state.overdue) params.set("overdue", state.overdue);
    params.set("page", String(state.page));
    params.set("per_page", String(PER_PAGE));
    return cfg.listUrl + "?" + params.toString();
  }

  // --- formatting (display only) -------------------------------------------------------------

  var formatters = new Map();

  function money(amount, currency) {
    var places = (String(amount).split(".")[1] || "").length;
    var key = currency + "/" + places;
    var fmt = formatters.get(key);
    if (fmt === undefined) {
      try {
        var base = new Intl.NumberFormat(undefined, { style: "currency", currency: currency });
        var min = base.resolvedOptions().minimumFractionDigits;
        fmt = new Intl.NumberFormat(undefined, {
          style: "currency", currency: currency,
          minimumFractionDigits: min, maximumFractionDigits: Math.max(min, places)
        });
      } catch (e) {
        fmt = null;  // not a currency Intl knows: show the code and the exact string
      }
      formatters.set(key, fmt);
    }
    return fmt ? fmt.format(amount) : currency + " " + amount;
  }

  // The converted headline: whole units, "≈ NZ$37,136"; a long one compact, "≈ NZ$1.2M".
  function approx(amount, currency) {
    var text;
    try {
      text = new Intl.NumberFormat(undefined, {
        style: "currency", currency: currency, maximumFractionDigits: 0, minimumFractionDigits: 0
      }).format(amount);
      if (text.length > 11) {
        text = new Intl.NumberFormat(undefined, {
          style: "currency", currency: currency, notation: "compact", maximumFractionDigits: 1
        }).format(amount);
      }
    } catch (e) {
      text = currency + " " + amount;
    }
    return "≈ " + text;
  }

  var words = window.WidgetWords;
  var dateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  var timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  function day(iso) {
    if (!iso) return "No date";
    var p = iso.split("-");
    return dateFormat.format(new Date(Date.UTC(+p[0], +p[1] - 1, +p[2])));
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  var FORMAT = { money: money, approx: approx, day: day };  // how WidgetWords' words show amounts and dates

  function isZero(amount) {  // a test on the exact string, no arithmetic
    return amount === undefined || amount === null || /^[-+]?0*\.?0*$/.test(String(amount));
  }

  // --- settlements: payments, and credits (credit notes, prepayments, overpayments applied) ----

  // How many of each settled a row's invoice; credits is null when the row says an amount was
  // credited but not how many times.
  function settledBy(inv) {
    var counted = typeof inv.allocation_count === "number" ? inv.allocation_count : inv.credit_count;
    var credits = typeof counted === "number" ? counted : isZero(inv.amount_credited) ? 0 : null;
    return { payments: inv.payment_count || 0, credits: credits };
  }

  function settledText(by) {
    var parts = [];
    if (by.payments) parts.push(plural(by.payments, "payment", "payments"));
    if (by.credits) parts.push(plural(by.credits, "credit", "credits"));
    else if (by.credits === null) parts.push("credited");
    return parts.join(", ");
  }

  function hasSettlements(inv) {
    var by = settledBy(inv);
    return by.payments > 0 || by.credits !== 0;
  }

  // --- states ------------------------------------------------------------------------------

  function showLoading(on) {
    clearTimeout(loadingTimer);
    if (on === "soon") {  // only when a request is slow: no flicker on fast answers
      loadingTimer = setTimeout(function () { showLoading(true); }, 200);
      return;
    }
    stateLoading.hidden = !on;
    $("#panel").setAttribute("aria-busy", on ? "true" : "false");
  }

  // The list on screen, and the rows behind it, are dropped: nothing shows that is not vouched for.
  function clearList() {
    shown.list = null;
    shown.listKey = null;
    rows.forEach(function (r) { r.el.remove(); });
    rows = new Map();
    openPopover = null;
    list.hidden = true;
    list.classList.remove("unverified");
    stateEmpty.hidden = true;
    $("#pager").hidden = true;
    $("#elsewhere").hidden = true;
  }

  function showError(failure) {
    var text;
    if (failure.status === 401) {
      text = "This view has expired. Reload the page in your CRM to see the invoices again.";
      stop();
      checkAccess().then(function (refusal) {  // the server's precise reason: expired, revoked, invalid
        if (refusal) $(".state-text", stateError).textContent = refusal;
      });
    } else if (failure.status === 404) {
      text = "This " + RECORD + " is not known to the invoice service yet.";
    } else if (failure.status === 0) {
      text = "Cannot reach the invoice service. Trying again…";
    } else {
      text = "The invoice service could not answer (" + failure.status + "). Trying again…";
    }
    $(".state-text", stateError).textContent = text;
    $("#retry").hidden = failure.status === 401;
    stateError.hidden = false;
    if (failure.status === 401 || failure.status === 404 || shown.listKey !== listKey()) {
      clearList();  // another view's or search's rows under this error would mislead
    } else {
      list.classList.add("unverified");  // the same list, as last loaded: greyed until a load succeeds
      list.setAttribute("aria-describedby", "state-error");
    }
    showLoading(false);
  }

  function clearError() {
    stateError.hidden = true;
    list.classList.remove("unverified");
    list.removeAttribute("aria-describedby");
  }

  function filtered() {
    return Boolean(state.q || state.from || state.to);
  }

  // --- summary: Received, Credited (when there is any) and Still to pay, and the tab counts ------

  // Sales invoices before bills, and within each the organisation's own currency first.
  function ordered(amounts, base) {
    var rank = function (a) { return a.type === "ACCREC" ? 0 : a.type === "ACCPAY" ? 1 : 2; };
    return amounts.map(function (a, i) { return { a: a, i: i }; }).sort(function (x, y) {
      return rank(x.a) - rank(y.a) ||
        (x.a.currency === base ? 0 : 1) - (y.a.currency === base ? 0 : 1) || x.i - y.i;
    }).map(function (x) { return x.a; });
  }

  // One figure for a box: the exact amount in its one currency, or the base-currency total
  // marked as converted; text says what the figure is.
  function headline(total, base) {
    var nonZero = total.by_currency.filter(function (a) { return !isZero(a.amount); });
    var converted = (total.converted || [])[0];
    if (!nonZero.length) return { text: "None", none: true, currencies: 0 };
    if (nonZero.length === 1) {
      return { text: money(nonZero[0].amount, nonZero[0].currency), currencies: 1, exact: true };
    }
    var left = converted ? converted.unconverted.filter(function (a) { return !isZero(a.amount); }) : [];
    if (converted && converted.count && !isZero(converted.amount)) {
      return {
        text: approx(converted.amount, converted.currency), currencies: nonZero.length, converted: converted,
        note: "converted" + (left.length ? " (" + plural(left.length, "currency", "currencies") + " not)" : "")
      };
    }
    var first = ordered(nonZero, base)[0];  // nothing to convert with: the first, and "more"
    return { text: money(first.amount, first.currency), currencies: nonZero.length,
             note: "+ " + plural(nonZero.length - 1, "other currency", "other currencies") };
  }

  function renderTotal(box, total, base, overdue) {
    var head = headline(total, base);
    var figure = document.createElement("span");
    figure.className = "total-figure" + (head.none ? " muted" : "");
    figure.textContent = head.text;
    if (head.converted) figure.title = head.converted.label;
    var holder = $(".total-headline", box);
    holder.textContent = "";
    holder.appendChild(figure);
    var count = $(".total-count", box);
    count.textContent = plural(total.count, "invoice", "invoices");
    if (overdue && overdue.count) {
      var late = headline(overdue, base);
      var note = document.createElement("span");
      note.className = "overdue-note";
      note.textContent = late.text + " overdue";
      count.appendChild(note);
    }
    // the exact amounts per currency, a tap away when there is more than one
    var toggle = $(".total-toggle", box);
    var amounts = $(".total-amounts", box);
    amounts.textContent = "";
    var nonZero = total.by_currency.filter(function (a) { return !isZero(a.amount); });
    toggle.hidden = nonZero.length < 2;
    if (nonZero.length < 2) {
      amounts.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      return;
    }
    toggle.textContent = (head.note ? head.note + " · " : "") + nonZero.length + "\u00a0currencies";
    ordered(nonZero, base).forEach(function (a) {
      var line = document.createElement("li");
      line.className = "total-amount";
      line.dataset.currency = a.currency;
      line.textContent = money(a.amount, a.currency);
      if (a.type !== "ACCREC") {
        var kind = document.createElement("small");
        kind.textContent = " " + a.type_label.toLowerCase() + "s";
        line.appendChild(kind);
      }
      amounts.appendChild(line);
    });
    if (overdue && overdue.count && overdue.by_currency.length > 1) {
      ordered(overdue.by_currency, base).forEach(function (a) {
        var line = document.createElement("li");
        line.className = "total-amount total-amount-overdue";
        line.textContent = money(a.amount, a.currency) + " overdue";
        amounts.appendChild(line);
      });
    }
    fit(box);
  }

  // The headline at the largest size that fits its box; wrapped, never cut, if none does.
  var SIZES = ["", "size-2", "size-3", "size-4"];
  function fit(box) {
    var figure = $(".total-figure", box);
    if (!figure) return;
    var holder = figure.parentNode;
    SIZES.forEach(function (size) { if (size) holder.classList.remove(size); });
    holder.classList.remove("wraps");
    for (var i = 1; i < SIZES.length && holder.scrollWidth > holder.clientWidth; i++) {
      holder.classList.remove(SIZES[i - 1] || "none");
      holder.classList.add(SIZES[i]);
    }
    if (holder.scrollWidth > holder.clientWidth) holder.classList.add("wraps");
  }

  function fitAll() {
    $$(".total-box").forEach(function (box) { if (!box.hidden) fit(box); });
    tabsOverflow();
  }

  function renderSummary(data) {
    var credited = data.credited || { count: 0, by_currency: [] };
    var text = JSON.stringify([data.paid, credited, data.unpaid, data.overdue, data.base_currency]);
    if (text !== shown.summary) {
      shown.summary = text;
      [["#total-paid", data.paid], ["#total-credited", credited], ["#total-unpaid", data.unpaid]]
        .forEach(function (pair) {  // the API's words, when it gives them
          if (pair[1].label) $(".total-label", $(pair[0])).textContent = pair[1].label;
        });
      renderTotal($("#total-paid"), data.paid, data.base_currency);
      var unpaidBox = $("#total-unpaid");
      // Credited only when something was credited: a box of "None" would only raise questions.
      var creditBox = $("#total-credited");
      creditBox.hidden = !credited.count;
      $(".totals").classList.toggle("with-credit", Boolean(credited.count));
      if (credited.count) renderTotal(creditBox, credited, data.base_currency);
      renderTotal(unpaidBox, data.unpaid, data.base_currency, data.overdue);
      // Every tab's count is the number of invoices its list holds (the API's `counts`).
      var counts = data.counts || {};
      $$("[role=tab]").forEach(function (tab) {
        var n = counts[tab.dataset.view];
        var badge = $(".tab-count", tab);
        badge.textContent = typeof n === "number" ? String(n) : "";
        badge.classList.toggle("zero", n === 0);
        tab.setAttribute("aria-label", VIEW_LABEL[tab.dataset.view] +
          (typeof n === "number" ? ", " + plural(n, "invoice", "invoices") : ""));
      });
      tabsOverflow();
    }
    renderAgeing(data);
    renderBehaviour(data.behaviour);
    var fresh = data.freshness || { last_synced_at: data.last_synced_at, state: "fresh", reason: null };
    shown.synced = fresh.last_synced_at;
    tick();
    var staleText = fresh.state === "stale" ? fresh.reason || "These figures may be behind Xero." : "";
    if (staleText !== shown.fresh) {
      shown.fresh = staleText;
      var stale = $("#stale");
      stale.textContent = staleText;
      stale.hidden = !staleText;
      root.classList.toggle("is-stale", Boolean(staleText));
    }
  }

  // --- ageing: what is still to pay, by days overdue; a bucket's segment lists its invoices ------

  // The bar and its legend, one segment per bucket holding an invoice, sized by the bucket's
  // exact amount string (its one currency, or the converted figure) as a flex-grow: the
  // browser does the proportions, nothing is added here. A bucket with nothing converted to
  // size it by gets a small hatched segment, and its legend says why.
  function renderAgeing(data) {
    var box = $("#ageing");
    var segs = data.unpaid && data.unpaid.count ? words.segments(data.aging || [], FORMAT) : [];
    var text = JSON.stringify(segs);
    if (text !== shown.ageing) {
      shown.ageing = text;
      var bar = $(".ageing-bar", box);
      var legend = $(".ageing-legend", box);
      bar.textContent = "";
      legend.textContent = "";
      segs.forEach(function (seg) {
        var note = words.leftNote(seg, FORMAT);
        var label = words.segmentLabel(seg, FORMAT);
        var part = document.createElement("button");
        part.type = "button";
        part.className = "ageing-segment age-" + seg.bucket.replace("+", "plus") +
          (seg.weight === null ? " unsized" : seg.left.length ? " partial" : "");
        part.dataset.bucket = seg.bucket;
        part.setAttribute("aria-label", label);
        part.setAttribute("aria-controls", "invoice-list");
        part.title = label;
        // the exact decimal string, scaled by 10^4 in its notation so that even cents add up past 1
        if (seg.weight !== null) part.style.flexGrow = seg.weight + "e4";
        bar.appendChild(part);

        var item = document.createElement("li");
        var entry = document.createElement("button");
        entry.type = "button";
        entry.tabIndex = -1;  // the segments are the buttons a keyboard or a screen reader uses
        entry.className = "ageing-entry";
        entry.dataset.bucket = seg.bucket;
        entry.title = label;
        var name = document.createElement("span");
        name.className = "ageing-label";
        var swatch = document.createElement("span");
        swatch.className = "ageing-swatch age-" + seg.bucket.replace("+", "plus");
        name.appendChild(swatch);
        name.appendChild(document.createTextNode(seg.short));
        var amount = document.createElement("span");
        amount.className = "ageing-amount";
        amount.textContent = seg.text;
        entry.appendChild(name);
        entry.appendChild(amount);
        if (note) {
          var left = document.createElement("span");
          left.className = "ageing-note";
          left.textContent = note;
          entry.appendChild(left);
        }
        item.appendChild(entry);
        legend.appendChild(item);
      });
      box.hidden = !segs.length;
    }
    markBucket();
  }

  function markBucket() {
    $$("#ageing [data-bucket]").forEach(function (el) {
      var on = el.dataset.bucket === state.overdue;
      el.classList.toggle("selected", on);
      if (el.classList.contains("ageing-segment")) el.setAttribute("aria-pressed", on ? "true" : "false");
    });
    var chip = $("#bucket-filter");
    chip.hidden = !state.overdue;
    if (state.overdue) {
      $(".bucket-filter-text", chip).textContent = "Showing invoices " + words.FILTER[state.overdue];
    }
  }

  // The Unpaid list of one bucket (tab counts stay the summary's); the same bucket again shows all.
  function selectBucket(bucket) {
    var next = state.overdue === bucket ? "" : bucket;
    if (state.view !== "unpaid") {
      state.overdue = next;
      selectView("unpaid", false, true);
      return;
    }
    state.overdue = next;
    state.page = 1;
    markBucket();
    closePopover();
    refresh({ fresh: true });
  }

  function renderBehaviour(b) {
    var el = $("#behaviour");
    var parts = words.behaviour(b, FORMAT);
    var text = JSON.stringify(parts);
    if (text === shown.behaviour) return;
    shown.behaviour = text;
    el.textContent = "";
    parts.forEach(function (p, i) {
      if (i) el.appendChild(document.createTextNode(" "));
      var span = document.createElement("span");
      span.className = "behaviour-part" + (p.tone ? " behaviour-" + p.tone : "");
      span.textContent = p.text;
      el.appendChild(span);
    });
    el.hidden = !parts.length;
  }

  // "Synced 14 s ago", kept current between polls.
  function ago(seconds) {
    if (seconds < 5) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return "on " + dateFormat.format(new Date(shown.synced));
  }

  function tick() {
    var el = $("#synced");
    if (!el) return;
    if (!shown.synced) {
      el.textContent = "Waiting for the first sync";
      el.removeAttribute("title");
      return;
    }
    var at = new Date(shown.synced);
    el.textContent = "Synced " + ago(Math.max(0, (Date.now() - at.getTime()) / 1000));
    el.title = "Last synced with Xero at " + timeFormat.format(at);
  }
  setInterval(tick, 1000);

  function loadSummary() {
    var mine = ++summarySeq;
    return call("GET", cfg.summaryUrl).then(function (data) {
      if (mine === summarySeq && !stopped) renderSummary(data);
    });
  }

  // --- the list ----------------------------------------------------------------------------

  function rowSignature(inv) {
    return JSON.stringify(inv);
  }

  function statusText(inv) {
    var settled = settledText(settledBy(inv));
    return settled ? inv.status_label + " · " + settled : inv.status_label;
  }

  function buildRow(inv) {
    var el = $("#row-template").content.firstElementChild.cloneNode(true);
    var label = inv.number || "invoice without a number";
    el.dataset.invoiceId = inv.invoice_id;
    el.dataset.status = STATUS_CLASS[inv.status_label] || "other";
    var pin = $(".pin", el);
    pin.setAttribute("aria-pressed", inv.pinned ? "true" : "false");
    pin.setAttribute("aria-label", "Pin " + label);
    pin.title = inv.pinned ? "Pinned to this " + RECORD + ": click to unpin" : "Pin to this " + RECORD;
    var number = $(".number", el);
    number.href = inv.xero_url;
    number.textContent = inv.number || "(no number)";
    number.title = "Open " + label + " in Xero";
    var when = $(".date", el);
    when.textContent = day(inv.date);
    if (inv.date) when.dateTime = inv.date;
    $(".type", el).textContent = inv.type_label;
    $(".balance .value", el).textContent = money(inv.balance, inv.currency);
    $(".total .value", el).textContent = money(inv.total, inv.currency);
    var status = $(".status", el);
    status.textContent = statusText(inv);
    status.className = "status status-" + (STATUS_CLASS[inv.status_label] || "other");
    status.title = "Xero status: " + inv.status;
    var late = words.daysOverdue(inv.days_overdue);
    if (late) {  // Xero's words: "305 days overdue"
      var overdue = $(".days-overdue", el);
      overdue.textContent = late;
      overdue.dataset.days = String(inv.days_overdue);
      overdue.hidden = false;
    }
    if (hasSettlements(inv)) {
      var by = settledBy(inv);
      var holder = $(".payments", el);
      var link = $(".payments-link", el);
      var pop = $(".installments", el);
      var what = by.payments ? (by.credits === 0 ? "Payments" : "Payments and credits") : "Credits";
      holder.hidden = false;
      link.textContent = by.payments ? "Payments" : "Credits";
      pop.id = "payments-" + inv.invoice_id;
      pop.setAttribute("aria-label", what + " on " + label);
      link.setAttribute("aria-controls", pop.id);
      link.setAttribute("aria-label", what + " on " + label + ": " + settledText(by));
    }
    return el;
  }

  function renderList(data) {
    var text = JSON.stringify([data.invoices, data.total, data.page, data.view, data.elsewhere, state.q, state.overdue]);
    shown.listKey = listKey();
    if (text === shown.list) return;
    shown.list = text;
    renderElsewhere(data);
    var focused = document.activeElement;
    var focusedRow = focused && focused.closest ? focused.closest("#invoice-list > li") : null;
    var focusedClass = focusedRow ? focused.className.split(" ")[0] : null;
    var focusedId = focusedRow ? focusedRow.dataset.invoiceId : null;

    var keep = new Map();
    var wanted = data.invoices.map(function (inv) {
      var sig = rowSignature(inv);
      var held = rows.get(inv.invoice_id);
      var el = held && held.sig === sig ? held.el : buildRow(inv);
      keep.set(inv.invoice_id, { sig: sig, data: inv, el: el });
      return el;
    });
    rows.forEach(function (held, id) {
      if (!keep.has(id) || keep.get(id).el !== held.el) held.el.remove();
    });
    var cursor = list.firstElementChild;  // kept rows stay where they are unless the order changed
    wanted.forEach(function (el) {
      if (el === cursor) cursor = cursor.nextElementSibling;
      else list.insertBefore(el, cursor);
    });
    rows = keep;

    var now = document.activeElement || document.body;
    if (focusedId && !now.closest("#invoice-list > li") && rows.has(focusedId)) {
      var again = $("." + focusedClass, rows.get(focusedId).el);
      if (again) again.focus();
    }
    if (openPopover) {
      var openRow = rows.get(openPopover);
      if (openRow && hasSettlements(openRow.data)) {
        var pop = $(".installments", openRow.el);
        if (pop.hidden) showPopover(openRow.el);
      } else {
        openPopover = null;
      }
    }

    list.hidden = data.invoices.length === 0;
    stateEmpty.hidden = data.invoices.length !== 0;
    if (!data.invoices.length) {
      var empty = state.overdue ? "No invoices " + words.FILTER[state.overdue] : EMPTY[state.view];
      $(".state-title", stateEmpty).textContent = filtered()
        ? empty.replace(/\..*$/, "") + " match your search"
        : empty;
      $("#clear-filters").hidden = !filtered();
    }
    var pager = $("#pager");
    pager.hidden = data.total <= data.per_page && data.page === 1;
    var first = data.total ? (data.page - 1) * data.per_page + 1 : 0;
    var last = Math.min(data.total, (data.page - 1) * data.per_page + data.invoices.length);
    $("#page-info").textContent = first + "–" + last + " of " + data.total;
    $("#prev-page").disabled = data.page <= 1;
    $("#next-page").disabled = data.page * data.per_page >= data.total;
  }

  // Where else the searched number is: "INV-0042 is under Paid", each view a button to it.
  function renderElsewhere(data) {
    var box = $("#elsewhere");
    var found = state.q && data.elsewhere ? data.elsewhere : [];
    box.textContent = "";
    box.hidden = !found.length;
    if (!found.length) return;
    box.appendChild(document.createTextNode(
      data.invoices.length ? "Also under " : "“" + state.q + "” is under "));
    found.forEach(function (where, i) {
      if (i) box.appendChild(document.createTextNode(i === found.length - 1 ? " and " : ", "));
      var go = document.createElement("button");
      go.type = "button";
      go.className = "link-button elsewhere-view";
      go.dataset.goto = where.view;
      go.textContent = (VIEW_LABEL[where.view] || where.view) + " (" + where.count + ")";
      go.addEventListener("click", function () { selectView(where.view); });
      box.appendChild(go);
    });
  }

  function loadList(opts) {
    var mine = ++listSeq;
    if (state.badDates) return Promise.resolve();  // nothing to show until the dates make sense
    if (opts && opts.fresh) {
      list.classList.add("stale");
      showLoading("soon");
    }
    return call("GET", listUrl()).then(function (data) {
      if (mine !== listSeq || stopped) return;
      list.classList.remove("stale");
      showLoading(false);
      if (data.page > 1 && data.invoices.length === 0 && data.total > 0) {  // the list shrank under us
        state.page = Math.ceil(data.total / data.per_page);
        return loadList();
      }
      renderList(data);
    });
  }

  function refresh(opts) {
    if (stopped) return Promise.resolve();
    return Promise.all([loadSummary(), loadList(opts)]).then(clearError, function (failure) {
      list.classList.remove("stale");
      if (!(failure instanceof ApiFailure)) {
        console.error(failure);  // a bug here: say so, and keep polling
        failure = new ApiFailure(500, "widget");
      }
      showError(failure);
    });
  }

  // --- polling, paused while the page is hidden ----------------------------------------------

  function schedule() {
    clearTimeout(pollTimer);
    if (!stopped && document.visibilityState !== "hidden") pollTimer = setTimeout(poll, POLL_MS);
  }

  function poll() {
    if (polling) return;
    polling = true;
    refresh().then(function () {
      polling = false;
      schedule();
    });
  }

  function stop() {
    stopped = true;
    clearTimeout(pollTimer);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") clearTimeout(pollTimer);
    else if (!polling) poll();
  });

  // --- controls ----------------------------------------------------------------------------

  // A tab shows its whole list: any ageing bucket chosen goes (but not when the bar chose the tab).
  function selectView(view, focusTab, keepBucket) {
    state.view = view;
    state.page = 1;
    if (!keepBucket) state.overdue = "";
    markBucket();
    $$("[role=tab]").forEach(function (tab) {
      var on = tab.dataset.view === view;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      if (on && focusTab) tab.focus();
      if (on && tab.scrollIntoView) tab.scrollIntoView({ block: "nearest", inline: "nearest" });
    });
    $("#panel").setAttribute("aria-labelledby", "tab-" + view);
    $$(".total-main[data-target]").forEach(function (box) {
      box.setAttribute("aria-pressed", box.dataset.target === view ? "true" : "false");
    });
    closePopover();
    refresh({ fresh: true });
  }

  $$("[role=tab]").forEach(function (tab) {
    tab.addEventListener("click", function () { selectView(tab.dataset.view); });
    tab.addEventListener("keydown", function (event) {
      var tabs = $$("[role=tab]");
      var i = tabs.indexOf(tab);
      var next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      selectView(tabs[(next + tabs.length) % tabs.length].dataset.view, true);
    });
  });

  $$(".total-main[data-target]").forEach(function (box) {
    box.addEventListener("click", function () { selectView(box.dataset.target); });
  });
  $("#ageing").addEventListener("click", function (event) {
    var target = event.target.closest("[data-bucket]");
    if (target) selectBucket(target.dataset.bucket);
  });
  $("#clear-bucket").addEventListener("click", function () { selectBucket(""); });
  $$(".total-toggle").forEach(function (toggle) {
    toggle.title = "The exact amount in each currency";
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      document.getElementById(toggle.getAttribute("aria-controls")).hidden = !open;
    });
  });

  // Tabs that do not fit scroll sideways; a fade and an arrow at each side with more show it.
  var tabs = $(".tabs");
  function tabsOverflow() {
    var more = tabs.scrollWidth - tabs.clientWidth;
    var left = tabs.scrollLeft > 1;
    var right = more - tabs.scrollLeft > 1;
    var wrap = tabs.parentNode;
    wrap.classList.toggle("more-left", left);
    wrap.classList.toggle("more-right", right);
    $(".tabs-more-left", wrap).hidden = !left;
    $(".tabs-more-right", wrap).hidden = !right;
  }
  tabs.addEventListener("scroll", tabsOverflow, { passive: true });
  window.addEventListener("resize", fitAll);
  $(".tabs-more-left").addEventListener("click", function () {
    tabs.scrollBy({ left: -tabs.clientWidth * 0.7, behavior: "smooth" });
  });
  $(".tabs-more-right").addEventListener("click", function () {
    tabs.scrollBy({ left: tabs.clientWidth * 0.7, behavior: "smooth" });
  });
  $$("[role=tab]").forEach(function (tab) {
    VIEW_LABEL[tab.dataset.view] = $(".tab-label", tab).textContent;
  });

  var searchTimer = null;
  var search = $("#search");
  function applySearch() {
    clearTimeout(searchTimer);
    var q = search.value.trim();
    if (q === state.q) return;
    state.q = q;
    state.page = 1;
    refresh({ fresh: true });
  }
  search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applySearch, 300);
  });
  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") applySearch();
  });

  function applyDates() {
    var from = $("#date-from").value;
    var to = $("#date-to").value;
    var problem = $("#date-error");
    if (from && to && from > to) {  // ISO dates compare as text
      problem.textContent = "The start date is after the end date.";
      problem.hidden = false;
      $("#clear-dates").hidden = false;
      state.badDates = true;  // the list of the previous dates is no answer to these: gone
      ++listSeq;  // and an answer on its way is dropped
      clearList();
      showLoading(false);
      return;
    }
    problem.hidden = true;
    if (state.badDates) {
      state.badDates = false;
      shown.list = null;
      state.from = null;  // whatever the dates now are, load them
    }
    $("#clear-dates").hidden = !(from || to);
    if (from === state.from && to === state.to) return;
    state.from = from;
    state.to = to;
    state.page = 1;
    refresh({ fresh: true });
  }
  $("#apply-dates").addEventListener("click", applyDates);
  $$(".dates input").forEach(function (input) {
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") applyDates();
    });
  });
  $("#clear-dates").addEventListener("click", function () {
    $("#date-from").value = "";
    $("#date-to").value = "";
    applyDates();
  });
  $("#clear-filters").addEventListener("click", function () {
    search.value = "";
    state.q = "";
    $("#date-from").value = "";
    $("#date-to").value = "";
    applyDates();
    refresh({ fresh: true });
  });

  $("#prev-page").addEventListener("click", function () {
    if (state.page > 1) { state.page -= 1; refresh({ fresh: true }); }
  });
  $("#next-page").addEventListener("click", function () {
    state.page += 1;
    refresh({ fresh: true });
  });
  $("#retry").addEventListener("click", function () { refresh({ fresh: true }); });

  // Pins: the button flips at once, and back if the API refuses.
  list.addEventListener("click", function (event) {
    var pin = event.target.closest(".pin");
    if (!pin) return;
    var row = pin.closest("li");
    var id = row.dataset.invoiceId;
    var next = pin.getAttribute("aria-pressed") !== "true";
    pin.setAttribute("aria-pressed", next ? "true" : "false");
    pin.disabled = true;
    call(next ? "PUT" : "DELETE", withId(cfg.pinUrl, id)).then(function () {
      var held = rows.get(id);
      if (held && held.el === row) {  // the row stays as it is: its data now says so too
        held.data = Object.assign({}, held.data, { pinned: next });
        held.sig = rowSignature(held.data);
      }
      pin.title = next ? "Pinned to this " + RECORD + ": click to unpin" : "Pin to this " + RECORD;
      if (state.view === "pinned") refresh();
    }, function (failure) {
      pin.setAttribute("aria-pressed", next ? "false" : "true");
      if (failure instanceof ApiFailure) showError(failure);
    }).then(function () {
      pin.disabled = false;
    });
  });

  // --- the payments popover: hover or focus the Payments link ----------------------------------

  var hideTimer = null;

  function loadPayments(id, inv) {
    var by = settledBy(inv);
    var key = [by.payments, by.credits, inv.amount_paid, inv.amount_credited, inv.balance].join("/");
    var held = payments.get(id);
    if (held && held.key === key) return held.promise;
    var promise = call("GET", withId(cfg.paymentsUrl, id));
    payments.set(id, { key: key, promise: promise });
    promise.catch(function () { payments.delete(id); });
    return promise;
  }

  var KIND_LABEL = {
    payment: "Payment", credit_note: "Credit note", prepayment: "Prepayment", overpayment: "Overpayment"
  };

  function renderPayments(pop, data) {
    pop.textContent = "";
    var byKind = {};
    data.installments.forEach(function (i) {
      var kind = i.kind || "payment";
      byKind[kind] = (byKind[kind] || 0) + 1;
    });
    var title = document.createElement("p");
    title.className = "installments-title";
    title.textContent = Object.keys(KIND_LABEL).filter(function (kind) { return byKind[kind]; })
      .map(function (kind) {
        var word = KIND_LABEL[kind].toLowerCase();
        return plural(byKind[kind], word, word + "s");
      }).join(", ") || "No payments or credits";
    pop.appendChild(title);

    var table = document.createElement("table");
    var head = table.createTHead().insertRow();
    ["#", "Settled by", "Date", "Amount"].forEach(function (h, n) {
      var th = document.createElement("th");
      th.scope = "col";
      if (n === 1) {  // the column speaks for itself; its name is for screen readers
        var name = document.createElement("span");
        name.className = "visually-hidden";
        name.textContent = h;
        th.appendChild(name);
      } else {
        th.textContent = h;
      }
      head.appendChild(th);
    });
    var body = table.createTBody();
    data.installments.forEach(function (i) {
      var kind = i.kind || "payment";
      var tr = body.insertRow();
      tr.className = "installment installment-" + kind.replace("_", "-");
      tr.dataset.kind = kind;
      tr.dataset.number = String(i.number);
      if (i.payment_id) tr.dataset.paymentId = i.payment_id;
      if (i.document_id) tr.dataset.documentId = i.document_id;

      var n = tr.insertCell();
      n.className = "installment-number";
      n.textContent = String(i.number);

      var what = tr.insertCell();
      what.className = "installment-kind";
      var name = i.kind_label || KIND_LABEL[kind] || kind;
      if (kind === "payment") {  // a payment's reference is free text: under it, small
        what.textContent = name;
        if (i.reference) {
          var ref = document.createElement("small");
          ref.textContent = i.reference;
          what.appendChild(ref);
        }
      } else {  // a credit note's reference is its number: "Credit note CN-0012"
        what.textContent = name;
        if (i.reference) {
          var number = document.createElement("span");
          number.className = "nowrap";
          number.textContent = i.reference;
          what.appendChild(document.createTextNode(" "));
          what.appendChild(number);
        }
      }

      var when = tr.insertCell();
      when.className = "installment-date";
      when.textContent = day(i.date);

      var amount = tr.insertCell();
      amount.className = "installment-amount";
      amount.textContent = money(i.amount, data.currency);
    });
    pop.appendChild(table);

    var sums = document.createElement("p");
    sums.className = "installments-sums";
    var parts = [];
    if (!isZero(data.paid_amount) || isZero(data.credited_amount)) {
      parts.push("Received " + money(data.paid_amount, data.currency));
    }
    if (!isZero(data.credited_amount)) parts.push("Credited " + money(data.credited_amount, data.currency));
    sums.textContent = parts.join(" · ") + " of " + money(data.total, data.currency);
    pop.appendChild(sums);
    var left = document.createElement("p");
    if (isZero(data.balance)) {
      left.className = "installments-left settled";
      left.textContent = "Nothing left to pay";
    } else {
      left.className = "installments-left";
      left.textContent = money(data.balance, data.currency) + " still to pay";
    }
    pop.appendChild(left);
  }

  function showPopover(row) {
    var id = row.dataset.invoiceId;
    var held = rows.get(id);
    if (!held) return;
    if (openPopover && openPopover !== id) closePopover();
    clearTimeout(hideTimer);
    var pop = $(".installments", row);
    var link = $(".payments-link", row);
    openPopover = id;
    if (pop.hidden) {
      pop.hidden = false;
      link.setAttribute("aria-expanded", "true");
      if (!pop.firstChild) pop.textContent = "Loading…";
      place(pop);
    }
    loadPayments(id, held.data).then(function (data) {
      if (pop.hidden) return;
      renderPayments(pop, data);
      place(pop);
    }, function () {
      pop.textContent = "Could not load the payments and credits.";
    });
  }

  // Below the status line, unless it would run off the bottom and there is room above.
  function place(pop) {
    var line = pop.closest(".status-line").getBoundingClientRect();
    var height = pop.offsetHeight;
    pop.classList.toggle("above", line.bottom + height > window.innerHeight && line.top - height >= 0);
  }

  function closePopover() {
    clearTimeout(hideTimer);
    if (!openPopover) return;
    var held = rows.get(openPopover);
    openPopover = null;
    if (!held) return;
    $(".installments", held.el).hidden = true;
    $(".payments-link", held.el).setAttribute("aria-expanded", "false");
  }

  function closeSoon() {
    clearTimeout(hideTimer);
    hideTimer = setTimeout(function () {
      var focused = document.activeElement;
      if (focused && focused.classList && focused.classList.contains("payments-link") &&
          focused.closest("li").dataset.invoiceId === openPopover) return;
      closePopover();
    }, 150);
  }

  list.addEventListener("mouseover", function (event) {
    var target = event.target.closest(".payments");
    if (target) showPopover(target.closest("li"));
  });
  list.addEventListener("mouseout", function (event) {
    var from = event.target.closest(".payments");
    if (from && !from.contains(event.relatedTarget)) closeSoon();
  });
  list.addEventListener("focusin", function (event) {
    if (event.target.classList.contains("payments-link")) showPopover(event.target.closest("li"));
  });
  list.addEventListener("focusout", function (event) {
    if (event.target.classList.contains("payments-link")) closeSoon();
  });
  list.addEventListener("click", function (event) {  // touch screens: a tap opens it
    var link = event.target.closest(".payments-link");
    if (link) showPopover(link.closest("li"));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && openPopover) closePopover();
  });

  // --- start: the token from the fragment, checked first -------------------------------------

  function fromFragment() {
    return new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token") || "";
  }

  // Resolves to the server's refusal (a message), or to null when the widget may start: a
  // network failure or an unexpected answer starts it too, and the API calls then say why.
  function checkAccess() {
    var headers = { "Accept": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(cfg.accessUrl, { method: "POST", headers: headers, cache: "no-store", credentials: "omit" })
      .then(function (response) {
        if (response.ok || [401, 404, 503].indexOf(response.status) < 0) return null;
        return response.json().then(function (body) { return body.error || response.statusText; },
                                    function () { return response.statusText; });
      }, function () { return null; });
  }

  // The page as the server renders a refused link: the reason, and nothing else.
  function refuse(message) {
    stop();
    showLoading(false);
    var box = document.createElement("div");
    box.id = "state-error";
    box.className = "state state-error";
    box.setAttribute("role", "alert");
    var title = document.createElement("p");
    title.className = "state-title";
    title.textContent = "Invoices unavailable";
    var text = document.createElement("p");
    text.className = "state-text";
    text.textContent = message;
    box.appendChild(title);
    box.appendChild(text);
    root.textContent = "";
    root.appendChild(box);
  }

  showLoading(true);
  if (cfg.token) {
    refresh().then(schedule);
  } else {
    checkAccess().then(function (refusal) {
      if (refusal) return refuse(refusal);
      stopped = false;
      refresh().then(schedule);
    });
  }
})();
