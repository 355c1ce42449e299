// The dashboard page: fetch /api/snapshot every 2 s and render it, nothing else. Every
// figure is shown as the snapshot has it (decimals are strings), so the DOM can be
// checked against the JSON and the JSON against the CLI. Text only (textContent): a
// username never becomes markup.
"use strict";

const REFRESH_MS = 2000;
const COLOURS = ["#2f6fdf", "#13795b", "#c0392b", "#d68910", "#7d3c98", "#148f9f",
                 "#5d6d7e", "#a04000", "#1e8449", "#b03a2e"];
const charts = {};

function cell(row, text, testid) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (testid) td.dataset.testid = testid;
  row.appendChild(td);
  return td;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const [text, testid] of cells) cell(tr, text, testid);
    tbody.appendChild(tr);
  }
}

function setText(id, text) {
  document.getElementById(id).textContent = text === null ? "-" : String(text);
}

function counts(tbody, values, prefix) {
  fillRows(tbody, Object.entries(values || {}).map(([key, n]) => [[key], [n, `${prefix}-${key}`]]));
}

function renderOrders(analytics) {
  const orders = analytics.orders;
  setText("final-orders", orders.final);
  setText("fill-ratio", orders.fill_ratio);
  counts(document.querySelector("#final-by-status tbody"), orders.by_status, "final-status");
  counts(document.querySelector("#failures tbody"), orders.failures, "failure");
}

function bound(ms) {
  if (ms === null) return "-";
  return ms < 0 ? "longer" : ms;
}

function renderLatency(latency) {
  const rows = Object.entries(latency).map(([kind, l]) => [
    [kind], [l.samples, `latency-${kind}-samples`],
    ...["p50", "p90", "p99"].map((p) => [bound(l[p]), `latency-${kind}-${p}`]),
  ]);
  fillRows(document.querySelector("#latency tbody"), rows);
}

function renderQueues(status) {
  const queues = status.queues || [];
  fillRows(document.querySelector("#queues tbody"), queues.map((q) => [
    [q.name], [q.visible, `queue-${q.name}-visible`], [q.in_flight, `queue-${q.name}-in-flight`],
    [q.dead_letters, `queue-${q.name}-dead-letters`],
  ]));
  const dead = queues.reduce((sum, q) => sum + (q.dead_letters || 0), 0);
  setText("dead-letters-total", dead);
  counts(document.querySelector("#table-by-status tbody"), status.orders_by_status, "table-status");
}

function renderUsers(users) {
  fillRows(document.querySelector("#users tbody"), users.slice(0, 10).map((u, i) => [
    [u.username, `top-user-${i}-name`], [u.volume_in_base, `top-user-${i}-volume`],
    [u.realised_pnl_in_base, `top-user-${i}-pnl`],
    [u.unconverted.join(", ") || "", `top-user-${i}-unconverted`],
  ]));
}

function renderBase(base) {
  for (const span of document.querySelectorAll(".base")) span.textContent = base;
}

// The stored rates (`rates --output json`), each with its age; a rate older than the
// configured age is marked stale (it values nothing, and no conversion may use it).
function renderRates(rates) {
  const tbody = document.querySelector("#rates tbody");
  fillRows(tbody, [
    ...rates.rates.map((r) => [
      [r.currency], [r.rate, `rate-${r.currency}`], [r.as_of], [r.age_seconds, `rate-${r.currency}-age`],
      [r.stale ? "stale" : "fresh", `rate-${r.currency}-state`],
    ]),
    ...rates.missing.map((c) => [[c], ["-"], ["-"], ["-"], ["no rate", `rate-${c}-state`]]),
  ]);
  rates.rates.forEach((r, i) => { if (r.stale) tbody.rows[i].className = "stale"; });
  for (let i = rates.rates.length; i < tbody.rows.length; i += 1) tbody.rows[i].className = "stale";
  setText("rates-note", `stale after ${rates.max_age_seconds} s`);
}

