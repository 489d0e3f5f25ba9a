# PostgreSQL as an unprivileged user (it refuses root): initdb, pg_ctl start, psql
# over a unix socket (DDL, 20 000 rows, an index, a rolled-back transaction, a
# recursive CTE, JSON, PL/pgSQL, a parallel sequential scan with worker processes),
# two sessions where a row lock makes the second wait, LISTEN/NOTIFY, pgbench (four
# clients on two threads), pg_dump/pg_restore, VACUUM FULL and CHECKPOINT, then a
# fast shutdown. Server pids in NOTIFY lines are replaced by "PID".
set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
d=$(mktemp -d); cd "$d"
"$bin/initdb" -D "$d/data" -U pg -A trust -E UTF8 --locale=C --no-sync > initdb.log 2>&1 || { cat initdb.log; exit 1; }
"$bin/pg_ctl" -D "$d/data" -l "$d/pg.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$d' -c fsync=off" start > /dev/null || { cat pg.log; exit 1; }
q() { psql -h "$d" -U pg -d postgres -X -A -t -v ON_ERROR_STOP=1 "$@"; }
q -c "SELECT 1 + 1"
q <<'SQL'
CREATE TABLE t(id serial PRIMARY KEY, name text NOT NULL, v numeric);
INSERT INTO t(name, v) SELECT 'n' || (g % 13), g * 1.5 FROM generate_series(1, 20000) g;
CREATE INDEX ON t(name);
ANALYZE t;
SELECT count(*), sum(v), count(DISTINCT name) FROM t;
SELECT name, count(*) FROM t GROUP BY name ORDER BY 2 DESC, 1 LIMIT 3;
BEGIN; DELETE FROM t WHERE id % 2 = 0; ROLLBACK;
SELECT count(*) FROM t;
WITH RECURSIVE f(n, a, b) AS (SELECT 0, 0::numeric, 1::numeric UNION ALL SELECT n + 1, b, a + b FROM f WHERE n < 50) SELECT a FROM f WHERE n = 50;
SELECT json_agg(x ORDER BY x) FROM (SELECT DISTINCT name AS x FROM t WHERE name < 'n12') s;
CREATE FUNCTION fact(n int) RETURNS numeric LANGUAGE plpgsql AS $$ BEGIN IF n <= 1 THEN RETURN 1; END IF; RETURN n * fact(n - 1); END $$;
SELECT fact(25);
SQL
# A parallel scan: the workers are processes the postmaster forks, sharing memory.
q -c "SET max_parallel_workers_per_gather = 2" -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
  -c "SET min_parallel_table_scan_size = 0" -c "SELECT count(*) FROM t WHERE v > 100" \
  -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM t WHERE v > 100" |
  grep -vE '^SET$|actual rows|Rows Removed'
# Two sessions: a row lock held by the first makes the second wait for its commit.
q -c "BEGIN; SELECT 'locked' FROM t WHERE id = 1 FOR UPDATE; SELECT pg_sleep(0.3); UPDATE t SET v = -1 WHERE id = 1; COMMIT;" > s1.out &
for i in $(seq 500); do [ "$(q -c "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid'")" -ge 1 ] && break; sleep 0.02; done
q -c "UPDATE t SET v = v * 2 WHERE id = 1 RETURNING v" > s2.out
wait; cat s1.out s2.out
q -c "LISTEN ch" -c "NOTIFY ch, 'hi'" -c "SELECT 'after notify'" | sed -E 's/PID [0-9]+/PID/'
"$bin/pgbench" -h "$d" -U pg -i -s 1 -q postgres > /dev/null 2>&1
"$bin/pgbench" -h "$d" -U pg -c 4 -j 2 -t 50 postgres 2>&1 | grep -E '^number of (transactions actually processed|failed)'
"$bin/pg_dump" -h "$d" -U pg -Fc -f dump.bin postgres && "$bin/pg_restore" -l dump.bin | grep -c ' TABLE '
q -c "VACUUM FULL t" -c "CHECKPOINT"
"$bin/pg_ctl" -D "$d/data" -w -t 60 -m fast stop > /dev/null
grep -c 'database system is shut down' pg.log
cd /; rm -rf "$d"
