// desk.test.mjs - the desk in Debian's chromium, driven by Playwright
// (playwright-core, no browser download). Run by desk_e2e.sh, which starts
// the relay and three desks: HQ (Siti Rahma, duty@HQ), the ambassador
// (Budi Santoso, ambassador@JKT) and the consul (Dewi Lestari, idle lock 4 s).
// usage: node desk.test.mjs WORKDIR   (HQ_URL, AMB_URL, CON_URL, SHOTS in env)
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { HQ_URL, AMB_URL, CON_URL, SHOTS } = process.env;
let failures = 0;
const fail = (msg) => { failures++; console.error('FAIL: ' + msg); };
const check = (cond, msg) => { if (!cond) fail(msg); };
const step = (msg) => console.log('-- ' + msg);

const profile = mkdtempSync(join(tmpdir(), 'valise-desk-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1360, height: 820 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});

// No request leaves 127.0.0.1.
const outside = [];
const local = (u) => /^(http|ws):\/\/127\.0\.0\.1:\d+\//.test(u) || u.startsWith('data:') || u === 'about:blank';
context.on('request', (r) => { if (!local(r.url())) outside.push(r.url()); });
const cspViolations = [];

async function openDesk(url, name) {
  const origin = url.replace(/\/login.*/, '');
  await context.grantPermissions(['notifications'], { origin });
  const page = await context.newPage();
  page.on('websocket', (ws) => { if (!local(ws.url())) outside.push(ws.url()); });
  page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) cspViolations.push(name + ': ' + m.text()); });
  // Record notifications (the page's own code calls new Notification).
  await page.addInitScript(() => {
    window.__notes = [];
    const N = function (title, opt) { window.__notes.push({ title, body: opt && opt.body }); };
    N.permission = 'granted';
    N.requestPermission = () => Promise.resolve('granted');
    window.Notification = N;
  });
  const resp = await page.goto(url);
  check(resp.ok(), name + ': login answered ' + resp.status());
  check(new URL(page.url()).pathname === '/' && !page.url().includes('token'), name + ': token left in the address bar: ' + page.url());
  await page.waitForSelector('#me b, #lockscreen:not([hidden])', { timeout: 15000 });
  return page;
}

const shot = async (page, file, fullPage) => {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, file), fullPage: !!fullPage });
};