function renderCurrencies(currencies) {
  const rows = currencies.by_currency.map((c) => {
    const base = c.in_base || {};
    const unconverted = c.unconverted ? `not converted: ${c.unconverted}` : null;
    return [
      [c.currency], [c.fills, `currency-${c.currency}-fills`],
      [c.volume, `currency-${c.currency}-volume`], [c.cost],
      [c.realised_pnl, `currency-${c.currency}-pnl`], [c.conversion_spread],
      [c.rate ?? unconverted, `currency-${c.currency}-rate`],
      [base.volume ?? "-", `currency-${c.currency}-volume-base`],
      [base.realised_pnl ?? "-", `currency-${c.currency}-pnl-base`], [base.conversion_spread ?? "-"],
    ];
  });
  fillRows(document.querySelector("#currencies tbody"), rows);
  const total = currencies.total_in_base;
  setText("total-volume-base", `${total.volume} ${currencies.base}`);
  setText("total-pnl-base", `${total.realised_pnl} ${currencies.base}`);
  setText("total-spread-base", `${total.conversion_spread} ${currencies.base}`);
  const missing = Object.entries(total.unconverted).map(([c, why]) => `${c} (${why})`);
  const note = document.getElementById("total-note");
  note.textContent = (total.rates_as_of ? `at rates as of ${total.rates_as_of}` : "") +
    (missing.length ? `; not converted: ${missing.join(", ")}` : "");
  note.className = missing.length ? "stale" : "muted";
}

function renderConversions(conversions) {
  fillRows(document.querySelector("#conversions tbody"), conversions.map((c) => {
    const pair = `conversion-${c.sell}-${c.buy}`;
    return [
      [c.sell], [c.buy], [c.conversions, `${pair}-count`], [c.sold], [c.bought],
      [`${c.spread} ${c.buy}`, `${pair}-spread`], [c.spread_in_base, `${pair}-spread-base`],
    ];
  }));
}

function renderAudit(audit) {
  const verdict = document.getElementById("audit-verdict");
  const detail = document.getElementById("audit-detail");
  const list = document.getElementById("audit-mismatches");
  const currencies = document.getElementById("audit-currencies");
  list.replaceChildren();
  currencies.replaceChildren();
  if (audit.error) {
    verdict.textContent = "not run";
    verdict.className = "failed";
    detail.textContent = `${audit.error} (${audit.at})`;
  } else if (!audit.report) {
    verdict.textContent = "running";
    verdict.className = "muted";
    detail.textContent = "the first audit has not finished";
  } else {
    const r = audit.report;
    verdict.textContent = r.passed ? "PASSED" : `FAILED: ${r.mismatches.length} mismatch(es)`;
    verdict.className = r.passed ? "passed" : "failed";
    detail.textContent = `${r.users} users, ${r.orders} orders, ${r.transactions} transactions ` +
      `checked at ${audit.at} (in-flight orders allowed; a mismatch is one a second read ` +
      "of its user finds again)";
    for (const m of r.mismatches.slice(0, 10)) {
      const li = document.createElement("li");
      li.textContent = `${m.kind} ${m.username}: ${m.detail}`;
      list.appendChild(li);
    }
    // Per currency: the users' balances and the exchange's liquidity against what came in
    // less what went out.
    for (const [code, c] of Object.entries(r.currencies || {})) {
      const li = document.createElement("li");
      li.textContent = `${code}: balances ${c.balances} + liquidity ${c.liquidity}, ` +
        `in less out ${c.flows}: ${c.conserved ? "conserved" : "NOT conserved"}`;
      li.dataset.testid = `audit-currency-${code}`;
      currencies.appendChild(li);
    }
  }
}

function bookTable(title, rows, columns, testid) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const c of [title, ...columns.slice(1)]) {
    const th = document.createElement("th");
    th.textContent = c;
    head.appendChild(th);
  }
  const body = table.createTBody();
  fillRows(body, rows.map((r) => columns.map((c) => [r[c]])));
  table.dataset.testid = testid;
  return table;
}

