import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
rmSync('/tmp/prof/m.db', { force: true }); rmSync('/tmp/prof/m.db-wal', { force: true });
const db = new Database('/tmp/prof/m.db');
db.pragma('page_size = ' + (process.env.PS ?? 4096)); db.pragma('journal_mode = WAL'); db.pragma('synchronous = FULL'); db.pragma('cache_size = -65536'); db.pragma('wal_autocheckpoint = 20000');
db.exec(`CREATE TABLE a (num INTEGER PRIMARY KEY, id TEXT UNIQUE, bal INTEGER);
CREATE TABLE l (seq INTEGER PRIMARY KEY, rid BLOB UNIQUE, x INTEGER, y INTEGER, z INTEGER);
CREATE TABLE p (acc INTEGER, eid INTEGER, amt INTEGER, PRIMARY KEY(acc, eid)) WITHOUT ROWID;`);
const ins = db.prepare('INSERT INTO a (id, bal) VALUES (?, 1000000)');
db.transaction(() => { for (let i = 0; i < 100000; i++) ins.run(randomBytes(32).toString('hex')); })();
const N = Number(process.env.N ?? 512), B = 100;
const upd = db.prepare('UPDATE a SET bal = bal - 1 WHERE num = ?');
const li = db.prepare('INSERT INTO l (seq, rid, x, y, z) VALUES (?, ?, 1, 2, 3)');
const pi = db.prepare('INSERT INTO p (acc, eid, amt) VALUES (?, ?, ?)');
let seq = 0, eid = 0;
function bench(name: string, f: () => void) {
  const t = performance.now();
  for (let b = 0; b < B; b++) db.transaction(() => { for (let i = 0; i < N; i++) f(); })();
  console.log(name, ((N * B) / ((performance.now() - t) / 1000)).toFixed(0), '/s');
}
bench('empty', () => {});
bench('update random', () => upd.run(1 + ((Math.random() * 100000) | 0)));
bench('log insert', () => li.run(++seq, randomBytes(16)));
bench('posting random', () => pi.run(1 + ((Math.random() * 100000) | 0), ++eid, 5));
bench('posting hot', () => pi.run(1, ++eid, 5));
bench('all3', () => { const a = 1 + ((Math.random() * 100000) | 0); upd.run(a); li.run(++seq, randomBytes(16)); pi.run(a, ++eid, 5); pi.run(2, ++eid, -5); });
