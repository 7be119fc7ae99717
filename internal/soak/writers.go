package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// writerProc is one writer of a run: a sequence of processes
// (incarnations), one running at a time, each the soak binary re-executed
// as `soak writer`.
type writerProc struct {
	r    *run
	name string // w1, w2, ...

	mu       sync.Mutex
	inc      int       // incarnations started
	cmd      *exec.Cmd // the current one; nil before the first
	exited   chan struct{}
	expected bool // the soak killed or stopped it on purpose
}

// incName names an incarnation's log files and values: w2.3.
func (w *writerProc) incName(inc int) string { return fmt.Sprintf("%s.%d", w.name, inc) }

// start starts a new incarnation, unless one runs; ready (when not nil) is
// closed once it has opened the cluster and migrated.
func (w *writerProc) start(ready chan struct{}) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.startLocked(ready)
}

// startLocked is start with w.mu held.
func (w *writerProc) startLocked(ready chan struct{}) error {
	if w.runningLocked() {
		return fmt.Errorf("%s is running", w.name)
	}
	w.inc++
	name := w.incName(w.inc)
	r := w.r
	cmd := exec.Command(r.opts.Exe, "writer",
		"-config", r.cfgPath, "-log", r.logDir, "-name", name,
		"-goroutines", strconv.Itoa(r.opts.Goroutines),
		"-accounts", strconv.Itoa(accounts), "-balance", strconv.FormatInt(balance, 10))
	stderr, err := os.Create(filepath.Join(r.logDir, name+".stderr"))
	if err != nil {
		return err
	}
	defer stderr.Close() // the child holds its own
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	// Its own process group: a ^C on the terminal reaches the soak, which
	// stops the writers itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start writer %s: %w", name, err)
	}
	exited := make(chan struct{})
	w.cmd, w.exited, w.expected = cmd, exited, false
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" && ready != nil {
				close(ready)
				ready = nil
			}
		}
		err := cmd.Wait()
		w.mu.Lock()
		expected := w.expected
		w.mu.Unlock()
		close(exited)
		if !expected {
			r.brokenf("writer %s exited on its own (%v): %s", name, err, tailFile(stderr.Name(), 5))
		}
	}()
	return nil
}

// waitReady waits until ready is closed, failing when the writer exits
// first or after a minute.
func (w *writerProc) waitReady(ctx context.Context, ready <-chan struct{}) error {
	w.mu.Lock()
	exited := w.exited
	w.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("writer %s exited before it was ready", w.name)
	case <-time.After(time.Minute):
		return fmt.Errorf("writer %s not ready within a minute", w.name)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *writerProc) runningLocked() bool {
	if w.cmd == nil {
		return false
	}
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the running incarnation and waits for it; it returns the
// incarnation killed, or errSkipped when none runs.
func (w *writerProc) kill() (int, error) {
	w.mu.Lock()
	if !w.runningLocked() {
		w.mu.Unlock()
		return 0, errSkipped
	}
	w.expected = true
	inc, exited := w.inc, w.exited
	err := w.cmd.Process.Signal(syscall.SIGKILL)
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	<-exited
	return inc, nil
}

// armCrash sends sig (SIGUSR1 or SIGUSR2: see runWriter) to the running
// incarnation, which kills itself between the commits of its next write;
// it returns the incarnation, or errSkipped when none runs.
func (w *writerProc) armCrash(sig syscall.Signal) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.runningLocked() {
		return 0, errSkipped
	}
	w.expected = true
	return w.inc, w.cmd.Process.Signal(sig)
}

// restartIf starts a new incarnation if inc is still the latest and is
// not running (nothing restarted it meanwhile). The check and the start
// are one step: two faults on one incarnation (a kill-writer and a
// crash-commit) may heal at once, and only one may start its successor
// (before, the other then failed with "w3 is running": seed 8113).
func (w *writerProc) restartIf(inc int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inc != inc || w.runningLocked() {
		return nil
	}
	return w.startLocked(nil)
}

// restart kills the running incarnation, if any, and starts a new one.
func (w *writerProc) restart() error {
	if _, err := w.kill(); err != nil && !errors.Is(err, errSkipped) {
		return err
	}
	return w.start(nil)
}

// signal sends sig to the running incarnation and returns its pid.
func (w *writerProc) signal(sig syscall.Signal) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.runningLocked() {
		return 0, errSkipped
	}
	return w.cmd.Process.Pid, w.cmd.Process.Signal(sig)
}

// running reports whether an incarnation runs.
func (w *writerProc) running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runningLocked()
}

// term asks the running incarnation to stop (SIGTERM: it stops its
// workloads, closes the cluster and exits) and waits up to wait, then
// kills it. It reports a writer that had to be killed.
func (w *writerProc) term(wait time.Duration) error {
	w.mu.Lock()
	if !w.runningLocked() {
		w.mu.Unlock()
		return nil
	}
	w.expected = true
	cmd, exited, name := w.cmd, w.exited, w.incName(w.inc)
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	w.mu.Unlock()
	select {
	case <-exited:
		if cmd.ProcessState != nil && !cmd.ProcessState.Success() {
			return fmt.Errorf("writer %s exited with %v after SIGTERM: %s", name, cmd.ProcessState, tailFile(filepath.Join(w.r.logDir, name+".stderr"), 5))
		}
		return nil
	case <-time.After(wait):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("writer %s did not stop within %v of SIGTERM: killed it; its stderr ends: %s", name, wait, tailFile(filepath.Join(w.r.logDir, name+".stderr"), 5))
	}
}

// tailFile returns the last n lines of a file, on one line.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