function renderBooks(books, prices) {
  const list = document.getElementById("book-list");
  list.replaceChildren();
  for (const [asset, book] of Object.entries(books)) {
    const box = document.createElement("div");
    box.className = "book";
    const h = document.createElement("h3");
    const quoted = prices[asset] || {};
    h.textContent = `${asset} at ${quoted.current ?? "-"} ${quoted.currency ?? ""}: ${book.totals.bids} bids, ` +
      `${book.totals.asks} asks, ${book.totals.stops} waiting stops`;
    h.dataset.testid = `book-${asset}-title`;
    box.appendChild(h);
    box.appendChild(bookTable("bid", book.bids, ["username", "limit_price", "quantity"], `book-${asset}-bids`));
    box.appendChild(bookTable("ask", book.asks, ["username", "limit_price", "quantity"], `book-${asset}-asks`));
    box.appendChild(bookTable("stop", book.stops, ["order_type", "stop_price", "quantity"], `book-${asset}-stops`));
    list.appendChild(box);
  }
}

function epoch(minute) {
  return Date.parse(`${minute}:00Z`) / 1000;
}

// One uPlot per key, made again only when its series change; else given the new data.
function chart(key, parent, title, names, data, points) {
  const signature = names.join(",");
  let entry = charts[key];
  if (entry && entry.signature !== signature) {
    entry.plot.destroy();
    entry.box.remove();
    entry = undefined;
  }
  if (!entry) {
    const box = document.createElement("div");
    parent.appendChild(box);
    const series = [{}, ...names.map((name, i) => ({
      label: name, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true,
      points: { show: points },
    }))];
    const options = {
      title, width: 620, height: 220, series, legend: { live: false },
      scales: { x: { time: true } }, axes: [{}, { size: 80 }],
    };
    entry = { signature, box, plot: new uPlot(options, data, box) };
    charts[key] = entry;
  } else {
    entry.plot.setData(data);
  }
}

function renderRate(throughput) {
  const xs = throughput.minutes.map(epoch);
  for (const [key, title] of [["by_type", "by order type"], ["by_status", "by final status"]]) {
    const names = Object.keys(throughput[key]);
    const data = [xs, ...names.map((n) => throughput[key][n])];
    chart(`rate-${key}`, document.getElementById(`rate-${key.replace("_", "-")}`), title, names, data, false);
  }
}

function renderPrices(prices, asOf) {
  const parent = document.getElementById("price-charts");
  const now = Date.parse(asOf) / 1000;
  for (const [asset, p] of Object.entries(prices)) {
    const xs = [...p.history.map((h) => epoch(h.minute)), now];
    const vwap = [...p.history.map((h) => Number(h.vwap)), null];
    const current = [...p.history.map(() => null), p.current === null ? null : Number(p.current)];
    chart(`price-${asset}`, parent, `${asset} in ${p.currency ?? "-"} (now ${p.current ?? "-"})`,
      ["VWAP per minute", "price now"], [xs, vwap, current], true);
  }
}

function render(snapshot) {
  setText("as-of", snapshot.as_of);
  renderOrders(snapshot.analytics);
  renderLatency(snapshot.analytics.latency_ms);
  renderQueues(snapshot.status);
  renderBase(snapshot.rates.base_currency);
  renderUsers(snapshot.analytics.users);
  renderRates(snapshot.rates);
  renderCurrencies(snapshot.analytics.currencies);
  renderConversions(snapshot.analytics.conversions);
  renderAudit(snapshot.audit);
  renderBooks(snapshot.books, snapshot.prices);
  renderRate(snapshot.throughput);
  renderPrices(snapshot.prices, snapshot.as_of);
}

async function refresh() {
  const connection = document.getElementById("connection");
  try {
    const answer = await fetch("/api/snapshot", { cache: "no-store" });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || answer.statusText);
    render(body);
    connection.textContent = "live";
    connection.className = "live";
  } catch (error) {
    connection.textContent = `stale: ${error.message}`;
    connection.className = "stale";
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
