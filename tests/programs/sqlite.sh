# The sqlite3 shell: a WAL database, 10 000 rows inserted by a recursive CTE in a
# transaction, an index and its query plan, grouping in column mode, savepoints,
# a checkpoint, an integrity check and a .dump; a second writer waiting on the
# first one's lock (fcntl locks and the shared -shm mapping across processes);
# the dump loaded into a new database; VACUUM INTO and JSON output.
set -e
d=$(mktemp -d); cd "$d"
sqlite3 -bail db <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000)
INSERT INTO t(name, v) SELECT 'n' || (x % 97), x * 0.5 FROM c;
COMMIT;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v), min(name), max(name) FROM t;
.mode column
.headers on
SELECT name, count(*) AS n, round(avg(v), 2) AS a FROM t GROUP BY name ORDER BY n DESC, name LIMIT 3;
.headers off
.mode list
SAVEPOINT s1; DELETE FROM t WHERE id % 2 = 0; ROLLBACK TO s1; RELEASE s1;
SELECT count(*) FROM t;
EXPLAIN QUERY PLAN SELECT * FROM t WHERE name = 'n5';
PRAGMA wal_checkpoint(TRUNCATE);
PRAGMA integrity_check;
.output dump.sql
.dump
.output stdout
SQL
wc -l < dump.sql
# A second writer while the first holds the write lock: it waits (fcntl locks and the
# shared -shm mapping across processes), then sees the first's commit.
sqlite3 db > w1.out <<'SQL' &
BEGIN IMMEDIATE;
UPDATE t SET v = -1 WHERE id = 1;
.shell touch locked; sleep 0.5
COMMIT;
SELECT 'first committed';
SQL
while [ ! -e locked ]; do sleep 0.01; done
sqlite3 -cmd ".timeout 10000" db "UPDATE t SET v = v * 2 WHERE id = 1; SELECT 'second', v FROM t WHERE id = 1;" > w2.out
wait
cat w1.out w2.out; rm locked w1.out w2.out
sqlite3 new.db < dump.sql
sqlite3 new.db "SELECT count(*), sum(v) FROM t; PRAGMA journal_mode;"
sqlite3 db "VACUUM INTO 'copy.db';" && sqlite3 -json copy.db "SELECT * FROM t WHERE id < 3"
ls | sort
cd /; rm -rf "$d"
