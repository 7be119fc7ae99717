// Package witness is an arbiter for processes that all run on one machine:
// the view lives in a small file, changed by compare-and-swap under an
// exclusive lock on a file beside it. It is the default arbiter of a cluster
// whose datasources are all SQLite files, which live on one machine anyway:
// nothing to install or start.
//
// Every process must reach the same file: a witness on a disk one machine
// cannot see is no arbiter. Across machines, use package arbiter/etcd.
package witness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tandemdb/tandem/arbiter"
)

func init() { arbiter.Register("witness", open) }

// Witness is the file-backed arbiter.
type Witness struct {
	path string // the view, as JSON; replaced whole by rename
	lock string // flock'ed: shared to read, exclusive to swap
}

// New returns the witness whose view lives at path.
func New(path string) *Witness { return &Witness{path: path, lock: path + ".lock"} }

func open(opts arbiter.Options) (arbiter.Arbiter, error) {
	path := "tandem.witness"
	for k, v := range opts.Fields {
		switch k {
		case "path":
			s, ok := v.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("arbiter.path: want a file path, got %v", v)
			}
			path = s
		default:
			return nil, fmt.Errorf("arbiter.%s: unknown field (known for a witness: path)", k)
		}
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(opts.Dir, path)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("arbiter.path: %s: its directory does not exist", path)
	}
	return New(path), nil
}

// Describe says where the view lives.
func (w *Witness) Describe() string { return "witness " + w.path }

// Close releases nothing: every call opens and closes its files.
func (w *Witness) Close() error { return nil }

// locked runs f while holding the lock file's lock (exclusive or shared).
// The wait for the lock is bounded by ctx.
func (w *Witness) locked(ctx context.Context, exclusive bool, f func() error) error {
	lf, err := os.OpenFile(w.lock, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", arbiter.ErrUnavailable, err)
	}
	defer lf.Close()
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	// flock has no timeout: poll without blocking, so ctx bounds the wait.
	for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
		err := syscall.Flock(int(lf.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: lock %s: %v", arbiter.ErrUnavailable, w.lock, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: lock %s: %v", arbiter.ErrUnavailable, w.lock, ctx.Err())
		case <-time.After(delay):
		}
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	return f()
}

// read reads the stored view; ok false when the file does not exist.
func (w *Witness) read() (v arbiter.View, ok bool, err error) {
	data, err := os.ReadFile(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		return arbiter.View{}, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("%w: %v", arbiter.ErrUnavailable, err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, false, fmt.Errorf("witness %s is damaged (%v): it holds the cluster's view; restore it or remove it and run `tandem promote`", w.path, err)
	}
	return v, true, nil
}

// Load returns the stored view.
func (w *Witness) Load(ctx context.Context) (v arbiter.View, ok bool, err error) {
	err = w.locked(ctx, false, func() error {
		v, ok, err = w.read()
		return err
	})
	return v, ok, err
}

// Swap stores next if the stored generation is prev.
func (w *Witness) Swap(ctx context.Context, prev int64, next arbiter.View) (cur arbiter.View, swapped bool, err error) {
	if next.Generation <= prev {
		return cur, false, fmt.Errorf("witness: swap from generation %d to %d: want a greater one", prev, next.Generation)
	}
	err = w.locked(ctx, true, func() error {
		old, ok, err := w.read()
		if err != nil {
			return err
		}
		if ok && old.Generation != prev || !ok && prev != 0 {
			cur = old
			return nil
		}
		if err := w.write(next); err != nil {
			return err
		}
		cur, swapped = next, true
		return nil
	})
	return cur, swapped, err
}

// write replaces the file whole: a temporary file, fsync'ed, renamed over
// it, and the directory fsync'ed, so that a crash leaves the old view or
// the new one, never a torn one.
func (w *Witness) write(v arbiter.View) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := w.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", arbiter.ErrUnavailable, err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", arbiter.ErrUnavailable, err)
	}
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
