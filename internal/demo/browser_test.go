package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tandemdb/tandem/internal/demo"
)

// browserToken is the admin token the story's server is opened with.
const browserToken = "browser-story-token"

// findChromium returns the path of a Chromium (or Chrome) binary, or "".
func findChromium() string {
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactsDir is where the story's screenshots go: $TANDEM_ARTIFACTS, else
// browser-artifacts under the system's temporary directory.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("TANDEM_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "browser-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	// Screenshots of an earlier run would be mistaken for this one's.
	old, _ := filepath.Glob(filepath.Join(dir, "story-*.png"))
	for _, f := range old {
		os.Remove(f)
	}
	return dir
}

// syncBuffer collects what the server and the browser log, to show it when
// the test fails (and never to log through t after the test ended).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Printf(format string, args ...any) {
	fmt.Fprintf(b, format+"\n", args...)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBrowserStory drives the bookstore and the operator dashboard in a
// headless Chromium: add a book, refuse an admin action without the token,
// take bar offline, write while it is down, bring it back, wait until it
// caught up, and verify that both files hold the same rows.
func TestBrowserStory(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no Chromium found (/usr/bin/chromium, or chromium, chromium-browser, google-chrome on PATH): apt-get install chromium")
	}
	start := time.Now()
	// The whole story, browser start included, must end within 90 s.
	ctx, cancel := context.WithTimeout(t.Context(), 85*time.Second)
	defer cancel()

	// The server.
	serverLog := &syncBuffer{}
	dir := t.TempDir()
	s, err := demo.Open(ctx, demo.Options{
		Dir:   dir,
		Token: browserToken,
		Log:   slog.New(slog.NewTextHandler(serverLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("demo.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if got := s.Token(); got != browserToken {
		t.Errorf("Token() = %q, want %q", got, browserToken)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	// The browser. Its cleanup is registered last, so it runs first: the
	// browser has exited before the server closes and the directories go.
	browserLog := &syncBuffer{}
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // tests run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(browserLog),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx,
		chromedp.WithErrorf(browserLog.Printf),
		chromedp.WithLogf(browserLog.Printf))
	t.Cleanup(func() { bcancel(); acancel() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", chromium, err)
	}

	st := &story{
		t:         t,
		ctx:       bctx,
		base:      srv.URL,
		artifacts: artifactsDir(t),
	}
	st.listen()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("JavaScript console and exceptions:\n%s", st.console.String())
			t.Logf("server log:\n%s", tail(serverLog.String(), 8000))
			t.Logf("browser log:\n%s", tail(withoutDBus(browserLog.String()), 4000))
		}
	})
	t.Logf("chromium %s, server %s, artifacts in %s", chromium, srv.URL, st.artifacts)

	// 1. The bookstore: add a book through the form, see it in the table.
	st.navigate("/books", `table#books`)
	st.shot("books")
	st.addBook(newBook{"The Go Programming Language", "978-0134190440", "34.99", "Alan Donovan"})
	st.shot("books-first-added")

	// 2. The dashboard: both datasources in sync.
	st.navigate("/tandem/", `div.node[data-node="foo"]`)
	st.waitState("foo", "in sync", 15*time.Second)
	st.waitState("bar", "in sync", 15*time.Second)
	st.shot("dashboard")

	// 3. An admin action without the token is refused, and changes nothing.
	if v := st.value("#token"); v != "" {
		t.Logf("#token is prefilled with %q: clearing it", v)
		st.eval(`document.querySelector("#token").value = ""`)
	}
	st.click(`button.offline[data-node="bar"]`)
	refusal := regexp.MustCompile(`(?i)401|unauthori[sz]ed|refus|denied|forbidden|token`)
	st.waitText("#admin-result", "to show the refusal (401)", 10*time.Second, func(s string) bool {
		return refusal.MatchString(s)
	}, nil)
	st.sleep(1200 * time.Millisecond) // two polls of the dashboard
	if got := st.text(`div.node[data-node="bar"] .state`); got != "in sync" {
		st.fatalf("after the refused offline, bar's .state = %q, want %q", got, "in sync")
	}
	st.shot("refused-without-token")

	// 4. With the token, bar goes offline: its mount is lost. tandem
	// notices at its next check (a connection of its own cannot open the
	// file), so the card still says what tandem knows.
	st.typeInto("#token", browserToken)
	st.click(`button.offline[data-node="bar"]`)
	st.waitText("#admin-result", "to confirm bar is offline", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "bar is offline")
	}, nil)
	st.shot("bar-offline")

	// 5. Two more books while bar is offline: they go on without it.
	st.navigate("/books", `table#books`)
	st.addBook(newBook{"The C Programming Language", "978-0131103627", "45.50", "Brian Kernighan"})
	st.shot("books-second-added")
	st.addBook(newBook{"Structure and Interpretation of Computer Programs", "978-0262510875", "55.00", "Harold Abelson"})
	st.shot("books-third-added")

	// 6. Back on the dashboard: bar is down, and behind.
	st.navigate("/tandem/", `div.node[data-node="bar"]`)
	st.waitState("bar", "down", 10*time.Second)
	st.shot("bar-down")
	// Loaded again with bar down, the page draws its cards from the first
	// answer of /api/status (the health loop's last round), bar's state
	// included: it does not wait for bar.
	loadStart := time.Now()
	st.navigate("/tandem/", `div.node[data-node="bar"][data-state="down"]`)
	t.Logf("the dashboard drew bar down %v after the load began", time.Since(loadStart).Round(time.Millisecond))
	// Each card charts the last minutes: foo's writes/s line has a point a
	// second since the demo began.
	points, err := evalT[string](st, `document.querySelector('div.node[data-node="foo"] svg.chart[data-series="writes"] polyline').getAttribute("points")`, 5*time.Second)
	if err != nil || len(strings.Fields(points)) < 2 {
		st.fatalf("foo's writes/s chart: points %q (%v), want a line of 2 or more", points, err)
	}
	peak, err := evalT[string](st, `document.querySelector('div.node[data-node="foo"] svg.chart[data-series="writes"] polyline').dataset.max`, 5*time.Second)
	if err != nil || peak == "" || peak == "0" {
		st.fatalf("foo's writes/s chart: peak %q (%v), want the writes the books made", peak, err)
	}
	t.Logf("bar while down: .behind %q, .writes %q, .error %q",
		st.text(`div.node[data-node="bar"] .behind`),
		st.text(`div.node[data-node="bar"] .writes`),
		st.text(`div.node[data-node="bar"] .error`))
	if v := st.value("#token"); v != browserToken {
		st.eval(`document.querySelector("#token").value = ""`)
		st.typeInto("#token", browserToken)
	}
	st.shot("dashboard-bar-behind")

	// 7. Bring bar back; it catches up with the two writes it missed.
	st.click(`button.online[data-node="bar"]`)
	st.waitState("bar", "in sync", 30*time.Second)
	st.waitState("foo", "in sync", 5*time.Second)
	t.Logf("bar back: .behind %q, .writes %q, .error %q",
		st.text(`div.node[data-node="bar"] .behind`),
		st.text(`div.node[data-node="bar"] .writes`),
		st.text(`div.node[data-node="bar"] .error`))
	st.shot("bar-in-sync")

	// 8. Verify: every row is identical on both files.
	st.click(`#run-verify`)
	st.waitText("#verify-result", `to contain "identical"`, 20*time.Second, func(s string) bool {
		return strings.Contains(s, "identical") && !strings.Contains(s, "differing")
	}, func(s string) bool { return strings.Contains(s, "differing") })
	events := st.texts(`ul#events li`)
	if !slices.ContainsFunc(events, func(e string) bool { return strings.Contains(e, "bar") }) {
		st.fatalf("ul#events has no li about bar after it went offline and online: %q", events)
	}
	t.Logf("events on the dashboard:\n  %s", strings.Join(events, "\n  "))
	st.shot("verified")

	// 9. Through the API: three books; an admin call with a wrong token is 401.
	if n, titles := countBooks(t, srv.URL); n != 3 {
		t.Errorf("GET /api/books: %d books (%q), want 3", n, titles)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/admin/nodes/bar/offline", nil)
	req.Header.Set("Authorization", "Bearer wrong-"+browserToken)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("POST /api/admin/nodes/bar/offline: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /api/admin/nodes/bar/offline with a wrong token: %s, want 401", resp.Status)
		}
	}
	t.Logf("story done in %v", time.Since(start).Round(time.Millisecond))
}

