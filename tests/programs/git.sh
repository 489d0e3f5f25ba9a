# git: commits on two branches and a merge, a tag, moves and removals, gc --aggressive
# (a threaded repack), fsck, clone (upload-pack over pipes), grep, archive, bisect run,
# stash, worktrees, rebase --exec, and a clone over git:// from `git daemon` on
# loopback. Fixed identities and dates make every hash the same on each run.
set -e
export PATH=/usr/bin:/bin
export GIT_AUTHOR_NAME=A GIT_AUTHOR_EMAIL=a@example.com GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@example.com
export GIT_AUTHOR_DATE='2024-01-02T03:04:05Z' GIT_COMMITTER_DATE='2024-01-02T03:04:05Z'
export HOME=$(mktemp -d) GIT_CONFIG_NOSYSTEM=1
d=$(mktemp -d); cd "$d"
git init -q -b main repo; cd repo
for i in 1 2 3; do seq $((i * 100)) > f$i.txt; git add f$i.txt; git commit -q -m "commit $i"; done
git checkout -q -b side; echo side >> f1.txt; git commit -q -am "side change"
git checkout -q main; echo main >> f2.txt; git commit -q -am "main change"
git merge -q --no-edit side
git log --format='%H %s' --graph
git tag -a v1 -m "tag v1"; git describe
git mv f3.txt moved.txt; git rm -q f2.txt; git status --short
git commit -q -m "mv and rm"
git diff --stat HEAD~1 HEAD
git gc -q --aggressive; git count-objects -v | grep -E '^(count|in-pack|packs)'
git fsck --no-progress --full && echo fsck ok
git clone -q "$PWD" ../clone && git -C ../clone log --oneline | wc -l
git -C ../clone rev-parse HEAD
git grep -c 99 HEAD -- '*.txt'
git archive HEAD | tar t | sort
for i in $(seq 4 11); do echo $i > n; git add n; git commit -q -m "n$i"; done
git bisect start HEAD HEAD~7 > /dev/null
git bisect run sh -c 'test $(cat n) -lt 8' | grep "is the first bad commit"
git bisect reset > /dev/null 2>&1
echo wip >> n; git stash -q; git stash list | wc -l; git stash pop -q; git diff --stat | tail -1
git checkout -q -- n
git worktree add -q ../wt HEAD~2 && cat ../wt/n && git worktree remove ../wt
git rebase -q --exec true HEAD~3 2> /dev/null && git log --oneline | wc -l
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
git daemon --reuseaddr --base-path="$d" --export-all --listen=127.0.0.1 --port=$port --pid-file="$d/pid" "$d" &
for i in $(seq 200); do git ls-remote git://127.0.0.1:$port/repo > /dev/null 2>&1 && break; sleep 0.05; done
git clone -q git://127.0.0.1:$port/repo "$d/over-daemon" && git -C "$d/over-daemon" rev-parse HEAD
kill $(cat "$d/pid"); wait 2> /dev/null || true
cd /; rm -rf "$d" "$HOME"
