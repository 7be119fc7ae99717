package demo

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tandemdb/tandem"
	"github.com/tandemdb/tandem/engine/sqlite"
	"github.com/tandemdb/tandem/verify"
)

// Options configure Open.
type Options struct {
	// Dir holds the embedded default, two SQLite files foo.db and bar.db
	// and tandem.yaml, created if absent. Ignored with Config.
	Dir string
	// Config runs the demo on the datasources of this config file.
	Config string
	// Token is the admin token the dashboard's fault buttons need. Empty:
	// a random one (Server.Token says which).
	Token string
	// Log receives the server's and the cluster's logs. Nil: discarded.
	Log *slog.Logger
}

// Server is the bookstore web application and the operator dashboard, on
// one tandem.Cluster.
type Server struct {
	c       *tandem.Cluster
	cfgPath string
	cfg     *tandem.Config
	token   string
	log     *slog.Logger
	files   map[string]string // datasource → the link through which it reaches its SQLite file, for taking it offline
	mux     *http.ServeMux

	mu      sync.Mutex
	offline map[string]string // datasources taken offline by an operator → where their link pointed
	verify  verifyStats
	rates   map[string]rate // writes/s per datasource, from the cluster's counters

	stop chan struct{}
	done chan struct{}
}

// verifyStats are the dashboard's verify runs, for /metrics.
type verifyStats struct {
	runs, failures, differing int64
	seconds                   float64
	last                      *verifyResult
}

type rate struct {
	at       time.Time
	writes   int64
	caughtUp int64
	perSec   float64
	// history: the last historyLen samples, oldest first, for the
	// dashboard's charts.
	history history
}

// history is a datasource's recent samples, one a second.
type history struct {
	WritesPerSec   []float64 `json:"writes_per_second"`
	Behind         []int64   `json:"behind"`
	CaughtUpPerSec []float64 `json:"caught_up_per_second"`
}

// historyLen is how many samples the charts show: the last 5 minutes.
const historyLen = 300

func keepLast[T any](list []T, x T) []T {
	list = append(list, x)
	if len(list) > historyLen {
		list = list[len(list)-historyLen:]
	}
	return list
}

// Open sets up the demo's datasources (the embedded default unless
// opts.Config), opens the cluster, creates the bookstore's tables and
// returns the server; Handler serves it.
func Open(ctx context.Context, opts Options) (*Server, error) {
	path := opts.Config
	if path == "" {
		dir := opts.Dir
		if dir == "" {
			dir = "tandem-demo"
		}
		var err error
		if path, err = Setup(dir); err != nil {
			return nil, err
		}
	}
	cfg, err := tandem.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := tandem.Open(ctx, cfg, tandem.WithLogger(log))
	if err != nil {
		return nil, err
	}
	if err := c.Migrate(ctx, Models()...); err != nil {
		c.Close()
		return nil, err
	}
	token := opts.Token
	if token == "" {
		b := make([]byte, 16)
		rand.Read(b)
		token = hex.EncodeToString(b)
	}
	s := &Server{c: c, cfgPath: path, cfg: cfg, token: token, log: log, files: sqliteFiles(cfg, path),
		offline: map[string]string{}, rates: map[string]rate{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.routes()
	go s.sample()
	return s, nil
}

// sqliteFiles maps each SQLite datasource to its file, resolved as tandem
// resolves it (LoadConfig already checked every DSN).
func sqliteFiles(cfg *tandem.Config, cfgPath string) map[string]string {
	out := map[string]string{}
	for _, ds := range cfg.Datasources {
		if ds.Driver != "sqlite" {
			continue
		}
		dsn, err := sqlite.Engine{}.ResolveDSN(ds.DSN, filepath.Dir(cfgPath))
		if err != nil {
			continue
		}
		if p, err := sqlite.Path(dsn); err == nil {
			out[ds.Name] = p
		}
	}
	return out
}

// Cluster is the server's cluster.
func (s *Server) Cluster() *tandem.Cluster { return s.c }

// Token is the admin token.
func (s *Server) Token() string { return s.token }

// Datasources names the datasources, in config order.
func (s *Server) Datasources() []string {
	var names []string
	for _, ds := range s.cfg.Datasources {
		names = append(names, ds.Name)
	}
	return names
}

// ConfigPath is the config the server runs on.
func (s *Server) ConfigPath() string { return s.cfgPath }

// Handler serves the application, the dashboard, the JSON API and /metrics.
func (s *Server) Handler() http.Handler { return s.mux }

// Close brings back every datasource taken offline and closes the cluster.
func (s *Server) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	for name, target := range s.offline {
		if err := repoint(s.files[name], target); err != nil {
			s.log.Warn("bring a datasource back", "node", name, "err", err)
		}
		delete(s.offline, name)
	}
	s.mu.Unlock()
	return s.c.Close()
}

// sample computes each datasource's writes per second, and keeps its
// recent writes/s, keys behind and catch-up rate, once a second.
func (s *Server) sample() {
	defer close(s.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		now := time.Now()
		m := s.c.Metrics()
		behind := map[string]int64{}
		if st, err := s.c.LastStatus(); err == nil { // no wait: the health loop's last round
			for _, n := range st.Nodes {
				behind[n.Name] = n.Behind
			}
		}
		s.mu.Lock()
		for name, nm := range m.Nodes {
			old, ok := s.rates[name]
			r := rate{at: now, writes: nm.Writes, caughtUp: nm.CaughtUpRows, history: old.history}
			if ok {
				secs := now.Sub(old.at).Seconds()
				r.perSec = float64(nm.Writes-old.writes) / secs
				r.history.WritesPerSec = keepLast(r.history.WritesPerSec, r.perSec)
				r.history.Behind = keepLast(r.history.Behind, behind[name])
				r.history.CaughtUpPerSec = keepLast(r.history.CaughtUpPerSec, float64(nm.CaughtUpRows-old.caughtUp)/secs)
			}
			s.rates[name] = r
		}
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	s.mux = m
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/books", http.StatusSeeOther) })
	s.bookPages(m)
	s.api(m)
	m.HandleFunc("GET /tandem/{$}", s.dashboard)
	m.HandleFunc("GET /tandem", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/tandem/", http.StatusSeeOther) })
	m.HandleFunc("GET /api/status", s.apiStatus)
	m.HandleFunc("GET /api/events", s.apiEvents)
	m.HandleFunc("POST /api/verify", s.apiVerify)
	m.HandleFunc("POST /api/admin/nodes/{name}/{action}", s.admin(s.apiNodeAction))
	m.HandleFunc("GET /metrics", s.metrics)
}

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is the body of every 4xx and 5xx answer of the API.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"` // the request field at fault
}

func fail(w http.ResponseWriter, code int, field, format string, args ...any) {
	writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...), Field: field})
}