type newBook struct{ title, isbn, price, author string }

// story is one browser tab walking through the demo.
type story struct {
	t         *testing.T
	ctx       context.Context // the tab's
	base      string
	artifacts string
	shots     int
	console   syncBuffer
}

// listen records the page's console and uncaught exceptions, and accepts any
// dialog (the contract has none; one would block the clicks).
func (s *story) listen() {
	err := chromedp.Listen(s.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			s.console.Printf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			s.console.Printf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		case *page.EventJavascriptDialogOpening:
			s.console.Printf("dialog %s: %q (accepted)", ev.Type, ev.Message)
			go chromedp.Run(s.ctx, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
				return cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			})
		}
	})
	if err != nil {
		s.t.Fatalf("listening to the tab: %v", err)
	}
}

// do runs actions on the tab within timeout, and fails the test on error.
func (s *story) do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		s.fatalf("%s: %v", what, err)
	}
}

func (s *story) navigate(path, ready string) {
	s.t.Helper()
	s.do("open "+path, 15*time.Second,
		chromedp.Navigate(s.base+path),
		chromedp.WaitReady(chromedp.CSS(ready)))
}

func (s *story) click(sel string) {
	s.t.Helper()
	s.do("click "+sel, 10*time.Second, chromedp.Click(chromedp.CSS(sel)))
}

