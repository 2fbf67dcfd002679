/*
 * desk.js - the Valise desk page (issue 14). Every string shown comes from
 * the message catalogue (i18n/LANG.json); everything that came from another
 * party is put in the page with textContent only, never as HTML.
 */
'use strict';

const S = { cat: {}, lang: 'en', state: null, inbox: [], outbox: [], dir: null, sel: null, to: [], lastPoke: 0, atts: [], attSeq: 0 };
const ATTACH_MAX = 16; /* attachments in one message, as valise send --attach */
const $ = (id) => document.getElementById(id);

function t(key, vars) {
  let s = Object.prototype.hasOwnProperty.call(S.cat, key) ? S.cat[key] : key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split('{' + k + '}').join(String(v));
  return s;
}

/* Element with text only. */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

/* Sizes as the terminal shows them: 950 bytes, 12.5 KiB, 3.2 MiB, 1.1 GiB. */
function fmtSize(n) {
  if (n < 1024) return t('size_bytes', { n });
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  if (n < 1024 * 1024 * 1024) return (n / 1048576).toFixed(1) + ' MiB';
  return (n / 1073741824).toFixed(1) + ' GiB';
}

function fmtTime(secs) {
  if (!secs) return t('never');
  return new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

async function api(path, body) {
  const opt = body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const r = await fetch('/api/' + path, opt);
  const j = await r.json().catch(() => ({ error: 'bad_answer' }));
  if (r.status === 423) { showLock(true); throw new Error('locked'); }
  if (!r.ok) { const e = new Error(j.error || 'error'); e.code = j.error || 'error'; throw e; }
  return j;
}

/* ---- language ---- */

async function setLang(lang) {
  const r = await fetch('/i18n/' + (lang === 'id' ? 'id' : 'en') + '.json');
  S.cat = await r.json();
  S.lang = lang === 'id' ? 'id' : 'en';
  document.documentElement.lang = S.lang;
  $('lang').value = S.lang;
  try { localStorage.setItem('valise.lang', S.lang); } catch (e) { /* private mode */ }
  for (const n of document.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  document.title = t('app_name');
  renderAll();
}

/* ---- header ---- */

function renderState() {
  const st = S.state;
  if (!st) return;
  const me = $('me');
  me.textContent = '';
  if (st.me) {
    me.append(el('b', null, st.me.name), ' ', t('me_at', { role: st.me.role, post: st.me.post }));
  }
  const link = $('link');
  link.className = 'link ' + (st.link.online ? 'online' : 'offline');
  let txt = st.link.online ? t('link_online') : t('link_offline', { when: fmtTime(st.link.last_contact) });
  if (st.link.outbox_waiting) txt += ' · ' + t('link_waiting', { n: st.link.outbox_waiting });
  $('link-text').textContent = txt;
  if (st.directory === 'expiring' || st.directory === 'expired') $('link-text').textContent += ' · ' + t('dir_' + st.directory);
  showLock(st.locked);
}

function showLock(on) {
  $('lockscreen').hidden = !on;
  if (on) {
    /* the desk deleted the attachments of an unsent compose when it locked */
    if (S.atts.length) { S.atts = []; renderAtts(); }
    $('passphrase').focus();
  }
}

/* ---- inbox ---- */

const PREC = { FLASH: 0, IMMEDIATE: 1, PRIORITY: 2, ROUTINE: 3 };

function renderInbox() {
  const tb = $('inbox');
  tb.textContent = '';
  /* precedence first, then the newest first */
  const list = S.inbox.slice().sort((a, b) => (PREC[a.precedence] - PREC[b.precedence]) || (b.time - a.time));
  let unread = 0;
  for (const m of list) {
    if (!m.read) unread++;
    const tr = el('tr', 'p-' + m.precedence + (m.read ? '' : ' unread') + (S.sel === m.id ? ' sel' : ''));
    tr.dataset.id = m.id;
    const c1 = el('td');
    c1.append(el('span', 'badge ' + m.precedence, t('prec_' + m.precedence)), el('br'), el('span', 'label', m.label));
    const c2 = el('td', 'who');
    c2.append(el('span', null, m.sender_name), el('br'), el('small', null, m.sender_role + '@' + m.sender_post));
    const c3 = el('td', null, m.subject || t('no_subject'));
    const c4 = el('td', 'when', fmtTime(m.time));
    tr.append(c1, c2, c3, c4);
    tr.addEventListener('click', () => openMessage(m.id + '/' + m.sender_device));
    tb.append(tr);
  }
  $('inbox-empty').hidden = list.length > 0;
  $('unread-count').textContent = unread ? String(unread) : '';
}

async function openMessage(ref, quiet) {
  const m = await api('read', { id: ref });
  S.sel = m.id;
  const r = $('reader');
  r.textContent = '';
  const h = el('h2', null, m.subject || t('no_subject'));
  const dl = el('dl');
  const row = (k, v) => { dl.append(el('dt', null, t(k)), el('dd', null, v)); };
  row('read_from', m.sender_name);
  row('read_role_post', m.sender_role + '@' + m.sender_post);
  row('read_device', m.sender_device);
  row('read_to', m.to);
  const pd = el('dd');
  pd.append(el('span', 'badge ' + m.precedence, t('prec_' + m.precedence)));
  dl.append(el('dt', null, t('read_precedence')), pd);
  row('read_label', m.label);
  row('read_time', fmtTime(m.time));
  row('read_received', fmtTime(m.received));
  const good = m.signature_ok && m.certificate_ok && m.certificate_now === 'valid';
  const v = el('div', 'verify ' + (good ? 'good' : 'bad'));
  v.id = 'verification';
  v.append(el('p', m.signature_ok ? '' : 'no', m.signature_ok ? t('verify_sig_ok', { name: m.sender_name }) : t('verify_sig_bad')));
  v.append(el('p', m.certificate_ok ? '' : 'no', m.certificate_ok ? t('verify_cert_ok') : t('verify_cert_bad')));
  v.append(el('p', m.certificate_now === 'valid' ? '' : 'no', t('verify_now_' + m.certificate_now)));
  r.append(h, dl, v);
  if (m.delayed) r.append(el('p', 'warn', t('read_delayed', { days: m.ttl_days })));
  const body = el('pre', 'body', m.body);
  body.id = 'message-body';
  r.append(body);
  renderReadAttachments(r, m, ref);
  if (!quiet) await refresh();
  /* fetched by the syncing process meanwhile: look again while one is on its way */
  if ((m.attachments || []).some((a) => a.state === 'part')) {
    clearTimeout(S.readPoll);
    S.readPoll = setTimeout(() => { if (S.sel === m.id && !$('tab-inbox').hidden) openMessage(ref, true).catch(() => {}); }, 3000);
  }
}

/* A received attachment's state in the words of valise read. */
function attState(a) {
  switch (a.state) {
    case 'complete': return t('att_complete');
    case 'part': return a.held === 0 ? t('att_on_its_way', { c: a.chunks })
      : t('att_downloading', { pct: Math.floor(100 * a.held / a.chunks), k: a.held, c: a.chunks });
    case 'gone': return t('att_gone', { k: a.held, c: a.chunks });
    case 'bad': return t('att_bad', { k: a.held, c: a.chunks });
    default: return t('att_' + a.state, { k: a.held, c: a.chunks });
  }
}

function renderReadAttachments(r, m, ref) {
  const list = m.attachments || [];
  if (!list.length) return;
  r.append(el('h3', null, t('read_attachments', { n: list.length })));
  const tb = el('table', 'atts');
  tb.id = 'read-atts';
  for (const a of list) {
    const tr = el('tr');
    tr.dataset.n = String(a.n);
    const act = el('td', 'act');
    const st = el('td', 'st ' + a.state, attState(a));
    if (a.state === 'complete') {
      const save = el('a', 'save', t('att_save'));
      save.href = '/api/attachment?id=' + m.id + '&from=' + m.sender_device + '&n=' + a.n;
      save.setAttribute('download', '');
      save.addEventListener('click', () => {
        if (!tr.querySelector('.saved-note')) st.append(el('br'), el('span', 'saved-note', t('att_saved')));
      });
      act.append(save);
    }
    /* the name and type came from the sender: text only */
    tr.append(el('td', 'name', a.name), el('td', 'size', fmtSize(a.size)), el('td', 'type', a.type), st, act);
    tb.append(tr);
  }
  r.append(tb);
}

/* ---- compose ---- */

/* What an address reaches, from the directory: [{name, role, post}] */
function reach(addr) {
  const devs = (S.dir && S.dir.devices) || [];
  if (addr === '*@*') return devs.filter((d) => !d.me);
  if (addr.startsWith('*@')) return devs.filter((d) => d.post === addr.slice(2) && !d.me);
  if (addr.startsWith('person:')) return devs.filter((d) => d.name === addr.slice(7));
  const at = addr.indexOf('@');
  return devs.filter((d) => d.role === addr.slice(0, at) && d.post === addr.slice(at + 1));
}

function renderPicker() {
  const sel = $('to-pick');
  const keep = sel.value;
  sel.textContent = '';
  const devs = ((S.dir && S.dir.devices) || []).filter((d) => !d.me);
  const posts = [...new Set(devs.map((d) => d.post))].sort();
  const add = (group, addr, label) => { const o = el('option', null, label); o.value = addr; group.append(o); };
  const g1 = el('optgroup'); g1.label = t('pick_posts');
  add(g1, '*@*', t('pick_all', { n: devs.length }));
  for (const p of posts) add(g1, '*@' + p, t('pick_post', { post: p, n: devs.filter((d) => d.post === p).length }));
  const g2 = el('optgroup'); g2.label = t('pick_roles');
  const roles = [...new Set(devs.map((d) => d.role + '@' + d.post))].sort();
  for (const r of roles) add(g2, r, r + ' — ' + [...new Set(reach(r).map((d) => d.name))].join(', '));
  const g3 = el('optgroup'); g3.label = t('pick_persons');
  const names = [...new Set(devs.map((d) => d.name))].sort();
  for (const n of names) add(g3, 'person:' + n, n + ' (' + t('pick_devices', { n: reach('person:' + n).length }) + ')');
  sel.append(g1, g2, g3);
  if (keep) sel.value = keep;
}

function renderChips() {
  const c = $('to-chips');
  c.textContent = '';
  for (const a of S.to) {
    const chip = el('span', 'chip', a);
    const x = el('button', null, '×');
    x.type = 'button';
    x.setAttribute('aria-label', t('compose_remove'));
    x.addEventListener('click', () => { S.to = S.to.filter((y) => y !== a); renderChips(); });
    chip.append(x);
    c.append(chip);
  }
  const n = new Set(S.to.flatMap((a) => reach(a).map((d) => d.device))).size;
  $('to-reach').textContent = S.to.length ? t('compose_reach', { n }) : '';
}

function draft() {
  return { to: S.to.slice(), precedence: $('precedence').value, label: $('label').value.trim(), subject: $('subject').value, body: $('body').value,
    attachments: S.atts.filter((a) => a.handle).map((a) => a.handle) };
}

/* ---- attachments of the compose (issue 13 item 2) ---- */

function renderAtts() {
  const tb = $('att-list');
  tb.textContent = '';
  for (const a of S.atts) {
    const tr = el('tr');
    tr.dataset.key = String(a.key);
    const st = a.status === 'uploading' ? t('att_uploading', { pct: a.pct })
      : a.status === 'ready' ? t('att_ready') : t('att_err_' + a.err, { name: a.name });
    const x = el('button', 'ghost', t('compose_remove'));
    x.type = 'button';
    x.addEventListener('click', () => dropAtt(a));
    const act = el('td', 'act'); act.append(x);
    tr.append(el('td', 'name', a.name), el('td', 'size', fmtSize(a.size)), el('td', 'st ' + a.status, st), act);
    tb.append(tr);
  }
  $('att-input').disabled = S.atts.length >= ATTACH_MAX;
}

/* The file's bytes to the desk, which encrypts them at once; a handle comes back. */
function uploadFile(a, file) {
  return new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open('POST', '/api/attach');
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.setRequestHeader('X-Valise-Name', encodeURIComponent(file.name));
    x.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && e.total) { a.pct = Math.floor(100 * e.loaded / e.total); renderAtts(); }
    });
    x.addEventListener('load', () => {
      let j = {};
      try { j = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
      if (x.status === 200 && j.handle) { a.handle = j.handle; a.status = 'ready'; } else { a.status = 'error'; a.err = j.error || 'error'; }
      if (x.status === 423) showLock(true);
      if (!S.atts.includes(a) && a.handle) api('attach_drop', { handle: a.handle }).catch(() => {});
      renderAtts();
      resolve();
    });
    x.addEventListener('error', () => { a.status = 'error'; a.err = 'upload_failed'; renderAtts(); resolve(); });
    x.send(file);
  });
}