// admin refuses requests without the admin token (Authorization: Bearer
// TOKEN, or the X-Tandem-Token header).
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if got == "" {
			got = r.Header.Get("X-Tandem-Token")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
			fail(w, http.StatusUnauthorized, "token", "the admin token is missing or wrong")
			return
		}
		h(w, r)
	}
}

// nodeView is a datasource as the dashboard shows it.
type nodeView struct {
	tandem.NodeStatus
	Offline       bool    `json:"offline"` // taken offline from the dashboard
	Writes        int64   `json:"writes"`
	WriteFailures int64   `json:"write_failures"`
	WritesPerSec  float64 `json:"writes_per_second"`
	CaughtUpRows  int64   `json:"caught_up_rows"`
	CanGoOffline  bool    `json:"can_go_offline"`
	History       history `json:"history"` // the last minutes, a sample a second
}

type statusView struct {
	Primary    string        `json:"primary"`
	Conflicts  int64         `json:"conflicts"`
	Healthy    bool          `json:"healthy"`
	WriteError string        `json:"write_error,omitempty"`
	Nodes      []nodeView    `json:"nodes"`
	Verify     *verifyResult `json:"last_verify,omitempty"`
}

// status is the dashboard's view: the health loop's last round
// (LastStatus), so that it answers at once, a datasource down or not.
func (s *Server) status(context.Context) (*statusView, error) {
	st, err := s.c.LastStatus()
	if err != nil {
		return nil, err
	}
	m := s.c.Metrics()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &statusView{Primary: st.Primary, Conflicts: st.Conflicts, Healthy: st.Healthy(), WriteError: st.WriteError, Verify: s.verify.last}
	for _, n := range st.Nodes {
		nm := m.Nodes[n.Name]
		_, canOff := s.files[n.Name]
		v.Nodes = append(v.Nodes, nodeView{NodeStatus: n, Offline: isOffline(s.offline, n.Name), Writes: nm.Writes,
			WriteFailures: nm.WriteFailures, WritesPerSec: s.rates[n.Name].perSec, CaughtUpRows: nm.CaughtUpRows, CanGoOffline: canOff,
			History: s.rates[n.Name].history})
	}
	return v, nil
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	v, err := s.status(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, "", "status: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	events := s.c.Events()
	// Newest first, at most 50.
	out := make([]tandem.Event, 0, min(len(events), 50))
	for i := len(events) - 1; i >= 0 && len(out) < 50; i-- {
		out = append(out, events[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// verifyResult is the outcome of a verify run from the dashboard.
type verifyResult struct {
	At          time.Time      `json:"at"`
	Seconds     float64        `json:"seconds"`
	Identical   bool           `json:"identical"`
	Differences int            `json:"differences"`
	Error       string         `json:"error,omitempty"`
	Report      *verify.Report `json:"report,omitempty"`
}

func (s *Server) apiVerify(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rep, err := verify.Compare(r.Context(), s.cfg, verify.Options{})
	res := &verifyResult{At: start.UTC(), Seconds: time.Since(start).Seconds()}
	if err != nil {
		res.Error = err.Error()
	} else {
		res.Identical, res.Report = rep.Identical, rep
		for _, t := range rep.Tables {
			res.Differences += len(t.Differences)
		}
	}
	s.mu.Lock()
	s.verify.runs++
	s.verify.seconds += res.Seconds
	if err != nil {
		s.verify.failures++
	} else if !res.Identical {
		s.verify.differing++
	}
	s.verify.last = res
	s.mu.Unlock()
	code := http.StatusOK
	if err != nil {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, res)
}

func (s *Server) apiNodeAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	file, ok := s.files[name]
	if !ok {
		if s.hasNode(name) {
			fail(w, http.StatusConflict, "name", "datasource %s is not a SQLite file: the demo takes only those offline", name)
		} else {
			fail(w, http.StatusNotFound, "name", "no datasource called %q", name)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch action {
	case "offline":
		if _, ok := s.offline[name]; ok {
			writeJSON(w, http.StatusOK, map[string]any{"node": name, "offline": true})
			return
		}
		target, err := os.Readlink(file)
		if err != nil {
			fail(w, http.StatusConflict, "name", "take %s offline: its DSN is no link (the demo takes a datasource offline by pointing the link of its mount away): %v", name, err)
			return
		}
		if err := repoint(file, filepath.Join(filepath.Dir(file), ".offline", filepath.Base(file))); err != nil {
			fail(w, http.StatusConflict, "name", "take %s offline: %v", name, err)
			return
		}
		s.offline[name] = target
		s.log.Warn("datasource taken offline from the dashboard (its mount is lost: a connection opened now cannot reach its file)", "node", name)
	case "online":
		if target, ok := s.offline[name]; ok {
			if err := repoint(file, target); err != nil {
				fail(w, http.StatusInternalServerError, "name", "bring %s back: %v", name, err)
				return
			}
			delete(s.offline, name)
			s.log.Info("datasource back online from the dashboard", "node", name)
		}
	default:
		fail(w, http.StatusNotFound, "action", "unknown action %q: offline or online", action)
		return
	}
	_, off := s.offline[name]
	writeJSON(w, http.StatusOK, map[string]any{"node": name, "offline": off})
}

// repoint points the symbolic link link at target, replacing it in one
// rename.
func repoint(link, target string) error {
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

func isOffline(m map[string]string, name string) bool { _, ok := m[name]; return ok }

func (s *Server) hasNode(name string) bool {
	for _, ds := range s.cfg.Datasources {
		if ds.Name == name {
			return true
		}
	}
	return false
}

// metrics serves the cluster's metrics and the dashboard's verify runs in
// the Prometheus text format.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.c.WritePrometheus(r.Context(), w); err != nil {
		s.log.Warn("metrics", "err", err)
	}
	s.mu.Lock()
	v := s.verify
	s.mu.Unlock()
	fmt.Fprintf(w, "# HELP tandem_verify_runs_total Verify runs started from the dashboard, by result.\n# TYPE tandem_verify_runs_total counter\n")
	fmt.Fprintf(w, "tandem_verify_runs_total{result=\"identical\"} %d\n", v.runs-v.failures-v.differing)
	fmt.Fprintf(w, "tandem_verify_runs_total{result=\"differences\"} %d\n", v.differing)
	fmt.Fprintf(w, "tandem_verify_runs_total{result=\"error\"} %d\n", v.failures)
	fmt.Fprintf(w, "# HELP tandem_verify_seconds_total Time spent in verify runs from the dashboard.\n# TYPE tandem_verify_seconds_total counter\ntandem_verify_seconds_total %g\n", v.seconds)
}
