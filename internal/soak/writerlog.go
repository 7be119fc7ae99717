package soak

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem/internal/jepsen"
)

// A writer's log is one text file per incarnation (w2.3.log), a record a
// line:
//
//	ack VALUE ID                  an acknowledged insert (Save returned nil)
//	op KIND START TOOK ok         an operation: kind, start (unix ns), duration (ns)
//	op KIND START TOOK err TEXT   one that failed, with its error
//	bad AT TEXT                   a read through the cluster whose accounts were wrong
//
// ack and bad lines are on disk (fsync) before the writer goes on; op
// lines are written every 100 ms and with them (they only feed the
// availability figures).
type writerLog struct {
	f *os.File

	mu       sync.Mutex
	buf      []byte
	queued   uint64 // lines appended
	synced   uint64 // lines on disk
	flushing bool
	err      error
	cond     *sync.Cond
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	closeErr error
}

func openWriterLog(path string) (*writerLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &writerLog{f: f, stop: make(chan struct{}), done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go func() {
		defer close(l.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.append("", false) // write what is buffered, without fsync
			}
		}
	}()
	return l, nil
}

// Ack records an acknowledged insert and returns once it is on disk.
func (l *writerLog) Ack(it jepsen.UniqueItem) error {
	return l.append(fmt.Sprintf("ack %s %d\n", it.Val, it.ID), true)
}

// Op records an operation; a read whose accounts were wrong is also
// recorded as a violation, on disk before Op returns.
func (l *writerLog) Op(op jepsen.Op) {
	line := fmt.Sprintf("op %s %d %d ok\n", op.Kind, op.Start.UnixNano(), op.Took.Nanoseconds())
	if op.Detail != "" {
		// After "ok": the reader ignores what follows it.
		line = fmt.Sprintf("op %s %d %d ok %s\n", op.Kind, op.Start.UnixNano(), op.Took.Nanoseconds(), op.Detail)
	}
	if op.Err != nil {
		line = fmt.Sprintf("op %s %d %d err %s\n", op.Kind, op.Start.UnixNano(), op.Took.Nanoseconds(), oneLine(op.Err.Error()))
	}
	if op.Problem == "" {
		l.append(line, false)
		return
	}
	l.append(line+fmt.Sprintf("bad %d %s\n", time.Now().UnixNano(), oneLine(op.Problem)), true)
}

// append queues line and, with sync, returns once it is on disk: the first
// caller to find no flush under way writes and fsyncs everything queued
// (its own line and those of the callers waiting behind it).
func (l *writerLog) append(line string, sync bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if line != "" {
		l.buf = append(l.buf, line...)
		l.queued++
	}
	mine := l.queued
	if !sync {
		if !l.flushing && len(l.buf) > 0 {
			_, err := l.f.Write(l.buf)
			l.buf = l.buf[:0]
			l.err = errors.Join(l.err, err)
		}
		return l.err
	}
	for l.synced < mine && l.err == nil {
		if l.flushing {
			l.cond.Wait()
			continue
		}
		l.flushing = true
		buf, upto := l.buf, l.queued
		l.buf = nil
		l.mu.Unlock()
		_, err := l.f.Write(buf)
		if err == nil {
			err = l.f.Sync()
		}
		l.mu.Lock()
		l.flushing = false
		l.err = errors.Join(l.err, err)
		l.synced = upto
		l.cond.Broadcast()
	}
	return l.err
}

// Close writes and syncs what is left and closes the file. Calls after
// the first return its result.
func (l *writerLog) Close() error {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		err := l.append("", true)
		l.closeErr = errors.Join(err, l.f.Close())
	})
	return l.closeErr
}

func oneLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r", " "), "\n", " | ")
}

// opRecord is one operation of a writer, read back from its log.
type opRecord struct {
	kind       string
	start, end time.Time
	err        string // "" when acknowledged
}

func (o opRecord) write() bool { return o.kind != jepsen.OpRead }

// history is what every writer of a run logged.
type history struct {
	acked     map[string]int64 // value to the id acknowledged
	ops       []opRecord
	bad       []string
	transfers int // acknowledged
	// dupAcks lists values acknowledged twice (a value is written once).
	dupAcks []string
}

// readLogs reads every writer log in dir. A line cut short by a SIGKILL is
// skipped.
func readLogs(dir string) (*history, error) {
	h := &history{acked: map[string]int64{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			h.parse(sc.Text(), filepath.Base(file))
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
	}
	return h, nil
}

func (h *history) parse(line, file string) {
	f := strings.SplitN(line, " ", 6)
	switch {
	case f[0] == "ack" && len(f) == 3:
		id, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return
		}
		if old, ok := h.acked[f[1]]; ok && old != id {
			h.dupAcks = append(h.dupAcks, fmt.Sprintf("%s acknowledged with ids %d and %d", f[1], old, id))
			return
		}
		h.acked[f[1]] = id
	case f[0] == "op" && len(f) >= 5:
		start, err1 := strconv.ParseInt(f[2], 10, 64)
		took, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || (f[4] != "ok" && f[4] != "err") {
			return
		}
		o := opRecord{kind: f[1], start: time.Unix(0, start), end: time.Unix(0, start+took)}
		if f[4] == "err" {
			o.err = "error"
			if len(f) == 6 {
				o.err = f[5]
			}
		} else if o.kind == jepsen.OpTransfer {
			h.transfers++
		}
		h.ops = append(h.ops, o)
	case f[0] == "bad" && len(f) >= 3:
		at, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return
		}
		h.bad = append(h.bad, fmt.Sprintf("%s at %s: %s", strings.TrimSuffix(file, ".log"),
			time.Unix(0, at).Format("15:04:05.000"), strings.Join(f[2:], " ")))
	}
}