async function addFiles(files) {
  $('compose-error').textContent = '';
  const todo = [];
  for (const f of files) {
    if (S.atts.length >= ATTACH_MAX) { $('compose-error').textContent = t('err_too_many_attachments'); break; }
    const a = { key: ++S.attSeq, name: f.name, size: f.size, status: 'uploading', pct: 0, handle: null, err: '' };
    S.atts.push(a);
    todo.push([a, f]);
  }
  renderAtts();
  for (const [a, f] of todo) await uploadFile(a, f);
}

async function dropAtt(a) {
  S.atts = S.atts.filter((x) => x !== a);
  renderAtts();
  if (a.handle) await api('attach_drop', { handle: a.handle }).catch(() => {});
}

function review(ev) {
  ev.preventDefault();
  const d = draft();
  $('compose-error').textContent = '';
  $('compose-ok').textContent = '';
  if (!d.to.length) { $('compose-error').textContent = t('err_bad_recipients'); return; }
  if (S.atts.some((a) => a.status === 'uploading')) { $('compose-error').textContent = t('err_attach_uploading'); return; }
  const bad = S.atts.find((a) => a.status === 'error');
  if (bad) { $('compose-error').textContent = t('err_attach_refused', { name: bad.name }); return; }
  if (!d.body.length && !d.attachments.length) { $('compose-error').textContent = t('err_empty_body'); return; }
  const dl = $('confirm-summary');
  dl.textContent = '';
  const row = (k, v) => dl.append(el('dt', null, t(k)), el('dd', null, v));
  row('compose_to', d.to.join(', '));
  row('compose_precedence', t('prec_' + d.precedence));
  row('compose_label', d.label);
  row('compose_subject', d.subject || t('no_subject'));
  const ca = $('confirm-atts');
  ca.textContent = '';
  for (const a of S.atts) ca.append(el('li', null, t('confirm_att', { name: a.name, size: fmtSize(a.size) })));
  const ul = $('confirm-who');
  ul.textContent = '';
  for (const a of d.to) {
    const r = reach(a);
    const li = el('li', null, a + ': ' + (r.length ? r.map((x) => x.name + ' (' + x.role + '@' + x.post + ')').join('; ') : t('confirm_nobody')));
    ul.append(li);
  }
  $('confirm').hidden = false;
  $('confirm').scrollIntoView();
}

