# Redis: redis-server listening on a unix socket only, driven by redis-cli: strings,
# counters, lists, hashes, sets, sorted sets, a key expiring, a Lua script, 2000
# pipelined SETs, MULTI/EXEC, a subscriber receiving a PUBLISH, redis-benchmark,
# BGSAVE (the server forks a child that writes the RDB), a reload from it, and the
# append-only file rewritten in the background (another fork) and replayed by a
# second server.
set -e
d=$(mktemp -d); cd "$d"
start() {
    redis-server --port 0 --unixsocket "$d/r.sock" --unixsocketperm 700 --dir "$d" \
        --save '' --daemonize no --logfile "$d/log" "$@" &
    pid=$!
    for i in $(seq 500); do c ping > /dev/null 2>&1 && break; sleep 0.02; done
}
c() { redis-cli -s "$d/r.sock" "$@"; }
start --appendonly no
c ping
c set greeting "hello redis"
c get greeting
c incrby counter 41; c incr counter
c rpush l a b c d; c lrange l 0 -1
c hset h f1 v1 f2 v2 > /dev/null; c hgetall h | paste -sd' '
c sadd s x y z > /dev/null; c smembers s | sort | paste -sd' '
c zadd z 3 three 1 one 2 two > /dev/null; c zrange z 0 -1 withscores | paste -sd' '
c set temp v px 100 > /dev/null; sleep 0.3; c exists temp
c eval "return redis.call('incr', KEYS[1]) * 2" 1 counter
seq 1 2000 | sed 's/.*/SET key:& value-&/' | c --pipe | tail -1
c dbsize
printf 'MULTI\nINCR counter\nINCR counter\nEXEC\n' | c
c subscribe ch > sub.out & sp=$!
for i in $(seq 500); do [ "$(c pubsub numsub ch | tail -1)" = 1 ] && break; sleep 0.02; done
c publish ch "a message"
for i in $(seq 500); do [ "$(wc -l < sub.out)" -ge 6 ] && break; sleep 0.02; done
kill $sp; wait $sp 2> /dev/null || true; cat sub.out
redis-benchmark -s "$d/r.sock" -n 1000 -c 2 -t set,get,lpush -q --csv | cut -d, -f1
c bgsave
for i in $(seq 500); do c info persistence | grep -q 'rdb_bgsave_in_progress:0' && [ -e dump.rdb ] && break; sleep 0.02; done
c info persistence | grep -E '^rdb_last_bgsave_status' | tr -d '\r'
c debug reload > /dev/null && c dbsize
c config set appendonly yes > /dev/null
for i in $(seq 500); do c info persistence | grep -qE 'aof_rewrite_in_progress:0' && c info persistence | grep -q 'aof_rewrite_scheduled:0' && break; sleep 0.02; done
c set after-aof 1
c info persistence | grep -E '^aof_(enabled|last_bgrewrite_status)' | tr -d '\r'
c shutdown 2> /dev/null || true
wait $pid; echo "server exit $?"
start --appendonly yes
c dbsize
c get after-aof
c shutdown nosave 2> /dev/null || true
wait $pid; echo "server exit $?"
ls | sort
cd /; rm -rf "$d"
