package witness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemdb/tandem/arbiter"
)

func view(gen int64, primary string, excluded ...string) arbiter.View {
	return arbiter.View{Generation: gen, Primary: primary, Excluded: excluded, Ranking: []string{"foo", "bar"}}
}

func TestWitnessSwapsOnlyFromTheStoredGeneration(t *testing.T) {
	ctx := context.Background()
	w := New(filepath.Join(t.TempDir(), "tandem.witness"))
	if _, ok, err := w.Load(ctx); ok || err != nil {
		t.Fatalf("Load of a new witness: ok %v, err %v; want nothing stored", ok, err)
	}
	if _, swapped, err := w.Swap(ctx, 1, view(2, "foo")); swapped || err != nil {
		t.Fatalf("Swap from 1 with nothing stored: swapped %v, err %v", swapped, err)
	}
	cur, swapped, err := w.Swap(ctx, 0, view(1, "foo"))
	if !swapped || err != nil || !cur.Equal(view(1, "foo")) {
		t.Fatalf("first Swap: %v %v %v", cur, swapped, err)
	}
	cur, swapped, err = w.Swap(ctx, 0, view(1, "bar"))
	if swapped || err != nil || !cur.Equal(view(1, "foo")) {
		t.Fatalf("second Swap from 0: got %v swapped %v err %v, want the first view back", cur, swapped, err)
	}
	if _, _, err := w.Swap(ctx, 1, view(1, "bar")); err == nil {
		t.Fatal("Swap that does not raise the generation: no error")
	}
	cur, swapped, err = w.Swap(ctx, 1, view(2, "foo", "bar"))
	if !swapped || err != nil {
		t.Fatalf("Swap 1 to 2: %v %v %v", cur, swapped, err)
	}
	got, ok, err := New(w.path).Load(ctx)
	if !ok || err != nil || !got.Equal(view(2, "foo", "bar")) {
		t.Fatalf("Load through another Witness: %v %v %v", got, ok, err)
	}
}

// Many swappers from one generation: exactly one wins, and every one is
// told the winner's view.
func TestWitnessConcurrentSwapsHaveOneWinner(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tandem.witness")
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	seen := map[string]bool{}
	for _, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cur, swapped, err := New(path).Swap(ctx, 0, view(1, n))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if swapped {
				wins++
			}
			seen[cur.Primary] = true
		}()
	}
	wg.Wait()
	if wins != 1 || len(seen) != 1 {
		t.Fatalf("%d swaps won, %d different views returned; want 1 and 1", wins, len(seen))
	}
}

func TestWitnessLockWaitIsBoundedAndSaysUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tandem.witness")
	holder := New(path)
	release := make(chan struct{})
	held := make(chan struct{})
	go holder.locked(context.Background(), true, func() error { close(held); <-release; return nil })
	<-held
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := New(path).Load(ctx); !errors.Is(err, arbiter.ErrUnavailable) {
		t.Fatalf("Load while another holds the lock: %v, want ErrUnavailable", err)
	}
}

func TestWitnessDamagedFileIsAnErrorNamingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tandem.witness")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := New(path).Load(context.Background())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load of a damaged witness: %v", err)
	}
}

func TestWitnessOptions(t *testing.T) {
	dir := t.TempDir()
	open, ok := arbiter.Lookup("witness")
	if !ok {
		t.Fatal("witness is not registered")
	}
	a, err := open(arbiter.Options{Kind: "witness", Dir: dir})
	if err != nil || a.Describe() != "witness "+filepath.Join(dir, "tandem.witness") {
		t.Fatalf("default path: %v, %v", a, err)
	}
	for _, tc := range []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"path": 3}, "arbiter.path"},
		{map[string]any{"path": "nosuchdir/w"}, "directory does not exist"},
		{map[string]any{"endpoints": "x"}, "arbiter.endpoints: unknown field"},
	} {
		if _, err := open(arbiter.Options{Kind: "witness", Fields: tc.fields, Dir: dir}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.fields, err, tc.want)
		}
	}
}