async function sendNow() {
  const d = draft();
  try {
    const r = await api('send', d);
    $('compose-ok').textContent = t('compose_queued', { n: r.queued.length });
    $('body').value = ''; $('subject').value = ''; S.to = []; renderChips();
    S.atts = []; renderAtts(); /* the desk keeps them with the message now */
  } catch (e) {
    if (e.message !== 'locked') $('compose-error').textContent = t('err_' + (e.code || 'error'));
    if (e.code === 'attachment_expired') { S.atts = []; renderAtts(); }
  }
  $('confirm').hidden = true;
  await refresh();
}

/* ---- outbox ---- */

function renderOutbox() {
  const box = $('outbox');
  box.textContent = '';
  const list = S.outbox.slice().reverse();
  for (const m of list) {
    const card = el('div', 'card');
    card.dataset.id = m.id;
    const h = el('h3');
    h.append(el('span', 'badge ' + m.precedence, t('prec_' + m.precedence)), el('span', null, m.subject || t('no_subject')));
    card.append(h, el('div', 'meta', t('out_meta', { to: m.to, label: m.label, time: fmtTime(m.created) })));
    if (m.to.startsWith('*@')) {
      /* a circular: post by post, how many devices have it delivered and read */
      const posts = {};
      for (const d of m.devices) {
        const p = posts[d.post] || (posts[d.post] = { n: 0, delivered: 0, read: 0 });
        p.n++;
        if (d.state === 6 || d.state === 7) p.delivered++;
        if (d.state === 7) p.read++;
      }
      const pw = el('div', 'posts');
      for (const [p, c] of Object.entries(posts).sort()) pw.append(el('span', null, t('out_post', { post: p, delivered: c.delivered, read: c.read, n: c.n })));
      card.append(pw);
    }
    if (!m.resolved && !m.devices.length) card.append(el('p', 'hint', t('state_3')));
    if (m.attachments && m.attachments.length) {
      /* this device's uploads: waiting, uploading K of C chunks, uploaded, refused by the relay */
      const p = el('p', 'outatts');
      p.append(el('b', null, t('out_attachments', { n: m.attachments.length })), ' ');
      p.append(m.attachments.map((a) => fmtSize(a.size) + ' ' + t('up_' + a.state, { k: a.held, c: a.chunks }) + (a.reason ? ' (' + a.reason + ')' : '')).join(' · '));
      card.append(p);
    }
    const tb = el('table', 'devs');
    for (const d of m.devices) {
      const tr = el('tr');
      const st = el('td', 'state s' + d.state, t('state_' + d.state) + (d.reason ? ' — ' + t('reason', { reason: d.reason }) : ''));
      tr.append(el('td', null, d.name || '?'), el('td', null, (d.role || '?') + '@' + (d.post || '?')), el('td', 'mono', d.device.slice(0, 12) + '…'), st);
      tb.append(tr);
    }
    card.append(tb);
    box.append(card);
  }
  $('outbox-empty').hidden = list.length > 0;
}

