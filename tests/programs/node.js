// Node.js: timers and the event loop's phases, fs (sync, promises, streams) and
// fs.watch (inotify), child_process (execSync, spawn with pipes, execFile, fork with
// an IPC channel, a SIGKILL), worker_threads (messages and Atomics on a
// SharedArrayBuffer), HTTP over a unix socket, TCP and UDP on loopback, crypto and
// zlib. Every line printed is deterministic.
const fs = require('fs'), os = require('os'), path = require('path');
const cp = require('child_process');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
if (!isMainThread) {
  let s = 0;
  for (let i = 0; i <= workerData; i++) s += i;
  parentPort.postMessage(s);
  return;
}
if (process.env.NODE_FORKED) {
  process.on('message', m => {
    process.send({ echo: m.n * 2 }, () => { if (m.n === 3) process.exit(5); });
  });
  return;
}
const sleep = ms => new Promise(r => setTimeout(r, ms));
(async () => {
  // Timers: nextTick before everything, timeouts in due order, an interval stopped
  // after three runs. (setImmediate against a 10 ms timeout depends on how long the
  // loop took to start: only that it ran is printed.)
  const order = [];
  await new Promise(r => {
    setTimeout(() => order.push('t30'), 30);
    setTimeout(() => order.push('t10'), 10);
    setImmediate(() => order.push('immediate'));
    process.nextTick(() => order.push('tick'));
    let n = 0;
    const iv = setInterval(() => {
      order.push('iv' + (++n));
      if (n === 3) { clearInterval(iv); setTimeout(r, 40); }
    }, 15);
  });
  console.log('timers', order[0], order.filter(x => x === 't10' || x === 't30').join(','),
    order.filter(x => x.startsWith('iv')).length, order.includes('immediate'));

  // Files.
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'node-'));
  fs.writeFileSync(path.join(d, 'a.txt'), 'hello node\n');
  await fs.promises.appendFile(path.join(d, 'a.txt'), 'more\n');
  fs.mkdirSync(path.join(d, 'sub/deep'), { recursive: true });
  fs.renameSync(path.join(d, 'a.txt'), path.join(d, 'sub/b.txt'));
  console.log('fs', fs.readFileSync(path.join(d, 'sub/b.txt'), 'utf8').split('\n').join('|'),
    fs.readdirSync(path.join(d, 'sub')).sort().join(','), fs.statSync(path.join(d, 'sub/b.txt')).size);
  let bytes = 0;
  for await (const c of fs.createReadStream(path.join(d, 'sub/b.txt'))) bytes += c.length;
  console.log('stream', bytes);
  // fs.watch: a file created in a watched directory.
  const events = [];
  const w = fs.watch(d, (ev, name) => events.push(ev + ':' + name));
  await sleep(50);
  fs.writeFileSync(path.join(d, 'x'), '1');
  for (let i = 0; i < 100 && events.length < 2; i++) await sleep(20);
  await sleep(50);
  w.close();
  console.log('watch', [...new Set(events)].sort().join(','));
  fs.rmSync(d, { recursive: true });
  console.log('exists after rm', fs.existsSync(d));

  // Child processes.
  console.log('execSync', cp.execSync('echo from-sh | tr a-z A-Z').toString().trim());
  const child = cp.spawn('/bin/sh', ['-c', 'read x; echo got:$x; exit 7']);
  let out = '';
  child.stdout.on('data', b => out += b);
  child.stdin.end('piped\n');
  const status = await new Promise(r => child.on('close', r));
  console.log('spawn', out.trim(), status);
  const code = await new Promise(r => cp.execFile('/bin/ls', ['/nonexistent'], e => r(e.code)));
  console.log('execFile exit', code);
  const f = cp.fork(__filename, [], { env: { ...process.env, NODE_FORKED: '1' } });
  const echoes = [];
  const exited = new Promise(r => f.on('exit', r));
  const all = new Promise(r => f.on('message', m => { echoes.push(m.echo); if (echoes.length === 3) r(); }));
  for (const n of [1, 2, 3]) f.send({ n });
  await all;
  console.log('fork ipc', echoes.join(','), await exited);
  const sl = cp.spawn('sleep', ['10']);
  setTimeout(() => sl.kill('SIGKILL'), 50);
  console.log('killed by', await new Promise(r => sl.on('exit', (c, s) => r(s))));

  // Worker threads.
  const results = await Promise.all([1000, 2000, 3000, 4000].map(n => new Promise((res, rej) => {
    const wk = new Worker(__filename, { workerData: n });
    wk.on('message', res);
    wk.on('error', rej);
  })));
  console.log('workers', results.join(','));
  const sab = new SharedArrayBuffer(4);
  const ia = new Int32Array(sab);
  const w2 = new Worker('const {workerData: s} = require("worker_threads"); const a = new Int32Array(s);' +
    'Atomics.store(a, 0, 42); Atomics.notify(a, 0);', { eval: true, workerData: sab });
  Atomics.wait(ia, 0, 0, 10000);
  console.log('atomics', Atomics.load(ia, 0));
  await new Promise(r => w2.on('exit', r));

  // Sockets: HTTP over a unix socket, TCP echo, UDP.
  const http = require('http'), net = require('net'), dgram = require('dgram');
  const sock = path.join(os.tmpdir(), 'node-' + process.pid + '.sock');
  const srv = http.createServer((req, res) => res.end('http ' + req.method + ' ' + req.url));
  await new Promise(r => srv.listen(sock, r));
  const body = await new Promise((res, rej) => http.get({ socketPath: sock, path: '/x?y=1' }, r => {
    let b = '';
    r.on('data', c => b += c);
    r.on('end', () => res(r.statusCode + ' ' + b));
  }).on('error', rej));
  console.log('http over unix', body);
  srv.close();
  fs.rmSync(sock, { force: true });
  const tcp = net.createServer(s => s.pipe(s));
  await new Promise(r => tcp.listen(0, '127.0.0.1', r));
  const cl = net.connect(tcp.address().port, '127.0.0.1');
  cl.write('tcp echo');
  console.log('tcp', (await new Promise(r => cl.once('data', r))).toString());
  cl.end();
  tcp.close();
  const us = dgram.createSocket('udp4');
  await new Promise(r => us.bind(0, '127.0.0.1', r));
  const uc = dgram.createSocket('udp4');
  const got = new Promise(r => us.on('message', m => r(m.toString())));
  uc.send('udp hello', us.address().port, '127.0.0.1');
  console.log('udp', await got);
  us.close();
  uc.close();

  console.log('crypto', require('crypto').createHash('sha256').update('abc').digest('hex').slice(0, 16),
    require('crypto').randomBytes(16).length);
  const zlib = require('zlib');
  console.log('zlib', zlib.gunzipSync(zlib.gzipSync('x'.repeat(100000))).length);
  console.log('os', os.cpus().length > 0, os.totalmem() > 0, process.memoryUsage().rss > 0);
})();
