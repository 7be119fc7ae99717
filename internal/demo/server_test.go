package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tandemdb/tandem/internal/demo"
)

func open(t *testing.T) (*demo.Server, *httptest.Server) {
	t.Helper()
	s, err := demo.Open(context.Background(), demo.Options{Dir: t.TempDir(), Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// do sends a request and returns the status and the decoded JSON body.
func do(t *testing.T, ts *httptest.Server, method, path, body, token string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %s", method, path, res.StatusCode, data)
		}
	}
	return res.StatusCode, out
}

func books(t *testing.T, ts *httptest.Server) []any {
	t.Helper()
	code, body := do(t, ts, "GET", "/api/books", "", "")
	if code != 200 {
		t.Fatalf("GET /api/books: %d %v", code, body)
	}
	return body["books"].([]any)
}

func TestAPIWritesAndRefusesBadInputNamingTheField(t *testing.T) {
	_, ts := open(t)
	code, a := do(t, ts, "POST", "/api/authors", `{"first_name": "Jane", "last_name": "Austen"}`, "")
	if code != 201 {
		t.Fatalf("POST author: %d %v", code, a)
	}
	code, p := do(t, ts, "POST", "/api/publishers", `{"name": "Penguin"}`, "")
	if code != 201 {
		t.Fatalf("POST publisher: %d %v", code, p)
	}
	good := `{"title": "Emma", "isbn": "978-0141439587", "price": 5.5, "author_id": 1, "publisher_id": 1}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		field                    string
	}{
		{"malformed JSON", "POST", "/api/books", `{"title": `, 400, ""},
		{"not an object", "POST", "/api/books", `[1, 2]`, 400, ""},
		{"missing title", "POST", "/api/books", `{"isbn": "1", "author_id": 1, "publisher_id": 1}`, 422, "title"},
		{"empty title", "POST", "/api/books", `{"title": "  ", "isbn": "1", "author_id": 1, "publisher_id": 1}`, 422, "title"},
		{"price of the wrong type", "POST", "/api/books", `{"title": "x", "isbn": "1", "price": "cheap", "author_id": 1, "publisher_id": 1}`, 422, "price"},
		{"negative price", "POST", "/api/books", `{"title": "x", "isbn": "1", "price": -1, "author_id": 1, "publisher_id": 1}`, 422, "price"},
		{"unknown field", "POST", "/api/books", `{"title": "x", "isbn": "1", "colour": "red", "author_id": 1, "publisher_id": 1}`, 422, "colour"},
		{"unknown author", "POST", "/api/books", `{"title": "x", "isbn": "1", "author_id": 99, "publisher_id": 1}`, 422, "author_id"},
		{"missing publisher", "POST", "/api/books", `{"title": "x", "isbn": "1", "author_id": 1}`, 422, "publisher_id"},
		{"title too long", "POST", "/api/books", `{"title": "` + strings.Repeat("x", 256) + `", "isbn": "1", "author_id": 1, "publisher_id": 1}`, 422, "title"},
		{"unknown id", "GET", "/api/books/42", ``, 404, "id"},
		{"bad id", "GET", "/api/books/abc", ``, 400, "id"},
		{"put to an unknown id", "PUT", "/api/books/42", `{"title": "x"}`, 404, "id"},
		{"delete an unknown id", "DELETE", "/api/authors/42", ``, 404, "id"},
		{"author without a last name", "POST", "/api/authors", `{"first_name": "Plato"}`, 422, "last_name"},
	} {
		code, body := do(t, ts, tc.method, tc.path, tc.body, "")
		if code != tc.code || body["field"] != nilIfEmpty(tc.field) || body["error"] == "" {
			t.Errorf("%s: %d %v; want %d naming field %q", tc.name, code, body, tc.code, tc.field)
		}
	}
	if n := len(books(t, ts)); n != 0 {
		t.Fatalf("%d books written by refused requests", n)
	}
	code, b := do(t, ts, "POST", "/api/books", good, "")
	if code != 201 || b["title"] != "Emma" || b["id"] != 1.0 || b["stock"] != 1.0 {
		t.Fatalf("POST book: %d %v", code, b)
	}
	if code, body := do(t, ts, "POST", "/api/books", good, ""); code != 409 || body["field"] != "isbn" {
		t.Errorf("a second book with the same ISBN: %d %v, want 409 naming isbn", code, body)
	}
	if code, body := do(t, ts, "PUT", "/api/books/1", `{"price": 6, "id": 2}`, ""); code != 400 || body["field"] != "id" {
		t.Errorf("PUT changing the id: %d %v", code, body)
	}
	if code, body := do(t, ts, "PUT", "/api/books/1", `{"price": 6}`, ""); code != 200 || body["price"] != 6.0 || body["title"] != "Emma" {
		t.Errorf("PUT price: %d %v", code, body)
	}
	if code, body := do(t, ts, "GET", "/api/books/1", "", ""); code != 200 || body["price"] != 6.0 {
		t.Errorf("GET after PUT: %d %v", code, body)
	}
	if code, _ := do(t, ts, "DELETE", "/api/books/1", "", ""); code != 204 {
		t.Errorf("DELETE: %d", code)
	}
	if n := len(books(t, ts)); n != 0 {
		t.Errorf("%d books after the delete", n)
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestAdminNeedsTheTokenAndTheStoryEndsIdentical(t *testing.T) {
	s, ts := open(t)
	for _, token := range []string{"", "wrong"} {
		if code, body := do(t, ts, "POST", "/api/admin/nodes/bar/offline", "", token); code != 401 || body["field"] != "token" {
			t.Errorf("offline with token %q: %d %v, want 401", token, code, body)
		}
	}
	if code, body := do(t, ts, "POST", "/api/admin/nodes/baz/offline", "", "s3cret"); code != 404 || body["field"] != "name" {
		t.Errorf("an unknown datasource: %d %v", code, body)
	}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := demo.Check(ctx, &out, s, ts.URL); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"bar taken offline", "added 2 books without bar: bar is down and misses 2 keys", "verify (POST /api/verify): identical", "every row is identical"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the story lacks %q:\n%s", want, out.String())
		}
	}
	code, st := do(t, ts, "GET", "/api/status", "", "")
	if code != 200 || st["healthy"] != true || st["last_verify"].(map[string]any)["identical"] != true {
		t.Errorf("status after the story: %d %v", code, st)
	}
	for _, n := range st["nodes"].([]any) {
		node := n.(map[string]any)
		if node["state"] != "in sync" || node["writes"].(float64) < 5 || node["identity"] == "" {
			t.Errorf("node after the story: %v", node)
		}
	}
	code, ev := do(t, ts, "GET", "/api/events", "", "")
	kinds := map[string]bool{}
	for _, e := range ev["events"].([]any) {
		kinds[e.(map[string]any)["kind"].(string)] = true
	}
	if code != 200 || !kinds["down"] || !kinds["catch-up finished"] {
		t.Errorf("events: %d %v", code, ev)
	}
	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`tandem_writes_total{node="bar"}`, `tandem_rows_behind{node="bar"} 0`, `tandem_verify_runs_total{result="identical"} 1`, "# TYPE tandem_verify_seconds_total counter"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	if strings.Contains(string(metrics), "s3cret") {
		t.Errorf("/metrics shows the admin token")
	}
}

func TestBookPages(t *testing.T) {
	_, ts := open(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		res, err := client.PostForm(ts.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := post("/books", url.Values{"title": {"Dune"}, "isbn": {"1"}, "price": {"9.5"}, "author": {"Frank Herbert"}}); res.StatusCode != 303 {
		t.Fatalf("add: %d", res.StatusCode)
	}
	if res := post("/books", url.Values{"title": {""}, "isbn": {"2"}}); res.StatusCode != 422 {
		t.Errorf("add without a title: %d, want 422", res.StatusCode)
	}
	if res := post("/books", url.Values{"title": {"Dune again"}, "isbn": {"1"}}); res.StatusCode != 422 {
		t.Errorf("add with a taken ISBN: %d, want 422", res.StatusCode)
	}
	// The page says why, from tandem.ErrDuplicateKey's columns.
	res, err := client.PostForm(ts.URL+"/books", url.Values{"title": {"Dune again"}, "isbn": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "isbn: another book has this ISBN") {
		t.Errorf("add with a taken ISBN: the page does not say so")
	}
	page := get(t, ts, "/books")
	for _, want := range []string{`<form id="new-book"`, `<tr data-id="1">`, `<td class="title">Dune</td>`, "9.50", "Frank Herbert", "Tandem Press"} {
		if !strings.Contains(page, want) {
			t.Errorf("/books lacks %q", want)
		}
	}
	if edit := get(t, ts, "/books/1/edit"); !strings.Contains(edit, `value="Dune"`) {
		t.Errorf("edit page: %s", edit)
	}
	if res := post("/books/1", url.Values{"title": {"Dune (1965)"}, "isbn": {"1"}, "author": {"Frank Herbert"}}); res.StatusCode != 303 {
		t.Errorf("save: %d", res.StatusCode)
	}
	if page := get(t, ts, "/books"); !strings.Contains(page, "Dune (1965)") {
		t.Errorf("the edit did not show")
	}
	if res := post("/books/1/delete", nil); res.StatusCode != 303 {
		t.Errorf("delete: %d", res.StatusCode)
	}
	if n := len(books(t, ts)); n != 0 {
		t.Errorf("%d books after the delete", n)
	}
	if dash := get(t, ts, "/tandem/"); !strings.Contains(dash, `id="run-verify"`) || !strings.Contains(dash, `id="token"`) {
		t.Errorf("dashboard: %s", dash)
	}
}

func get(t *testing.T, ts *httptest.Server, path string) string {
	t.Helper()
	res, err := http.Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Errorf("GET %s: %d", path, res.StatusCode)
	}
	return string(b)
}
