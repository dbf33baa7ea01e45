/**
 * The dashboard's stylesheet and its one script, served by the dashboard itself (no CDN, no
 * external fonts). The Content-Security-Policy allows only these (`'self'`): no inline script
 * or style runs, so even markup that escaped escaping could not execute.
 */

export const STYLESHEET = `
:root{color-scheme:light dark;--bg:#f6f7f9;--panel:#fff;--text:#1d2330;--muted:#5f6b7d;--line:#dde2ea;
--accent:#2f6fde;--ok:#1f8a4c;--warn:#b7791f;--bad:#c53030;--code:#f0f2f6;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
@media (prefers-color-scheme:dark){:root{--bg:#12151b;--panel:#1a1f27;--text:#e3e7ee;--muted:#97a3b6;
--line:#2c3340;--accent:#6d9cf0;--ok:#48bb78;--warn:#ecc94b;--bad:#f56565;--code:#222834}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;align-items:center;gap:1.5rem;padding:.6rem 1.5rem;background:var(--panel);border-bottom:1px solid var(--line)}
header .brand{font-weight:700;font-size:1.1rem;color:var(--text)}
header nav{display:flex;gap:1rem}header nav a[aria-current=page]{font-weight:600;color:var(--text)}
header .meta{margin-left:auto;color:var(--muted);display:flex;gap:.75rem;align-items:center}
main{padding:1.25rem 1.5rem;max-width:1400px}
h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.5rem 0 .6rem}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:1rem;margin-bottom:1rem;overflow:auto}
.panel>h2:first-child{margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:1rem;margin-bottom:1rem}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:.75rem 1rem;min-width:150px}
.card .label{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:1.6rem;font-weight:600;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:middle}
th{color:var(--muted);font-weight:600;font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:var(--code);padding:.75rem;border-radius:6px;overflow:auto;max-height:28rem;white-space:pre-wrap;word-break:break-all;margin:.4rem 0}
.muted{color:var(--muted)}.small{font-size:.85rem}
.state{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.8rem;font-weight:600;border:1px solid currentColor}
.state-succeeded{color:var(--ok)}.state-failed,.state-dead{color:var(--bad)}
.state-running,.state-queued{color:var(--accent)}.state-delayed,.state-retrying{color:var(--warn)}
.state-cancelled,.state-skipped{color:var(--muted)}
.flash{padding:.6rem 1rem;border-radius:6px;margin-bottom:1rem;border:1px solid}
.flash-ok{border-color:var(--ok)}.flash-error{border-color:var(--bad)}
.notice{padding:.6rem 1rem;border-radius:6px;border:1px dashed var(--line);color:var(--muted);margin-bottom:1rem}
.badge{padding:.05rem .45rem;border-radius:4px;border:1px solid var(--line);font-size:.8rem}
.actions{display:flex;gap:.5rem;flex-wrap:wrap;align-items:center}
.actions form{display:inline-flex;gap:.35rem;align-items:center;margin:0}
button{font:inherit;padding:.25rem .7rem;border-radius:5px;border:1px solid var(--line);background:var(--panel);color:var(--text);cursor:pointer}
button:hover{border-color:var(--accent)}button:disabled{opacity:.5;cursor:not-allowed}
button.danger{color:var(--bad)}button.danger:hover{border-color:var(--bad)}
input,select{font:inherit;padding:.25rem .45rem;border-radius:5px;border:1px solid var(--line);background:var(--panel);color:var(--text)}
.filters{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-end}
.filters a{padding:.3rem 0}
.filters label{display:flex;flex-direction:column;font-size:.8rem;color:var(--muted);gap:.15rem}
details summary{cursor:pointer;color:var(--muted)}
details.purge[open]{padding:.3rem 0}
.chart svg{width:100%;height:auto;max-height:220px;display:block}
.chart .processed{fill:var(--accent)}.chart .failed{fill:var(--bad)}
.chart .axis{stroke:var(--line)}.chart text{fill:var(--muted);font-size:10px}
.legend{display:flex;gap:1rem;color:var(--muted);font-size:.8rem}
.legend .swatch{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin-right:.3rem;vertical-align:middle}
.swatch.processed{background:var(--accent)}.swatch.failed{background:var(--bad)}
.live{font-size:.8rem}.live[data-status=offline]{color:var(--bad)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
ol.timeline{list-style:none;padding:0;margin:0}
ol.timeline li{padding:.3rem 0 .3rem 1rem;border-left:2px solid var(--line);position:relative}
ol.timeline li.bad{border-left-color:var(--bad)}ol.timeline li.ok{border-left-color:var(--ok)}
.attempt{border-top:1px solid var(--line);padding:.6rem 0}h2+.attempt{border-top:0;padding-top:0}
.error-type{color:var(--bad);font-weight:600}
progress{width:16rem}
.pager{display:flex;gap:1rem;margin-top:.8rem}
`.trim()

