// tapsettle operator dashboard. Vanilla JS, no build step. Every value from the hub is rendered
// with textContent (never innerHTML), so nothing the hub says can become markup (XSS).
'use strict';

const $ = (id) => document.getElementById(id);
const SPARK_POINTS = 120;
const spark = [];
let lastSnapshot = null;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function setText(id, text) {
  $(id).textContent = text === null || text === undefined ? '–' : String(text);
}

// Money is integer minor units: format with string arithmetic, never a float division.
const digitsCache = new Map();
function minorDigits(currency) {
  if (!digitsCache.has(currency)) {
    let d = 2;
    try {
      d = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
    } catch (_e) {
      d = 2;
    }
    digitsCache.set(currency, d);
  }
  return digitsCache.get(currency);
}
function money(amountMinor, currency) {
  if (typeof amountMinor !== 'number' || !Number.isSafeInteger(amountMinor)) return '?';
  const d = minorDigits(currency);
  const sign = amountMinor < 0 ? '−' : '';
  const digits = String(Math.abs(amountMinor)).padStart(d + 1, '0');
  const whole = digits.slice(0, digits.length - d).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = d > 0 ? '.' + digits.slice(digits.length - d) : '';
  return `${sign}${whole}${frac} ${currency}`;
}

function shortId(id) {
  const s = String(id);
  return s.length > 16 ? `${s.slice(0, 8)}…${s.slice(-6)}` : s;
}