/* ---- directory ---- */

function renderDirectory() {
  const box = $('directory');
  box.textContent = '';
  if (!S.dir) return;
  $('dir-version').textContent = t('dir_version', { v: S.dir.version, exp: fmtTime(S.dir.expires) });
  const posts = [...new Set(S.dir.devices.map((d) => d.post))].sort();
  for (const p of posts) {
    const card = el('div', 'dirpost');
    card.append(el('h3', null, p));
    const tb = el('table');
    for (const d of S.dir.devices.filter((x) => x.post === p).sort((a, b) => a.role.localeCompare(b.role))) {
      const tr = el('tr');
      const b = el('button', 'ghost', d.me ? t('dir_this_device') : t('dir_safety'));
      b.type = 'button';
      b.disabled = d.me;
      b.addEventListener('click', () => showSafety(d));
      const act = el('td'); act.append(b);
      tr.append(el('td', null, d.role), el('td', null, d.name), el('td', 'mono', d.device), act);
      tb.append(tr);
    }
    card.append(tb);
    box.append(card);
  }
  const rv = $('revoked');
  rv.textContent = '';
  for (const d of S.dir.revoked) rv.append(el('li', null, t('dir_revoked_row', { name: d.name, role: d.role, post: d.post, device: d.device })));
  if (!S.dir.revoked.length) rv.append(el('li', 'hint', t('dir_none_revoked')));
}