/**
 * The script: typed confirmation for purge, confirm() before delete, the overview's live
 * numbers and chart (polling `api/overview` every 2 s), and a reload of a message's page when
 * its state changes (polling `api/messages/<id>`). Plain ES2020, no dependencies.
 */
export const SCRIPT = `
(function () {
  'use strict';
  var meta = function (name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute('content') || '' : '';
  };
  var base = meta('tq-base');
  var body = document.body;

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  });

  var typed = document.querySelectorAll('input[data-confirm-name]');
  Array.prototype.forEach.call(typed, function (input) {
    var button = input.form && input.form.querySelector('button[type=submit]');
    var sync = function () {
      if (button) button.disabled = input.value !== input.getAttribute('data-confirm-name');
    };
    input.addEventListener('input', sync);
    sync();
  });

  var INTERVAL = 2000;
  var status = document.querySelector('[data-live]');
  var setStatus = function (text, state) {
    if (!status) return;
    status.textContent = text;
    status.setAttribute('data-status', state);
  };
  var getJson = function (path) {
    return fetch(base + path, { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      });
  };
  var poll = function (path, apply) {
    var tick = function () {
      if (document.hidden) { setTimeout(tick, INTERVAL); return; }
      getJson(path).then(function (data) {
        apply(data);
        setStatus('live · updated ' + new Date().toLocaleTimeString(), 'live');
      }, function () {
        setStatus('offline · retrying', 'offline');
      }).then(function () { setTimeout(tick, INTERVAL); });
    };
    setTimeout(tick, INTERVAL);
  };
  var setText = function (el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  };
  var count = function (value) {
    return typeof value === 'number' ? value.toLocaleString('en-US') : '\\u2014';
  };

  if (body.getAttribute('data-page') === 'overview') {
    poll('/api/overview', function (data) {
      var rows = Array.prototype.slice.call(document.querySelectorAll('tr[data-queue]'));
      var names = rows.map(function (row) { return row.getAttribute('data-queue'); }).join('\\n');
      var fresh = data.queues.map(function (queue) { return queue.name; }).join('\\n');
      if (names !== fresh) { window.location.reload(); return; }
      data.queues.forEach(function (queue, i) {
        var cells = rows[i].querySelectorAll('[data-count]');
        Array.prototype.forEach.call(cells, function (cell) {
          setText(cell, count(queue[cell.getAttribute('data-count')]));
        });
      });
      Array.prototype.forEach.call(document.querySelectorAll('[data-total]'), function (el) {
        setText(el, count(data.totals[el.getAttribute('data-total')]));
      });
      var chart = document.getElementById('throughput-chart');
      if (chart && typeof data.chart === 'string' && chart.getAttribute('data-chart-key') !== data.chartKey) {
        chart.innerHTML = data.chart;
        chart.setAttribute('data-chart-key', data.chartKey);
      }
    });
  }

  var watched = body.getAttribute('data-watch-state');
  var id = body.getAttribute('data-message-id');
  if (watched && id) {
    poll('/api/messages/' + encodeURIComponent(id), function (data) {
      if (data.state !== watched) window.location.reload();
    });
  }
})();
`.trim()
