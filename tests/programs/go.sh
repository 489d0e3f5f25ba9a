# Go: the program in go/ (goroutines over channels, 200 sleeping goroutines, tickers,
# timers and a context deadline, os/exec with pipes, exit codes and a SIGTERM, files,
# a TCP echo with a goroutine per connection, os/signal), as the test built it
# natively ($1/goprog).
set -e
"$1/goprog"
