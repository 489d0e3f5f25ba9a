# Go's toolchain at work: the program in go/ compiled and linked by `go build` (the
# go command runs the compiler and linker as child processes through os/exec; the
# linker fallocates its output and writes it through a shared mapping), then run.
set -e
export HOME=$(mktemp -d) GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOCACHE="$HOME/cache" GOPATH="$HOME/gopath"
cp -r "$1/go" "$HOME/src"
cd "$HOME/src"
go build -o "$HOME/prog" .
"$HOME/prog"
cd /; rm -rf "$HOME"
