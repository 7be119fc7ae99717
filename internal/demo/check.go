package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Check tells the demo's story through its HTTP API at baseURL, as a
// person at the dashboard would, and prints each step to w: books are
// added, eight clients update one book at once, bar is taken offline and
// books are added without it, bar comes back and catches up, and verify
// finds every datasource identical. It returns an error when any step
// fails or verify finds a difference. tandem demo --check runs it.
func Check(ctx context.Context, w io.Writer, s *Server, baseURL string) error {
	call := func(method, path string, body any, out any) error {
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, baseURL+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+s.Token())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(data))
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	}
	var author, publisher struct{ ID int64 }
	if err := call("POST", "/api/authors", map[string]any{"first_name": "Frank", "last_name": "Herbert"}, &author); err != nil {
		return err
	}
	if err := call("POST", "/api/publishers", map[string]any{"name": "Chilton " + randomSuffix()}, &publisher); err != nil {
		return err
	}
	addBook := func(title string) (int64, error) {
		var b struct{ ID int64 }
		err := call("POST", "/api/books", map[string]any{"title": title, "isbn": randomSuffix(), "price": 9.99,
			"author_id": author.ID, "publisher_id": publisher.ID}, &b)
		return b.ID, err
	}
	first, err := addBook("Dune")
	if err != nil {
		return err
	}
	for _, t := range []string{"Dune Messiah", "Children of Dune"} {
		if _, err := addBook(t); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "added 3 books through POST /api/books\n")

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			errs[i] = call("PUT", fmt.Sprintf("/api/books/%d", first), map[string]any{"stock": i + 1}, nil)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "8 clients updated book %d at once: every datasource applies them in the same order\n", first)

	if err := call("POST", "/api/admin/nodes/bar/offline", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(w, "bar taken offline (its mount is lost: its file cannot be opened)\n")
	// tandem finds it out at its next check: wait for the view to leave
	// bar out of the writes.
	for left := false; !left; {
		st, err := s.c.Status(ctx)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			left = left || n.Name == "bar" && n.LeftOut
		}
		if !left {
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for bar to be left out: %w", ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	for _, t := range []string{"Dune (while bar is offline)", "Heretics of Dune (while bar is offline)"} {
		if _, err := addBook(t); err != nil {
			return err
		}
	}
	st, err := s.c.Status(ctx)
	if err != nil {
		return err
	}
	for _, n := range st.Nodes {
		if n.Name == "bar" {
			fmt.Fprintf(w, "added 2 books without bar: bar is %s and misses %d keys\n", n.State, n.Behind)
		}
	}
	st.WriteTable(w)
	if err := call("POST", "/api/admin/nodes/bar/online", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(w, "bar is back: it catches up\n")
	for {
		st, err := s.c.Status(ctx)
		if err != nil {
			return err
		}
		if st.Healthy() {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for bar to catch up: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	var v verifyResult
	if err := call("POST", "/api/verify", nil, &v); err != nil {
		return err
	}
	if !v.Identical {
		return fmt.Errorf("verify found %d differing rows", v.Differences)
	}
	fmt.Fprintf(w, "verify (POST /api/verify): identical, in %.3f s\n", v.Seconds)
	var books struct{ Books []Book }
	if err := call("GET", "/api/books", nil, &books); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nthe store holds %d books; every row is identical on every datasource\n\n", len(books.Books))
	if st, err = s.c.Status(ctx); err != nil {
		return err
	}
	return st.WriteTable(w)
}