func (s *story) typeInto(sel, text string) {
	s.t.Helper()
	s.do("type into "+sel, 10*time.Second, chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (s *story) sleep(d time.Duration) {
	s.t.Helper()
	s.do("wait", d+5*time.Second, chromedp.Sleep(d))
}

// evalT evaluates a JavaScript expression on the tab.
func evalT[T any](s *story, expr string, timeout time.Duration) (T, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

func (s *story) eval(expr string) {
	s.t.Helper()
	if _, err := evalT[any](s, expr, 5*time.Second); err != nil {
		s.fatalf("evaluate %s: %v", expr, err)
	}
}

// textOf is a JavaScript expression: the trimmed text of the first element
// that sel matches, or null.
func textOf(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.textContent.trim() : null })()`, jsString(sel))
}

// text returns the trimmed text of the element, or "<missing>".
func (s *story) text(sel string) string {
	s.t.Helper()
	v, err := evalT[*string](s, textOf(sel), 5*time.Second)
	if err != nil {
		s.fatalf("text of %s: %v", sel, err)
	}
	if v == nil {
		return "<missing>"
	}
	return *v
}

// texts returns the trimmed texts of every element that sel matches.
func (s *story) texts(sel string) []string {
	s.t.Helper()
	v, err := evalT[[]string](s, fmt.Sprintf(
		`[...document.querySelectorAll(%s)].map(e => e.textContent.trim())`, jsString(sel)), 5*time.Second)
	if err != nil {
		s.fatalf("texts of %s: %v", sel, err)
	}
	return v
}

func (s *story) value(sel string) string {
	s.t.Helper()
	v, err := evalT[*string](s, fmt.Sprintf(
		`(() => { const e = document.querySelector(%s); return e ? e.value : null })()`, jsString(sel)), 5*time.Second)
	if err != nil {
		s.fatalf("value of %s: %v", sel, err)
	}
	if v == nil {
		s.fatalf("no element %s on %s", sel, s.location())
	}
	return *v
}

func (s *story) location() string {
	v, err := evalT[string](s, `location.href`, 2*time.Second)
	if err != nil {
		return "?"
	}
	return v
}

// waitText polls the text of sel until ok accepts it; errors in between (a
// page that navigates, an element not there yet) only mean "not yet". A text
// that stop accepts (stop may be nil) fails at once.
func (s *story) waitText(sel, want string, timeout time.Duration, ok, stop func(string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	last, lastErr := "<never read>", error(nil)
	for {
		v, err := evalT[*string](s, textOf(sel), 2*time.Second)
		switch {
		case err != nil:
			lastErr = err
		case v == nil:
			last, lastErr = "<missing>", nil
		default:
			last, lastErr = *v, nil
			if ok(*v) {
				return *v
			}
			if stop != nil && stop(*v) {
				s.fatalf("waited for %s %s: its text is %q", sel, want, *v)
			}
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			if lastErr != nil {
				s.fatalf("waited %v for %s %s: last text %q, last error %v", timeout, sel, want, last, lastErr)
			}
			s.fatalf("waited %v for %s %s: its text is %q", timeout, sel, want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitState waits until the datasource's card shows the state.
func (s *story) waitState(node, state string, timeout time.Duration) {
	s.t.Helper()
	start := time.Now()
	s.waitText(fmt.Sprintf(`div.node[data-node=%q] .state`, node), fmt.Sprintf("to say %q", state), timeout,
		func(got string) bool { return got == state }, nil)
	s.t.Logf("%s is %q after %v", node, state, time.Since(start).Round(10*time.Millisecond))
}

// addBook fills the form on /books, submits it, and waits until the table
// lists the book on /books again.
func (s *story) addBook(b newBook) {
	s.t.Helper()
	s.do("fill #new-book", 10*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`form#new-book`)),
		chromedp.SendKeys(chromedp.CSS(`#new-title`), b.title),
		chromedp.SendKeys(chromedp.CSS(`#new-isbn`), b.isbn),
		chromedp.SendKeys(chromedp.CSS(`#new-price`), b.price))
	tag, err := evalT[string](s, `document.querySelector("#new-author").tagName`, 5*time.Second)
	if err != nil {
		s.fatalf("#new-author: %v", err)
	}
	if tag == "SELECT" { // a list of authors: take the first real one
		s.t.Logf("#new-author is a <select>: choosing its first author")
		s.eval(`(() => { const e = document.querySelector("#new-author");
			const o = [...e.options].find(o => o.value !== ""); if (o) e.value = o.value; })()`)
	} else {
		s.typeInto("#new-author", b.author)
	}
	s.click("#add-book")
	rowHas := fmt.Sprintf(`[...document.querySelectorAll("table#books tr[data-id]")].some(
		r => r.dataset.id !== "" && r.querySelector("td.title")?.textContent.trim() === %s)`, jsString(b.title))
	deadline := time.Now().Add(15 * time.Second)
	for {
		found, err := evalT[bool](s, rowHas, 2*time.Second)
		if err == nil && found {
			break
		}
		if msg, _ := evalT[*string](s, textOf("#form-error, p.error"), 2*time.Second); msg != nil && *msg != "" {
			s.fatalf("submitting %q: the page shows the error %q", b.title, *msg)
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			titles, _ := evalT[[]string](s, `[...document.querySelectorAll("table#books tr[data-id] td.title")].map(e => e.textContent.trim())`, 2*time.Second)
			s.fatalf("after submitting %q, table#books has no tr[data-id] with that td.title (titles %q, error %v)", b.title, titles, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if path, err := evalT[string](s, `location.pathname`, 2*time.Second); err != nil || path != "/books" {
		s.fatalf("after adding %q the page is %q (%v), want /books", b.title, path, err)
	}
	s.t.Logf("added %q", b.title)
}

// shot saves a full-page PNG screenshot of the tab.
func (s *story) shot(name string) {
	s.t.Helper()
	s.shots++
	path := filepath.Join(s.artifacts, fmt.Sprintf("story-%02d-%s.png", s.shots, name))
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		s.t.Fatalf("screenshot: %v", err)
	}
	s.t.Logf("screenshot %s", path)
}

// fatalf saves a screenshot and the page's text, then fails the test.
func (s *story) fatalf(format string, args ...any) {
	s.t.Helper()
	msg := fmt.Sprintf(format, args...)
	path := filepath.Join(s.artifacts, "story-failure.png")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil && os.WriteFile(path, png, 0o644) == nil {
		s.t.Logf("screenshot of the failure: %s", path)
	}
	if body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`)); err == nil {
		s.t.Logf("the page:\n%s", tail(body, 3000))
	}
	s.t.Fatal(msg)
}

// countBooks returns how many books GET /api/books lists, and their titles.
// It accepts a JSON array of books, or an object with such an array.
func countBooks(t *testing.T, base string) (int, []string) {
	t.Helper()
	resp, err := http.Get(base + "/api/books")
	if err != nil {
		t.Fatalf("GET /api/books: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/books: %s: %s", resp.Status, body)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET /api/books: %v: %s", err, tail(string(body), 500))
	}
	list, ok := v.([]any)
	if obj, isObj := v.(map[string]any); isObj {
		for _, key := range []string{"books", "Books", "items", "data"} {
			if list, ok = obj[key].([]any); ok {
				break
			}
		}
	}
	if !ok {
		t.Fatalf("GET /api/books: no list of books in %s", tail(string(body), 500))
	}
	var titles []string
	for _, b := range list {
		if m, ok := b.(map[string]any); ok {
			for _, key := range []string{"title", "Title"} {
				if s, ok := m[key].(string); ok {
					titles = append(titles, s)
				}
			}
		}
	}
	return len(list), titles
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// withoutDBus drops Chromium's complaints that a container has no D-Bus.
func withoutDBus(log string) string {
	var keep []string
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "dbus/") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