function clock(ms) {
  if (typeof ms !== 'number') return '–';
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

function dateTime(ms) {
  return new Date(ms).toLocaleString('en-GB', { hour12: false });
}

function ago(ms, nowMs) {
  if (typeof ms !== 'number') return '–';
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
}

function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function ms(v) {
  return v === null || v === undefined ? '–' : `${v} ms`;
}

// A wallet/merchant id that opens the account view when clicked.
function accountLink(id) {
  const a = el('button', shortId(id), 'link mono');
  a.type = 'button';
  a.title = String(id);
  a.addEventListener('click', () => {
    $('account-id').value = String(id);
    lookUp(String(id));
  });
  return a;
}

function fillTable(tableId, rows, makeCells, emptyText) {
  const tbody = $(tableId).querySelector('tbody');
  const cols = $(tableId).querySelectorAll('thead th').length;
  const frag = document.createDocumentFragment();
  if (rows.length === 0) {
    const tr = el('tr', undefined, 'empty');
    const td = el('td', emptyText, 'muted');
    td.colSpan = cols;
    tr.appendChild(td);
    frag.appendChild(tr);
  }
  for (const row of rows) {
    const tr = el('tr');
    for (const cell of makeCells(row)) {
      if (cell instanceof window.Node) {
        const td = cell.tagName === 'TD' ? cell : el('td');
        if (td !== cell) td.appendChild(cell);
        tr.appendChild(td);
      } else tr.appendChild(el('td', cell));
    }
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
}

function td(text, className) {
  return el('td', text, className);
}

function statusCell(s) {
  const cell = el('td');
  const label = s.status === 'declined' ? s.code || 'declined' : s.status;
  cell.appendChild(el('span', label, `pill pill-${s.status}`));
  return cell;
}

function render(snap) {
  lastSnapshot = snap;
  const now = snap.hub.nowMs;
  setText('hub-name', snap.hub.name);
  setText('hub-mqtt', snap.hub.mqttUrl ? `mqtt ${snap.hub.mqttUrl}` : '');
  setText('hub-uptime', `up ${duration(now - snap.hub.startedAtMs)}`);

  const v = snap.verify;
  const verify = $('verify');
  if (!v) {
    verify.className = 'pill pill-wait';
    verify.textContent = 'ledger: not checked yet';
  } else {
    verify.className = v.ok ? 'pill pill-approved' : 'pill pill-declined';
    verify.textContent = v.ok ? `ledger verified ✓ ${clock(v.checkedAtMs)}` : `ledger DISCREPANCY ${clock(v.checkedAtMs)}`;
    verify.title = v.detail;
  }

  const t = snap.throughput;
  setText('kpi-settled-rate', t.settledPerS);
  setText('kpi-declined-rate', t.declinedPerS);
  setText('kpi-p50', ms(t.latencyMsP50));
  setText('kpi-p99', ms(t.latencyMsP99));
  setText('kpi-settled-total', t.totalSettled.toLocaleString('en'));
  setText('kpi-declined-total', t.totalDeclined.toLocaleString('en'));
  setText('window', `(window ${Math.round(t.windowMs / 1000)} s)`);
  const online = snap.terminals.filter((x) => x.state === 'online').length;
  setText('kpi-terminals', `${online} / ${snap.terminals.length}`);
  spark.push(t.settledPerS);
  if (spark.length > SPARK_POINTS) spark.shift();
  drawSpark();

  setText('terminals-count', snap.terminals.length);
  fillTable('terminals', snap.terminals, (x) => [
    td(x.terminalId, 'mono'),
    td(x.kind || '–'),
    (() => {
      const c = el('td');
      c.appendChild(el('span', x.state, `dot dot-${x.state === 'online' ? 'on' : x.state === 'offline' ? 'off' : 'unknown'}`));
      return c;
    })(),
    td(x.lastSeenMs ? ago(x.lastSeenMs, now) : '–', 'muted'),
  ], 'no terminals have connected yet');

  setText('settlements-count', snap.settlements.length);
  fillTable('settlements', snap.settlements, (s) => [
    td(clock(s.atMs), 'mono muted'),
    td(s.kind),
    td(s.terminalId || '–', 'mono'),
    td(s.status === 'declined' && s.amountMinor === 0 ? '–' : money(s.amountMinor, s.currency), 'num mono'),
    statusCell(s),
    (() => {
      const c = td(shortId(s.requestId), 'mono muted');
      c.title = s.requestId;
      return c;
    })(),
  ], 'no settlements yet');

  setText('holds-count', snap.holds.length);
  fillTable('holds', snap.holds, (h) => [
    (() => {
      const c = td(shortId(h.requestId), 'mono');
      c.title = h.requestId;
      return c;
    })(),
    accountLink(h.walletId),
    td(h.merchantId, 'mono'),
    td(money(h.amountMinor, h.currency), 'num mono'),
    td(duration(h.releaseAtMs - now)),
  ], 'no purchase is inside its cancellation window');

  const codes = Object.entries(t.declinedByCode);
  fillTable('declines', codes, ([code, n]) => [td(code, 'mono'), td(n.toLocaleString('en'), 'num')], 'nothing declined');

  setText('merchants-count', snap.merchants.length);
  fillTable('merchants', snap.merchants, (m) => [accountLink(m.id), td(m.terminals, 'num'), td(money(m.balanceMinor, m.currency), 'num mono')], 'no merchants yet');

  setText('flagged-count', snap.flagged.length);
  fillTable('flagged', snap.flagged, (f) => [accountLink(f.id), td(money(f.balanceMinor, f.currency), 'num mono neg')], 'no flagged accounts');

  const { count, latest } = snap.incidents;
  setText('incidents-count', count > latest.length ? `${count} (latest ${latest.length} shown)` : count);
  fillTable('incidents', latest, (i) => [
    td(dateTime(i.timeMs), 'mono'),
    td(i.terminalId, 'mono'),
    accountLink(i.wallet),
    td(`${i.kind}: ${i.detail}`),
    td(money(i.amountMinor, i.currency), 'num mono'),
  ], 'no incidents reported');

  setText('blocklist-count', snap.blocklist.count);
  setText('blocklist-version', snap.blocklist.version === null ? 'not announced yet' : `announced version ${snap.blocklist.version}`);
  const list = document.createDocumentFragment();
  for (const w of snap.blocklist.wallets) {
    const li = el('li');
    li.appendChild(accountLink(w));
    list.appendChild(li);
  }
  if (snap.blocklist.count === 0) list.appendChild(el('li', 'empty', 'muted'));
  else if (snap.blocklist.count > snap.blocklist.wallets.length) list.appendChild(el('li', `… and ${snap.blocklist.count - snap.blocklist.wallets.length} more`, 'muted'));
  $('blocklist').replaceChildren(list);
}

function drawSpark() {
  const canvas = $('spark');
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (spark.length < 2) return;
  const max = Math.max(1, ...spark);
  ctx.beginPath();
  spark.forEach((v, i) => {
    const x = (i / (spark.length - 1)) * w;
    const y = h - 2 - (v / max) * (h - 6);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.strokeStyle = '#3ecf8e';
  ctx.lineWidth = 2;
  ctx.stroke();
}

async function lookUp(id) {
  const out = $('account-result');
  out.className = '';
  out.replaceChildren(el('span', 'looking up…', 'muted'));
  try {
    const res = await fetch(`/api/account?id=${encodeURIComponent(id)}`);
    const body = await res.json();
    if (!res.ok) {
      out.replaceChildren(el('span', body.error || `HTTP ${res.status}`, 'neg'));
      return;
    }
    const head = el('div', undefined, 'account-head');
    const idLine = el('div', body.id, 'mono wrap');
    head.appendChild(idLine);
    const facts = el('div');
    facts.appendChild(el('span', body.kind, 'pill pill-wait'));
    facts.appendChild(el('span', money(body.balanceMinor, body.currency), `balance mono ${body.balanceMinor < 0 ? 'neg' : ''}`));
    if (body.flagged) facts.appendChild(el('span', 'flagged', 'pill pill-declined'));
    if (body.blocklisted) facts.appendChild(el('span', 'blocklisted', 'pill pill-declined'));
    head.appendChild(facts);
    const table = el('table');
    const thead = el('thead');
    const hr = el('tr');
    for (const h of ['time', 'entry', 'amount', 'request']) hr.appendChild(el('th', h));
    thead.appendChild(hr);
    const tbody = el('tbody');
    for (const item of body.history) {
      const tr = el('tr');
      tr.appendChild(td(clock(item.atMs), 'mono muted'));
      tr.appendChild(td(item.entryKind));
      tr.appendChild(td(money(item.amountMinor, item.currency), `num mono ${item.amountMinor < 0 ? 'neg' : 'pos'}`));
      const r = td(item.requestId ? shortId(item.requestId) : '–', 'mono muted');
      if (item.requestId) r.title = item.requestId;
      tr.appendChild(r);
      tbody.appendChild(tr);
    }
    if (body.history.length === 0) tbody.appendChild(el('tr')).appendChild(td('no history', 'muted'));
    table.append(thead, tbody);
    out.replaceChildren(head, table);
  } catch (err) {
    out.replaceChildren(el('span', `lookup failed: ${err}`, 'neg'));
  }
}

function connect() {
  const conn = $('conn');
  const source = new EventSource('/events');
  source.addEventListener('open', () => {
    conn.className = 'pill pill-approved';
    conn.textContent = 'live';
  });
  source.addEventListener('snapshot', (event) => {
    try {
      render(JSON.parse(event.data));
    } catch (err) {
      console.error('dashboard: bad snapshot', err);
    }
  });
  source.addEventListener('error', () => {
    conn.className = 'pill pill-wait';
    conn.textContent = 'reconnecting…';
  });
}

document.addEventListener('DOMContentLoaded', () => {
  $('account-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = $('account-id').value.trim();
    if (id) lookUp(id);
  });
  // Keep "x s ago" fresh between snapshots.
  window.setInterval(() => {
    if (lastSnapshot) setText('hub-uptime', `up ${duration(Date.now() - lastSnapshot.hub.startedAtMs)}`);
  }, 1000);
  connect();
});