try {
  step('log in with the token');
  const hq = await openDesk(HQ_URL, 'hq');
  const amb = await openDesk(AMB_URL, 'amb');
  check((await hq.textContent('#me')).includes('Siti Rahma'), 'hq desk does not show its owner');
  check((await amb.textContent('#me')).includes('Budi Santoso'), 'amb desk does not show its owner');
  await amb.waitForSelector('#link.online', { timeout: 20000 });

  step('a used token opens nothing');
  const again = await context.newPage();
  const r2 = await again.goto(HQ_URL);
  check(r2.status() === 403, 'the token worked a second time: ' + r2.status());
  await again.close();

  step('injection attempts show as text');
  await amb.waitForSelector('#inbox tr', { timeout: 20000 });
  await amb.click('#inbox tr:has-text("<b>bold</b>")');
  await amb.waitForSelector('#message-body');
  const body = await amb.textContent('#message-body');
  check(body.includes('<script>window.pwned=1</script>'), 'script tag not shown as text: ' + body);
  check(body.includes('<img src=x onerror='), 'img tag not shown as text');
  check(body.includes('[U+202E]evil') && body.includes('[U+001B][2J'), 'bidi / escape not made visible: ' + JSON.stringify(body));
  check(await amb.evaluate(() => window.pwned === undefined && document.title !== '1'), 'the injected script ran');
  check(await amb.evaluate(() => document.querySelectorAll('#reader img, #reader script, #reader b').length === 0), 'injected elements in the page');
  check((await amb.textContent('#reader h2')).includes('<b>bold</b>'), 'subject not shown as text');
  // CSP: an inline script put in the page does not run.
  await amb.evaluate(() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; document.body.append(s); });
  check(await amb.evaluate(() => window.__inline === undefined), 'an inline script ran (CSP)');

  step('HQ composes a FLASH to *@JKT');
  await hq.click('button[data-tab=compose]');
  await hq.waitForSelector('#to-pick option[value="*@JKT"]', { state: 'attached' });
  await hq.selectOption('#to-pick', '*@JKT');
  await hq.click('#to-add');
  await hq.selectOption('#precedence', 'FLASH');
  await hq.fill('#label', 'SECRET');
  await hq.fill('#subject', 'Demarche at 09:00 on the fisheries agreement');
  await hq.fill('#body', 'Ambassador,\n\nPlease deliver the note verbale to the Foreign Ministry at 09:00 local time and report back by IMMEDIATE.\n\nDuty officer, HQ');
  await hq.click('#compose button[type=submit]');
  await hq.waitForSelector('#confirm:not([hidden])');
  const who = await hq.textContent('#confirm-who');
  check(who.includes('Budi Santoso') && who.includes('Dewi Lestari'), 'confirmation does not show who receives it: ' + who);
  check(!who.includes('Old Laptop'), 'confirmation lists the revoked device');
  await shot(hq, 'compose.png', true);
  await hq.click('#confirm-send');
  await hq.waitForSelector('#compose-ok:not(:empty)');

  step('the ambassador\'s desk raises the FLASH alert');
  await amb.waitForSelector('#flash-alert:not([hidden])', { timeout: 30000 });
  check((await amb.textContent('#flash-alert')).includes('Siti Rahma'), 'alert does not name the sender');
  await amb.waitForFunction(() => window.__notes.length > 0, null, { timeout: 5000 }).catch(() => fail('no browser notification'));
  const notes = await amb.evaluate(() => window.__notes);
  check(notes.length > 0 && !JSON.stringify(notes).includes('Demarche'), 'the notification carries the subject (plaintext outside the page): ' + JSON.stringify(notes));
  check(await amb.evaluate(() => !!document.body.dataset.beeped), 'no audible alert');
  const first = await amb.getAttribute('#inbox tr:first-child', 'class');
  check(first.includes('p-FLASH'), 'FLASH is not first in the inbox: ' + first);
  await shot(amb, 'inbox-flash.png');

  step('reading shows the verification in words');
  await amb.click('#flash-alert-open');
  await amb.click('#inbox tr.p-FLASH');
  await amb.waitForSelector('#verification');
  // the pane may still show the message opened before: wait for this one's verification
  await amb.waitForFunction(() => (document.querySelector('#verification') || {}).textContent
    ?.includes('Siti Rahma'), null, { timeout: 10000 }).catch(() => {});
  const ver = await amb.textContent('#verification');
  check(await amb.$('#verification.good') !== null, 'verification not good: ' + ver);
  check(ver.includes("Signed by Siti Rahma's own device"), 'verification not in words: ' + ver);
  const rd = await amb.textContent('#reader');
  for (const w of ['duty@HQ', 'SECRET', 'FLASH', 'note verbale']) check(rd.includes(w), 'reader lacks ' + w);
  await shot(amb, 'read-verified.png');

  step('the read receipt reaches HQ\'s outbox, per device and per post');
  await hq.click('button[data-tab=outbox]');
  await hq.waitForFunction(() => /Budi Santoso.*read/.test(document.querySelector('#outbox .card')?.textContent || ''), null, { timeout: 45000 })
    .catch(async () => fail('no read receipt in the outbox: ' + await hq.textContent('#outbox')));
  const ob = await hq.textContent('#outbox .card');
  check(/JKT: 2 of 2 delivered, 1 read/.test(ob), 'circular per post not shown: ' + ob);
  await shot(hq, 'outbox.png');

  step('the language switch');
  await amb.selectOption('#lang', 'id');
  await amb.waitForFunction(() => document.querySelector('button[data-tab=inbox]').textContent.includes('Kotak masuk'));
  check((await amb.textContent('#inbox')).includes('KILAT'), 'precedence not translated');
  check((await amb.textContent('#verification')).length > 0, 'reader lost');
  await amb.selectOption('#lang', 'en');
  await amb.waitForFunction(() => document.querySelector('button[data-tab=inbox]').textContent.includes('Inbox'));

  step('attachments: HQ attaches two files (and one it removes) and sends them');
  const files = mkdtempSync(join(tmpdir(), 'valise-desk-files-'));
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n% note verbale 12/2026\n'), randomBytes(40000)]);
  const annex = Buffer.from('Annex: list of the delegation\n' + 'Mr A. Example, Second Secretary\n'.repeat(40));
  writeFileSync(join(files, 'note-verbale-12.pdf'), pdf);
  writeFileSync(join(files, 'annex.txt'), annex);
  writeFileSync(join(files, 'draft-old.txt'), 'not this one\n');
  writeFileSync(join(files, 'empty.txt'), '');
  await hq.click('button[data-tab=compose]');
  await hq.selectOption('#to-pick', 'ambassador@JKT');
  await hq.click('#to-add');
  await hq.selectOption('#precedence', 'IMMEDIATE');
  await hq.fill('#label', 'RESTRICTED');
  await hq.fill('#subject', 'Note verbale 12/2026 with annex');
  await hq.fill('#body', 'Ambassador,\n\nThe scanned note verbale and its annex are attached.\n\nDuty officer, HQ');
  await hq.setInputFiles('#att-input', [join(files, 'note-verbale-12.pdf'), join(files, 'annex.txt'), join(files, 'draft-old.txt')]);
  await hq.waitForFunction(() => document.querySelectorAll('#att-list td.st.ready').length === 3, null, { timeout: 20000 })
    .catch(async () => fail('attachments not ready: ' + await hq.textContent('#att-list')));
  const rows = await hq.textContent('#att-list');
  check(rows.includes('note-verbale-12.pdf') && rows.includes('39.1 KiB') && rows.includes('annex.txt'), 'attachment rows lack name or size: ' + rows);
  await hq.click('#att-list tr:nth-child(3) button'); // draft-old.txt: removed before sending
  await hq.waitForFunction(() => document.querySelectorAll('#att-list tr').length === 2);
  check(!(await hq.textContent('#att-list')).includes('draft-old.txt'), 'a removed attachment is still listed');
  await hq.click('#compose button[type=submit]');
  await hq.waitForSelector('#confirm:not([hidden])');
  const conf = await hq.textContent('#confirm');
  check(conf.includes('note-verbale-12.pdf') && conf.includes('annex.txt') && !conf.includes('draft-old'), 'confirmation does not list the attachments: ' + conf);
  await shot(hq, 'attach-compose.png', true);
  const outBefore = (await hq.evaluate(async () => (await (await fetch('/api/outbox')).json()).messages.length));
  await hq.click('#confirm-send');
  await hq.waitForSelector('#compose-ok:not(:empty)');
  check(await hq.evaluate(() => document.querySelectorAll('#att-list tr').length === 0), 'the compose kept its attachments after sending');
  const ob2 = await hq.evaluate(async () => (await (await fetch('/api/outbox')).json()).messages);
  check(ob2.length === outBefore + 1 && ob2[ob2.length - 1].attachments.length === 2, 'the outbox does not hold the message with 2 attachments: ' + JSON.stringify(ob2.map((m) => m.attachments)));

  step('attachments: an empty file is refused with one clear message and nothing is sent');
  await hq.selectOption('#to-pick', 'ambassador@JKT');
  await hq.click('#to-add');
  await hq.fill('#subject', 'Should not leave');
  await hq.fill('#body', 'x');
  await hq.setInputFiles('#att-input', [join(files, 'empty.txt')]);
  await hq.waitForSelector('#att-list td.st.error', { timeout: 10000 });
  check((await hq.textContent('#att-list')).includes('the file is empty'), 'empty file: no clear message: ' + await hq.textContent('#att-list'));
  await hq.click('#compose button[type=submit]');
  await hq.waitForSelector('#compose-error:not(:empty)');
  check((await hq.textContent('#compose-error')).includes('empty.txt was refused'), 'refusal not said at send: ' + await hq.textContent('#compose-error'));
  check(await hq.isHidden('#confirm'), 'the confirmation opened with a refused attachment');
  const ob3 = await hq.evaluate(async () => (await (await fetch('/api/outbox')).json()).messages.length);
  check(ob3 === outBefore + 1, 'something was queued with a refused attachment');
  await hq.click('#att-list tr button');
  await hq.click('#to-chips .chip button');
  await hq.fill('#subject', '');
  await hq.fill('#body', '');

  step('attachments: the ambassador\'s desk lists them and saves the exact bytes');
  await amb.click('button[data-tab=inbox]');
  await amb.waitForSelector('#inbox tr.p-IMMEDIATE', { timeout: 30000 });
  await amb.click('#inbox tr.p-IMMEDIATE');
  await amb.waitForFunction(() => document.querySelectorAll('#read-atts td.st.complete').length === 2, null, { timeout: 60000 })
    .catch(async () => fail('attachments did not arrive: ' + await amb.textContent('#reader')));
  const ra = await amb.textContent('#read-atts');
  check(ra.includes('note-verbale-12.pdf') && ra.includes('application/pdf') && ra.includes('annex.txt') && ra.includes('text/plain') && ra.includes('complete'),
    'read view lacks name, type or state: ' + ra);
  const [dl1] = await Promise.all([amb.waitForEvent('download'), amb.click('#read-atts tr[data-n="1"] a.save')]);
  check(dl1.suggestedFilename() === 'note-verbale-12.pdf', 'saved under another name: ' + dl1.suggestedFilename());
  check(readFileSync(await dl1.path()).equals(pdf), 'the saved PDF differs from the original');
  const [dl2] = await Promise.all([amb.waitForEvent('download'), amb.click('#read-atts tr[data-n="2"] a.save')]);
  check(readFileSync(await dl2.path()).equals(annex), 'the saved annex differs from the original');
  await amb.waitForSelector('#read-atts .saved-note');
  const hdr = await amb.evaluate(async () => {
    const r = await fetch(document.querySelector('#read-atts tr[data-n="1"] a.save').href);
    return { cd: r.headers.get('content-disposition'), ct: r.headers.get('content-type'), nos: r.headers.get('x-content-type-options'), n: (await r.arrayBuffer()).byteLength };
  });
  check(/^attachment; filename="note-verbale-12.pdf"/.test(hdr.cd || '') && hdr.ct === 'application/pdf' && hdr.nos === 'nosniff' && hdr.n === pdf.length,
    'download headers: ' + JSON.stringify(hdr));
  const bad = await amb.evaluate(async () => [(await fetch('/api/attachment?id=zz&n=1')).status,
    (await fetch(document.querySelector('#read-atts tr[data-n="1"] a.save').href.replace('&n=1', '&n=9'))).status]);
  check(bad[0] === 400 && bad[1] === 404, 'bad attachment requests: ' + bad);
  await shot(amb, 'attach-read.png');
  await hq.click('button[data-tab=outbox]');
  await hq.waitForFunction(() => /Attachments \(2\):.*uploaded.*uploaded/.test(document.querySelector('#outbox .card')?.textContent || ''), null, { timeout: 30000 })
    .catch(async () => fail('outbox does not show the uploads: ' + await hq.textContent('#outbox .card')));

  step('attachments: a sender-chosen name with HTML is shown inert');
  await amb.click('#inbox tr[data-id] >> text=Annex with a strange name');
  // the pane still shows the message opened before until this one is read
  await amb.waitForFunction(() => (document.querySelector('#reader h2') || {}).textContent === 'Annex with a strange name'
    && document.querySelector('#read-atts td.name'), null, { timeout: 10000 });
  const evil = await amb.textContent('#read-atts td.name');
  check(evil.includes('<img src=x onerror=window.pwned=2>'), 'the HTML name is not shown as text: ' + evil);
  check(await amb.evaluate(() => window.pwned === undefined && document.querySelectorAll('#reader img').length === 0), 'the attachment name ran as HTML');
  await amb.waitForSelector('#read-atts td.st.complete', { timeout: 60000 }).catch(() => fail('the strange attachment did not arrive'));
  const ecd = await amb.evaluate(async () => (await fetch(document.querySelector('#read-atts a.save').href)).headers.get('content-disposition'));
  check(/^attachment; filename="[A-Za-z0-9 ._()-]+"; filename\*=UTF-8''[A-Za-z0-9!#$&+.^_`|~%-]+$/.test(ecd || ''), 'unsafe Content-Disposition: ' + ecd);
  rmSync(files, { recursive: true, force: true });

  step('the consul\'s desk locks after 4 s idle and unlocks with the passphrase');
  const con = await openDesk(CON_URL, 'con');
  await con.waitForSelector('#lockscreen:not([hidden])', { timeout: 20000 });
  const st = await con.evaluate(async () => (await fetch('/api/inbox')).status);
  check(st === 423, 'a locked desk served the inbox: ' + st);
  await con.fill('#passphrase', 'not the passphrase');
  await con.click('#unlock button[type=submit]');
  await con.waitForSelector('#unlock-error:not(:empty)');
  check((await con.textContent('#unlock-error')).includes('Wrong passphrase'), 'wrong passphrase not said');
  await con.fill('#passphrase', 'device passphrase 1');
  await con.click('#unlock button[type=submit]');
  await con.waitForSelector('#lockscreen', { state: 'hidden', timeout: 15000 });
  await con.waitForSelector('#me b', { timeout: 10000 });
  check((await con.textContent('#me')).includes('Dewi Lestari'), 'unlocked desk does not show its owner');
  // idle again: the desk locks by itself and tells the open page
  await con.waitForSelector('#lockscreen:not([hidden])', { timeout: 20000 });
} catch (e) {
  fail('exception: ' + (e && e.stack || e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
check(outside.length === 0, 'requests left 127.0.0.1: ' + outside.join(', '));
if (cspViolations.length) console.log('CSP refused (expected, the injected inline script): ' + cspViolations.length);
if (failures) { console.error(failures + ' failure(s)'); process.exit(1); }
console.log('desk browser test: all checks passed');
