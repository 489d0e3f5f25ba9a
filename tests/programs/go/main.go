// A Go program: goroutines over channels and a WaitGroup, timers and tickers,
// os/exec with pipes, files, a TCP echo over loopback and a signal to itself.
package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	runtime.GOMAXPROCS(4)
	// Goroutines: a worker pool summing squares.
	jobs := make(chan int)
	results := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- j * j
			}
		}()
	}
	go func() {
		for i := 1; i <= 1000; i++ {
			jobs <- i
		}
		close(jobs)
	}()
	go func() { wg.Wait(); close(results) }()
	sum := 0
	for r := range results {
		sum += r
	}
	fmt.Println("goroutines", sum)

	// Many goroutines blocked in sleeps at once, and a mutex-protected counter.
	var n int64
	var mu sync.Mutex
	m := map[int]bool{}
	var wg2 sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg2.Add(1)
		go func(i int) {
			defer wg2.Done()
			time.Sleep(time.Duration(i%10) * time.Millisecond)
			atomic.AddInt64(&n, 1)
			mu.Lock()
			m[i%7] = true
			mu.Unlock()
		}(i)
	}
	wg2.Wait()
	fmt.Println("sleepers", n, len(m))

	// Timers: a ticker, a timer, a stopped timer, a context deadline.
	tick := time.NewTicker(10 * time.Millisecond)
	ticks := 0
	stopped := time.AfterFunc(time.Hour, func() { fmt.Println("never") })
	fmt.Println("stop", stopped.Stop())
	deadline := time.After(55 * time.Millisecond)
loop:
	for {
		select {
		case <-tick.C:
			ticks++
		case <-deadline:
			break loop
		}
	}
	tick.Stop()
	fmt.Println("ticker", ticks >= 3 && ticks <= 6)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	<-ctx.Done()
	el := time.Since(start)
	fmt.Println("context", ctx.Err(), el >= 20*time.Millisecond)

	// os/exec: output, stdin pipe, exit status, a missing program.
	out, err := exec.Command("sh", "-c", "echo $((6*7)); echo err >&2").Output()
	fmt.Printf("exec %q %v\n", out, err)
	cmd := exec.Command("tr", "a-z", "A-Z")
	cmd.Stdin = strings.NewReader("piped through tr\n")
	out, _ = cmd.CombinedOutput()
	fmt.Printf("stdin %q\n", out)
	err = exec.Command("sh", "-c", "exit 3").Run()
	if ee, ok := err.(*exec.ExitError); ok {
		fmt.Println("exit", ee.ExitCode())
	}
	_, err = exec.Command("/nonexistent/prog").Output()
	fmt.Println("missing", err != nil)
	c := exec.Command("sleep", "10")
	c.Start()
	time.AfterFunc(50*time.Millisecond, func() { c.Process.Signal(syscall.SIGTERM) })
	err = c.Wait()
	fmt.Println("killed", err)

	// Files.
	d, _ := os.MkdirTemp("", "goprog")
	p := filepath.Join(d, "f")
	os.WriteFile(p, []byte("line1\nline2\n"), 0o640)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("line3\n")
	f.Close()
	f, _ = os.Open(p)
	sc := bufio.NewScanner(f)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	f.Close()
	st, _ := os.Stat(p)
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	os.Symlink("f", filepath.Join(d, "l"))
	ents, _ := os.ReadDir(d)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	fmt.Println("files", lines, st.Size(), st.Mode(), names)
	os.RemoveAll(d)

	// TCP echo over loopback, a goroutine per connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen", err)
		return
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				l, _ := bufio.NewReader(c).ReadString('\n')
				c.Write([]byte(strings.ToUpper(l)))
			}(conn)
		}
	}()
	var got []string
	var gm sync.Mutex
	var wg3 sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg3.Add(1)
		go func(i int) {
			defer wg3.Done()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(conn, "conn %d\n", i)
			l, _ := bufio.NewReader(conn).ReadString('\n')
			gm.Lock()
			got = append(got, strings.TrimSpace(l))
			gm.Unlock()
		}(i)
	}
	wg3.Wait()
	ln.Close()
	sort.Strings(got)
	fmt.Println("tcp", got)

	// A signal to itself, through os/signal.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case s := <-sigs:
		fmt.Println("signal", s)
	case <-time.After(5 * time.Second):
		fmt.Println("signal lost")
	}
}