async function showSafety(d) {
  const r = await api('fingerprint', { device: d.device });
  const c = r.contacts[0];
  const box = $('safety');
  box.textContent = '';
  const groups = c.safety.match(/.{5}/g) || [];
  const digits = el('div', 'digits', groups.slice(0, 6).join(' ') + '\n' + groups.slice(6).join(' '));
  const close = el('button', 'ghost', t('close'));
  close.type = 'button';
  close.addEventListener('click', () => { box.hidden = true; });
  box.append(el('h3', null, t('safety_title', { name: c.name })), el('p', 'hint', t('safety_text')), digits, close);
  box.hidden = false;
}

/* ---- alerts ---- */

function beep() {
  try {
    const ac = new (window.AudioContext || window.webkitAudioContext)();
    for (let i = 0; i < 3; i++) {
      const o = ac.createOscillator(); const g = ac.createGain();
      o.frequency.value = 880; o.connect(g); g.connect(ac.destination);
      g.gain.setValueAtTime(0.2, ac.currentTime + i * 0.4);
      o.start(ac.currentTime + i * 0.4); o.stop(ac.currentTime + i * 0.4 + 0.25);
    }
    document.body.dataset.beeped = String(Date.now());
  } catch (e) { /* no audio device */ }
}

function flashAlert(n) {
  const first = S.inbox.filter((m) => m.precedence === 'FLASH' && !m.read)
    .sort((a, b) => b.time - a.time)[0];
  const who = first ? first.sender_name + ' (' + first.sender_role + '@' + first.sender_post + ')' : '';
  $('flash-alert-text').textContent = t('flash_alert_text', { n, who });
  $('flash-alert').hidden = false;
  beep();
  if ('Notification' in window && Notification.permission === 'granted') {
    /* the sender only: a notification can show outside the page */
    new Notification(t('flash_notify_title'), { body: t('flash_notify_body', { who }), requireInteraction: true, tag: 'valise-flash' });
  }
}

