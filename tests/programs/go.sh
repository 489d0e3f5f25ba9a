# Go: the program in go/ (goroutines over channels, 200 sleeping goroutines, tickers,
# timers and a context deadline, os/exec with pipes, exit codes and a SIGTERM, files,
# a TCP echo with a goroutine per connection, os/signal), first as the test built it
# natively ($1/goprog), then compiled and linked again here by the Go toolchain (the
# compiler's worker processes, the linker's fallocate and shared mapping of its
# output) and run.
set -e
export HOME=$(mktemp -d) GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOCACHE="$HOME/cache" GOPATH="$HOME/gopath"
"$1/goprog"
echo "--- go build"
cp -r "$1/go" "$HOME/src"
cd "$HOME/src"
go build -o "$HOME/prog" .
"$HOME/prog"
cd /; rm -rf "$HOME"