/* ---- loading ---- */

async function refresh() {
  S.state = await api('state');
  renderState();
  if (S.state.locked) return;
  const [inb, outb, dir] = await Promise.all([api('inbox'), api('outbox'), api('directory').catch(() => null)]);
  S.inbox = inb.messages; S.outbox = outb.messages; S.dir = dir;
  renderAll();
}

function renderAll() {
  renderState(); renderInbox(); renderOutbox(); renderDirectory(); renderPicker(); renderChips(); renderAtts();
}

function connectEvents() {
  const ws = new WebSocket('ws://' + location.host + '/ws', 'valise.desk');
  ws.addEventListener('message', async (ev) => {
    let e;
    try { e = JSON.parse(ev.data); } catch (x) { return; }
    if (e.type === 'locked') { showLock(true); return; }
    await refresh().catch(() => {});
    if (e.flash > 0) flashAlert(e.flash);
  });
  ws.addEventListener('close', () => setTimeout(connectEvents, 2000));
}

function tab(name) {
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + name;
}

/* The person is here: tell the desk (it locks after the idle time otherwise). */
function poke() {
  const now = Date.now();
  if (now - S.lastPoke < 15000 || !$('lockscreen').hidden) return;
  S.lastPoke = now;
  api('activity', {}).catch(() => {});
}

document.addEventListener('DOMContentLoaded', async () => {
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => tab(b.dataset.tab));
  $('lang').addEventListener('change', () => setLang($('lang').value));
  $('lock').addEventListener('click', async () => { await api('lock', {}).catch(() => {}); showLock(true); });
  $('flash-alert-open').addEventListener('click', () => { $('flash-alert').hidden = true; tab('inbox'); });
  $('to-add').addEventListener('click', () => { const v = $('to-pick').value; if (v && !S.to.includes(v)) S.to.push(v); renderChips(); });
  $('compose').addEventListener('submit', review);
  $('confirm-back').addEventListener('click', () => { $('confirm').hidden = true; });
  $('confirm-send').addEventListener('click', sendNow);
  $('att-input').addEventListener('change', () => { const f = [...$('att-input').files]; $('att-input').value = ''; addFiles(f); });
  $('unlock').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('unlock-error').textContent = '';
    try {
      await api('unlock', { passphrase: $('passphrase').value });
      $('passphrase').value = '';
      showLock(false);
      await refresh();
    } catch (e) { $('unlock-error').textContent = t('err_' + (e.code || 'error')); }
  });
  if ('Notification' in window && Notification.permission === 'default') {
    $('alerts-on').hidden = false;
    $('alerts-on').addEventListener('click', async () => { await Notification.requestPermission(); $('alerts-on').hidden = Notification.permission !== 'default'; });
  }
  for (const ev of ['keydown', 'click', 'mousemove']) document.addEventListener(ev, poke, { passive: true });
  let lang = 'en';
  try { lang = localStorage.getItem('valise.lang') || 'en'; } catch (e) { /* private mode */ }
  await setLang(lang);
  await refresh().catch(() => {});
  connectEvents();
  setInterval(() => { api('state').then((s) => { S.state = s; renderState(); }).catch(() => {}); }, 3000);
});
